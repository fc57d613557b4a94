"""`GET /api/v1/purposes/`: every purpose with its current wording, in the client's language."""

import pytest

from consent.services import purpose_wording_update

PURPOSES = "/api/v1/purposes/"
FIELDS = {
    "slug",
    "name",
    "description",
    "legal_basis",
    "legitimate_interest",
    "channels",
    "double_opt_in",
    "version",
    "wording",
}


@pytest.fixture
def translated(newsletter):
    newsletter.name_fr, newsletter.name_en = "Lettre d'information", "Newsletter"
    newsletter.description_fr, newsletter.description_en = "Chaque mois.", "Every month."
    newsletter.save()
    return newsletter


@pytest.mark.django_db
def test_purposes_answer_in_english_when_asked(api, translated):
    response = api().get(PURPOSES, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    (purpose,) = response.json()["results"]
    assert set(purpose) == FIELDS
    assert (purpose["name"], purpose["description"]) == ("Newsletter", "Every month.")
    assert purpose["wording"] == "I agree to receive newsletter."
    assert purpose["slug"] == "newsletter"
    assert purpose["legal_basis"] == "consent"
    assert purpose["channels"] == ["email", "sms"]
    assert (purpose["double_opt_in"], purpose["version"]) == (False, 1)


@pytest.mark.django_db
def test_purposes_answer_in_french_when_asked(api, translated):
    response = api().get(PURPOSES, HTTP_ACCEPT_LANGUAGE="fr")

    (purpose,) = response.json()["results"]
    assert (purpose["name"], purpose["description"]) == ("Lettre d'information", "Chaque mois.")
    assert purpose["wording"] == "J'accepte de recevoir newsletter."


@pytest.mark.django_db
def test_purposes_show_the_current_wording_version(api, newsletter, offers):
    purpose_wording_update(
        purpose=newsletter, wording_fr="Nouveau texte.", wording_en="New wording."
    )

    response = api().get(PURPOSES, HTTP_ACCEPT_LANGUAGE="en")

    by_slug = {purpose["slug"]: purpose for purpose in response.json()["results"]}
    assert (by_slug["newsletter"]["version"], by_slug["newsletter"]["wording"]) == (
        2,
        "New wording.",
    )
    assert by_slug["offers"]["double_opt_in"] is True


@pytest.mark.django_db
def test_inactive_purposes_are_not_listed(api, newsletter, offers):
    offers.is_active = False
    offers.save()

    response = api().get(PURPOSES)

    assert [purpose["slug"] for purpose in response.json()["results"]] == ["newsletter"]


@pytest.mark.django_db
def test_one_purpose_by_slug(api, newsletter):
    response = api().get(f"{PURPOSES}newsletter/", HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    assert response.json()["name"] == "Purpose newsletter"
