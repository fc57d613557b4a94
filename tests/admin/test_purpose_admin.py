import pytest
from django.urls import reverse

from consent.models import Purpose, PurposeVersion
from tests.admin.forms import submitted_form
from tests.factories import PurposeFactory

pytestmark = pytest.mark.django_db


def change_url(purpose: Purpose) -> str:
    return reverse("admin:consent_purpose_change", args=[purpose.pk])


def test_the_purpose_form_shows_the_current_wording(as_dpo):
    purpose = PurposeFactory(slug="newsletter")

    response = as_dpo.get(change_url(purpose))

    form = response.context["adminform"].form
    assert form["wording_fr"].value() == "J'accepte de recevoir newsletter."
    assert form["wording_en"].value() == "I agree to receive newsletter."
    assert form["is_material"].value() is True


def test_editing_the_wording_creates_version_2_and_leaves_version_1_unchanged(as_dpo):
    purpose = PurposeFactory(slug="newsletter")
    first = purpose.current_version
    page = as_dpo.get(change_url(purpose))

    response = as_dpo.post(
        change_url(purpose),
        submitted_form(
            page,
            wording_fr="J'accepte la lettre mensuelle et ses offres.",
            wording_en="I agree to the monthly letter and its offers.",
        ),
    )

    assert response.status_code == 302
    versions = list(PurposeVersion.objects.filter(purpose=purpose).order_by("number"))
    assert [v.number for v in versions] == [1, 2]
    assert (versions[0].wording_fr, versions[0].wording_en, versions[0].created_at) == (
        first.wording_fr,
        first.wording_en,
        first.created_at,
    )
    assert versions[1].wording_fr == "J'accepte la lettre mensuelle et ses offres."
    assert versions[1].is_material is True
    assert versions[1].created_by == "dpo-persona"


def test_a_minor_wording_change_is_recorded_as_not_material(as_dpo):
    purpose = PurposeFactory(slug="offers")
    page = as_dpo.get(change_url(purpose))

    as_dpo.post(
        change_url(purpose),
        submitted_form(page, wording_en="I agree to receive your offers.", is_material=None),
    )

    assert purpose.current_version.number == 2
    assert purpose.current_version.is_material is False


def test_saving_without_changing_the_wording_creates_no_version(as_dpo):
    purpose = PurposeFactory(slug="events", wording="Ligne une.\nLigne deux.")
    page = as_dpo.get(change_url(purpose))

    # browsers send textarea line breaks as CRLF
    response = as_dpo.post(
        change_url(purpose),
        submitted_form(
            page,
            wording_fr="Ligne une.\r\nLigne deux.",
            wording_en="Ligne une.\r\nLigne deux.",
            name_en="Events and workshops",
        ),
    )

    assert response.status_code == 302
    assert purpose.versions.count() == 1
    purpose.refresh_from_db()
    assert purpose.name_en == "Events and workshops"


def test_creating_a_purpose_creates_version_1(as_dpo):
    url = reverse("admin:consent_purpose_add")
    page = as_dpo.get(url)

    response = as_dpo.post(
        url,
        submitted_form(
            page,
            slug="webinars",
            name_fr="Webinaires",
            name_en="Webinars",
            legal_basis="consent",
            channels=["email", "sms"],
            double_opt_in="on",
            wording_fr="J'accepte d'être invité à vos webinaires.",
            wording_en="I agree to be invited to your webinars.",
        ),
    )

    assert response.status_code == 302
    purpose = Purpose.objects.get(slug="webinars")
    assert purpose.channels == ["email", "sms"] and purpose.double_opt_in
    version = purpose.versions.get()
    assert (version.number, version.wording_en) == (1, "I agree to be invited to your webinars.")


def test_versions_are_shown_read_only(as_dpo):
    purpose = PurposeFactory()

    response = as_dpo.get(change_url(purpose))

    (versions,) = response.context["inline_admin_formsets"]
    assert not versions.has_add_permission and not versions.has_change_permission
    assert not versions.has_delete_permission


def test_marketer_can_view_but_not_change_purposes(as_marketer):
    purpose = PurposeFactory()
    page = as_marketer.get(change_url(purpose))

    response = as_marketer.post(change_url(purpose), {"wording_fr": "x", "wording_en": "x"})

    assert page.status_code == 200
    assert "J&#x27;accepte de recevoir" in page.content.decode()  # the wording, read-only
    assert response.status_code == 403
    assert purpose.versions.count() == 1


def test_a_purpose_on_legitimate_interests_must_state_the_interest_pursued(as_dpo):
    # GDPR Art. 13(1)(d): the person is told which interest is pursued
    purpose = PurposeFactory(slug="customer-news")
    page = as_dpo.get(change_url(purpose))

    refused = as_dpo.post(
        change_url(purpose), submitted_form(page, legal_basis="legitimate_interests")
    )
    accepted = as_dpo.post(
        change_url(purpose),
        submitted_form(
            page,
            legal_basis="legitimate_interests",
            legitimate_interest_fr="Fidéliser nos clients",
            legitimate_interest_en="Keeping our customers",
        ),
    )

    errors = refused.context["adminform"].form.errors
    assert set(errors) == {"legitimate_interest_fr", "legitimate_interest_en"}
    assert "the interest it pursues" in errors["legitimate_interest_en"][0]
    assert accepted.status_code == 302
    purpose.refresh_from_db()
    assert (purpose.legal_basis, purpose.legitimate_interest_en) == (
        "legitimate_interests",
        "Keeping our customers",
    )
