"""The preference center `/p/<token>/`: what it shows, and what each of its forms changes."""

import re
from pathlib import Path
from typing import Any

import pytest
from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time

from consent.eligibility import contact_eligibility
from consent.models import ConsentRecord, ConsentState, LegalBasis, Purpose
from consent.services import purpose_wording_update
from contacts.models import Contact, ContactStatus, TimelineEvent
from contacts.selectors import suppression_reason
from contacts.services import contact_pause
from crmsync.models import OutboxEvent
from preferences.forms import IdentityForm
from preferences.services import preference_token_issue
from tests.factories import ContactFactory, InterestFactory, PurposeFactory, grant
from tests.preferences.conftest import (
    BROWSER,
    center_path,
    field_error,
    page_text,
    post_form,
    read_page,
    save_consents,
    snapshot,
    unsubscribe_path,
)

pytestmark = pytest.mark.django_db


def records_after(before: int) -> list[ConsentRecord]:
    return list(ConsentRecord.objects.filter(id__gt=before).order_by("id"))


def last_record_id() -> int:
    return ConsentRecord.objects.order_by("-id").values_list("id", flat=True).first() or 0


def states(contact: Contact) -> dict[tuple[str, str], str]:
    return {
        (state.purpose.slug, state.channel): state.status
        for state in ConsentState.objects.filter(contact=contact).select_related("purpose")
    }


def identity(contact: Contact, **changes: str) -> dict[str, str]:
    """The identity form as the page fills it, with the person's changes."""
    contact.refresh_from_db()
    return {
        **{name: getattr(contact, name) for name in IdentityForm.base_fields},
        **changes,
    }


# --- what the page shows -------------------------------------------------------------------


def test_page_shows_every_active_purpose_with_its_current_wording_per_channel(
    client: Client, token: str, purposes: dict[str, Purpose]
) -> None:
    # given a newsletter whose wording changed, and a retired purpose
    purpose_wording_update(
        purpose=purposes["newsletter"],
        wording_fr="Je veux la lettre, version 2.",
        wording_en="I want the letter, version 2.",
    )
    PurposeFactory(slug="retired", name_fr="Ancienne finalité", is_active=False)

    response = client.get(center_path(token), **BROWSER)

    assert response.status_code == 200
    page, text = read_page(response), page_text(response)
    assert set(page.boxes()) == {
        "newsletter:email",
        "newsletter:sms",
        "offers:email",
        "offers:postal",
        "product-news:email",
        "personalisation:email",
    }
    assert "Je veux la lettre, version 2." in text
    assert "J'accepte de recevoir newsletter." not in text  # the old wording is gone
    assert page.hidden()["version-newsletter"] == "2"
    assert "Ancienne finalité" not in text


def test_fresh_contact_sees_no_box_ticked_but_legitimate_interest(
    client: Client, token: str, purposes: dict[str, Purpose]
) -> None:
    page = read_page(client.get(center_path(token), **BROWSER))

    # legitimate interest is on until the person objects; consent is never pre-ticked
    assert page.checked() == {"product-news:email"}


def test_box_is_ticked_only_where_the_person_consented(
    client: Client, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    # given a grant, a pending double opt-in, a withdrawal and an objection
    events = PurposeFactory(slug="events", double_opt_in=True, channels=["email"])
    grant(camille, purposes["newsletter"], channel="email")
    grant(camille, events, channel="email")
    grant(camille, purposes["offers"], channel="postal")
    grant(camille, purposes["offers"], channel="postal", action="withdraw", evidence=None)
    grant(camille, purposes["product-news"], action="withdraw", evidence=None)

    response = client.get(center_path(token, lang="en"), **BROWSER)

    # the pending double opt-in is not on yet: unticked, waiting for the emailed link
    page = read_page(response)
    assert page.checked() == {"newsletter:email"}
    assert "waiting for your confirmation" in page_text(response)


def test_purposes_on_other_legal_bases_are_listed_but_not_switchable(
    client: Client, token: str, purposes: dict[str, Purpose]
) -> None:
    response = client.get(center_path(token, lang="en"), **BROWSER)

    text = page_text(response)
    assert "Messages we must send" in text
    assert "Account notices" in text and "Contract (Art. 6(1)(b))" in text
    assert not [box for box in read_page(response).boxes() if box.startswith("account-notices")]


def test_page_speaks_the_contacts_language(
    client: Client, token: str, purposes: dict[str, Purpose]
) -> None:
    response = client.get(center_path(token), **BROWSER)

    text = page_text(response)
    assert response["Content-Language"] == "fr"
    assert '<html lang="fr">' in text
    assert "Lettre d'information" in text
    assert "J'accepte de recevoir newsletter." in text
    assert read_page(response).hidden()["lang"] == "fr"


def test_lang_parameter_switches_the_page_to_english(
    client: Client, token: str, purposes: dict[str, Purpose]
) -> None:
    response = client.get(center_path(token, lang="en"), **BROWSER)

    text = page_text(response)
    assert response["Content-Language"] == "en"
    assert '<html lang="en">' in text
    assert "Your communication preferences" in text
    assert "Newsletter" in text and "I agree to receive newsletter." in text
    assert "Lettre d'information" not in text
    assert read_page(response).hidden()["lang"] == "en"  # the forms keep the language


def test_english_speaking_contact_gets_english_and_can_switch_to_french(
    client: Client, purposes: dict[str, Purpose]
) -> None:
    token = preference_token_issue(contact=ContactFactory(language="en"))

    english = client.get(center_path(token), **BROWSER)
    french = client.get(center_path(token, lang="fr"), **BROWSER)

    assert english["Content-Language"] == "en"
    assert ("?lang=fr", "a") in [(url, tag) for tag, url in read_page(english).urls]
    assert french["Content-Language"] == "fr"
    assert "Lettre d'information" in page_text(french)


def test_unknown_language_falls_back_to_the_contacts(
    client: Client, token: str, purposes: dict[str, Purpose]
) -> None:
    response = client.get(center_path(token, lang="xx"), **BROWSER)

    assert response.status_code == 200
    assert response["Content-Language"] == "fr"


PAGES = {
    "center": lambda token: center_path(token),
    "unsubscribe": lambda token: unsubscribe_path(token),
    "invalid link": lambda token: center_path("Z" * 43),
}


@pytest.mark.parametrize("page", PAGES)
def test_pages_keep_the_token_private_and_load_nothing_from_elsewhere(
    client: Client, token: str, purposes: dict[str, Purpose], page: str
) -> None:
    response = client.get(PAGES[page](token), **BROWSER)

    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cache-Control"] == "no-store"
    for directive in response["Content-Security-Policy"].split(";"):
        name, *sources = directive.split()
        # only the site itself, never a third-party host or scheme
        assert set(sources) <= {"'self'", "'none'"}, directive
    html = response.content.decode()
    assert "<script" not in html.lower()
    for tag, url in read_page(response).urls:
        if tag in ("link", "script", "img"):
            assert not re.match(r"(https?:)?//", url) or url.startswith("http://testserver/"), url


def test_stylesheet_pulls_no_font_or_file_from_another_site() -> None:
    css = Path(finders.find("css/site.css")).read_text(encoding="utf-8")

    assert "@import" not in css and "@font-face" not in css
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", css)


def test_every_consent_box_has_its_own_label(
    client: Client, token: str, purposes: dict[str, Purpose]
) -> None:
    response = client.get(center_path(token), **BROWSER)

    html = response.content.decode()
    for tag in read_page(response).boxes().values():
        assert f'<label for="{tag["id"]}">' in html


# --- consents ------------------------------------------------------------------------------


def test_ticking_a_box_records_a_grant_with_complete_evidence(
    client: Client, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    before = last_record_id()

    response = save_consents(client, token, tick=["newsletter:email"])

    assert response.status_code == 303
    assert response["Location"] == center_path(token) + "?done=consents&lang=fr"
    [record] = records_after(before)
    assert (record.purpose.slug, record.channel, record.action) == ("newsletter", "email", "grant")
    assert record.source_kind == "preference_center"
    assert record.status == "granted"
    assert record.wording == "J'accepte de recevoir newsletter."  # as shown, in French
    assert record.language == "fr"
    assert record.purpose_version.number == 1
    assert record.unticked_by_default is True
    assert record.policy_version == settings.PRIVACY_POLICY_VERSION
    assert record.personal_evidence.ip == "198.51.100.23"
    assert record.personal_evidence.user_agent == "Mozilla/5.0 (Camille's laptop)"
    assert states(camille)[("newsletter", "email")] == "granted"


def test_grant_from_the_english_page_keeps_the_english_wording(
    client: Client, token: str, purposes: dict[str, Purpose]
) -> None:
    before = last_record_id()

    save_consents(client, token, tick=["offers:postal"], lang="en")

    [record] = records_after(before)
    assert record.wording == "I agree to receive offers."
    assert record.language == "en"


def test_grant_records_the_current_wording_version(
    client: Client, token: str, purposes: dict[str, Purpose]
) -> None:
    purpose_wording_update(
        purpose=purposes["newsletter"], wording_fr="Version deux.", wording_en="Version two."
    )
    before = last_record_id()

    save_consents(client, token, tick=["newsletter:sms"])

    [record] = records_after(before)
    assert record.purpose_version.number == 2
    assert record.wording == "Version deux."


def test_unticking_a_box_withdraws_that_consent_only(
    client: Client, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    grant(camille, purposes["newsletter"], channel="email")
    grant(camille, purposes["newsletter"], channel="sms")
    before = last_record_id()

    save_consents(client, token, untick=["newsletter:sms"])

    [record] = records_after(before)
    assert (record.channel, record.action, record.source_kind) == (
        "sms",
        "withdraw",
        "preference_center",
    )
    assert record.personal_evidence.ip == "198.51.100.23"
    assert states(camille)[("newsletter", "email")] == "granted"
    assert states(camille)[("newsletter", "sms")] == "withdrawn"


def test_unticking_legitimate_interest_records_the_objection(
    client: Client, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    before = last_record_id()

    save_consents(client, token, untick=["product-news:email"])

    [record] = records_after(before)
    assert (record.purpose.slug, record.action) == ("product-news", "withdraw")
    assert read_page(client.get(center_path(token))).checked() == set()


def test_untouched_purposes_get_no_record(
    client: Client, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    # given existing choices, including one withdrawn earlier
    grant(camille, purposes["offers"], channel="email")
    grant(camille, purposes["newsletter"], channel="sms", action="withdraw", evidence=None)
    before = last_record_id()

    # when the person saves the page with one more tick
    save_consents(client, token, tick=["personalisation:email"])

    # then only that change is written
    assert [(r.purpose.slug, r.action) for r in records_after(before)] == [
        ("personalisation", "grant")
    ]


def test_saving_the_page_unchanged_writes_nothing(
    client: Client, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    grant(camille, purposes["offers"], channel="email")
    before = (last_record_id(), TimelineEvent.objects.count(), OutboxEvent.objects.count())

    response = save_consents(client, token)

    assert response.status_code == 303
    after = (last_record_id(), TimelineEvent.objects.count(), OutboxEvent.objects.count())
    assert after == before


def test_each_consent_change_gets_a_timeline_entry_and_an_outbox_event(
    client: Client, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    grant(camille, purposes["offers"], channel="email")
    timeline_before = set(camille.timeline.values_list("id", flat=True))
    outbox_before = set(OutboxEvent.objects.values_list("id", flat=True))

    save_consents(
        client, token, tick=["newsletter:email", "newsletter:sms"], untick=["offers:email"]
    )

    entries = camille.timeline.exclude(id__in=timeline_before)
    assert sorted(entries.values_list("kind", "summary")) == [
        ("consent_changed", "newsletter/email: granted"),
        ("consent_changed", "newsletter/sms: granted"),
        ("consent_changed", "offers/email: withdrawn"),
    ]
    events = OutboxEvent.objects.exclude(id__in=outbox_before)
    assert sorted((e.topic, e.payload["purpose"], e.payload["action"]) for e in events) == [
        ("consent.recorded", "newsletter", "grant"),
        ("consent.recorded", "newsletter", "grant"),
        ("consent.recorded", "offers", "withdraw"),
    ]
    assert {e.contact_public_id for e in events} == {camille.public_id}


def test_consent_change_leaves_everything_else_as_it_was(
    client: Client, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    # given a contact with details, topics, a frequency and other consents
    camille.interests.add(InterestFactory(slug="cycling"))
    Contact.objects.filter(pk=camille.pk).update(frequency="monthly", company="Acme")
    grant(camille, purposes["offers"], channel="email")
    before = snapshot(camille)

    save_consents(client, token, tick=["newsletter:email"])

    after = snapshot(camille)
    changed = after["states"].pop(("newsletter", "email"))
    assert changed[0] == "granted"
    assert after == before


def test_choices_for_purposes_that_are_not_switchable_are_ignored(
    client: Client, token: str, purposes: dict[str, Purpose]
) -> None:
    before = last_record_id()

    response = save_consents(
        client, token, tick=["account-notices:email", "newsletter:push", "nope:email"]
    )

    assert response.status_code == 303
    assert records_after(before) == []


def test_stale_wording_version_is_refused_and_nothing_is_saved(
    client: Client, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    # given the page was loaded, then the newsletter wording changed
    grant(camille, purposes["offers"], channel="email")
    page = read_page(client.get(center_path(token, lang="en"), **BROWSER))
    purpose_wording_update(
        purpose=purposes["newsletter"], wording_fr="Nouveau.", wording_en="New wording."
    )
    before = (last_record_id(), snapshot(camille))

    # when the person submits the old page: a new tick on it, and a withdrawal elsewhere
    response = client.post(
        center_path(token),
        {
            "form": "consents",
            "lang": "en",
            "consent": sorted(page.checked() - {"offers:email"} | {"newsletter:email"}),
            **{k: v for k, v in page.hidden().items() if k.startswith(("version-", "seen:"))},
        },
        **BROWSER,
    )

    # then nothing is saved and the person reads the new wording with the error next to it
    assert response.status_code == 400
    assert (last_record_id(), snapshot(camille)) == before
    text = page_text(response)
    assert "New wording." in text
    error = re.search(r'<ul class="error" id="error-newsletter">(.*?)</ul>', text, re.S)
    assert error and "wording of this purpose changed" in error.group(1)
    shown = read_page(response)
    assert "newsletter:email" in shown.checked()  # the person's ticks, not the database
    assert "offers:email" not in shown.checked()
    assert shown.hidden()["version-newsletter"] == "2"


def test_grant_without_the_wording_version_shown_is_refused(
    client: Client, token: str, purposes: dict[str, Purpose]
) -> None:
    before = last_record_id()

    response = client.post(
        center_path(token),
        {"form": "consents", "lang": "fr", "consent": ["newsletter:email", "product-news:email"]},
        **BROWSER,
    )

    assert response.status_code == 400
    assert records_after(before) == []


def test_unknown_form_is_refused_and_nothing_is_saved(
    client: Client, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    before = (last_record_id(), TimelineEvent.objects.count(), snapshot(camille))

    response = post_form(client, token, "delete_everything", lang="en", consent="newsletter:email")

    assert response.status_code == 400
    assert "This form could not be read" in page_text(response)
    assert (last_record_id(), TimelineEvent.objects.count(), snapshot(camille)) == before


def test_post_without_the_csrf_token_is_refused(
    camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    client = Client(enforce_csrf_checks=True)

    response = client.post(center_path(token), {"form": "unsubscribe"}, **BROWSER)

    assert response.status_code == 403
    assert suppression_reason(kind="email", value=camille.email) is None


def test_after_saving_the_page_confirms_the_change(
    client: Client, token: str, purposes: dict[str, Purpose]
) -> None:
    response = save_consents(client, token, tick=["newsletter:email"], lang="en")

    page = client.get(response["Location"], **BROWSER)

    assert page.status_code == 200
    assert "Your choices are saved." in page_text(page)
    assert "newsletter:email" in read_page(page).checked()


# --- identity --------------------------------------------------------------------------------


def test_person_corrects_their_details(
    client: Client, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    outbox_before = OutboxEvent.objects.count()

    response = post_form(
        client, token, "identity", **identity(camille, last_name="Durand-Leroy", company="Acme")
    )

    assert response.status_code == 303
    camille.refresh_from_db()
    assert (camille.last_name, camille.company) == ("Durand-Leroy", "Acme")
    entry = camille.timeline.get(kind="updated")
    assert entry.data == {"fields": ["last_name", "company"]}
    [event] = OutboxEvent.objects.all()[outbox_before:]
    assert event.topic == "contact.updated"
    assert event.payload["changed"] == ["last_name", "company"]
    assert ConsentRecord.objects.filter(contact=camille).count() == 0


def test_phone_is_saved_in_international_format(
    client: Client, camille: Contact, token: str
) -> None:
    post_form(client, token, "identity", **identity(camille, phone="06 98 76 54 32"))

    camille.refresh_from_db()
    assert camille.phone == "+33698765432"


def test_invalid_phone_is_refused_next_to_the_field_and_nothing_is_saved(
    client: Client, camille: Contact, token: str
) -> None:
    before = snapshot(camille)

    response = post_form(
        client,
        token,
        "identity",
        **identity(camille, last_name="Changed", phone="12", lang="en"),
    )

    assert response.status_code == 400
    assert "valid phone number" in field_error(response, "phone")
    assert snapshot(camille) == before
    assert not camille.timeline.filter(kind="updated").exists()
    # the person's input is kept so they can fix it
    html = response.content.decode()
    assert 'name="phone" value="12"' in html and 'value="Changed"' in html


def test_invalid_country_is_refused_next_to_the_field(
    client: Client, camille: Contact, token: str
) -> None:
    before = snapshot(camille)

    response = post_form(client, token, "identity", **identity(camille, country="F1", lang="en"))

    assert response.status_code == 400
    assert "two-letter" in field_error(response, "country")
    assert snapshot(camille) == before


def test_identity_form_cannot_change_the_email(
    client: Client, camille: Contact, token: str
) -> None:
    post_form(
        client, token, "identity", **identity(camille, city="Paris", email="evil@example.com")
    )

    camille.refresh_from_db()
    assert (camille.city, camille.email) == ("Paris", "camille.durand@example.fr")


# --- interests, frequency ---------------------------------------------------------------------


def test_person_chooses_topics_and_the_timeline_shows_it(
    client: Client, camille: Contact, token: str
) -> None:
    InterestFactory(slug="cycling")
    InterestFactory(slug="hiking")
    camille.interests.add(InterestFactory(slug="sailing"))

    response = post_form(client, token, "interests", interests=["cycling", "hiking"])

    assert response.status_code == 303
    assert sorted(camille.interests.values_list("slug", flat=True)) == ["cycling", "hiking"]
    entry = camille.timeline.get(kind="interests_changed")
    assert entry.data == {"added": ["cycling", "hiking"], "removed": ["sailing"]}
    assert read_page(client.get(center_path(token))).checked("interests") == {
        "cycling",
        "hiking",
    }


def test_unknown_topic_is_refused_and_nothing_is_saved(
    client: Client, camille: Contact, token: str
) -> None:
    InterestFactory(slug="cycling")

    response = post_form(client, token, "interests", interests=["cycling", "gambling"], lang="en")

    assert response.status_code == 400
    assert "gambling" in field_error(response, "interests")
    assert not camille.interests.exists()


def test_person_chooses_how_often(client: Client, camille: Contact, token: str) -> None:
    response = post_form(client, token, "frequency", frequency="monthly")

    assert response.status_code == 303
    camille.refresh_from_db()
    assert camille.frequency == "monthly"
    assert camille.timeline.get(kind="updated").data == {"fields": ["frequency"]}


def test_unknown_frequency_is_refused(client: Client, camille: Contact, token: str) -> None:
    response = post_form(client, token, "frequency", frequency="hourly", lang="en")

    assert response.status_code == 400
    assert "hourly" in field_error(response, "frequency")
    camille.refresh_from_db()
    assert camille.frequency == "as_published"


# --- pause and resume -------------------------------------------------------------------------


@pytest.mark.parametrize("months", [1, 3, 6])
@freeze_time("2026-03-31 09:00:00")
def test_person_pauses_everything_for_some_months(
    client: Client, camille: Contact, token: str, months: int
) -> None:
    response = post_form(client, token, "pause", months=str(months))

    assert response.status_code == 303
    camille.refresh_from_db()
    assert camille.status == ContactStatus.PAUSED
    assert camille.paused_until == timezone.now() + relativedelta(months=months)
    entry = camille.timeline.get(kind="paused")
    assert entry.data["source"] == "preference_center"
    assert OutboxEvent.objects.filter(topic="contact.updated").exists()


@pytest.mark.parametrize("months", ["2", "12", "", "soon"])
def test_pause_of_another_length_is_refused_and_nothing_is_saved(
    client: Client, camille: Contact, token: str, months: str
) -> None:
    before = snapshot(camille)

    response = post_form(client, token, "pause", months=months, lang="en")

    assert response.status_code == 400
    assert field_error(response, "months")
    assert snapshot(camille) == before
    assert not camille.timeline.filter(kind="paused").exists()


def test_paused_person_sees_until_when_and_resumes(
    client: Client, camille: Contact, token: str
) -> None:
    contact_pause(contact=camille, months=3)
    page = client.get(center_path(token, lang="en"), **BROWSER)
    assert "Your messages are paused until" in page_text(page)

    response = post_form(client, token, "resume")

    assert response.status_code == 303
    camille.refresh_from_db()
    assert (camille.status, camille.paused_until) == (ContactStatus.ACTIVE, None)
    assert camille.timeline.filter(kind="resumed").count() == 1


def test_resume_when_not_paused_changes_nothing(
    client: Client, camille: Contact, token: str
) -> None:
    before = (snapshot(camille), TimelineEvent.objects.count())

    response = post_form(client, token, "resume")

    assert response.status_code == 303
    assert (snapshot(camille), TimelineEvent.objects.count()) == before


def test_pause_leaves_consents_as_they_were(
    client: Client, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    grant(camille, purposes["newsletter"], channel="email")
    before = last_record_id()

    post_form(client, token, "pause", months="1")

    assert records_after(before) == []
    assert states(camille) == {("newsletter", "email"): "granted"}


# --- unsubscribe and resubscribe from the center --------------------------------------------


def test_unsubscribe_from_all_withdraws_everything_and_suppresses_the_email(
    client: Client, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    grant(camille, purposes["newsletter"], channel="email")
    grant(camille, purposes["offers"], channel="postal")
    before = last_record_id()

    response = post_form(client, token, "unsubscribe")

    assert response.status_code == 303
    written = records_after(before)
    assert sorted((r.purpose.slug, r.channel) for r in written) == [
        ("newsletter", "email"),
        ("offers", "postal"),
        ("product-news", "email"),  # the objection to legitimate interest
    ]
    assert {(r.action, r.source_kind) for r in written} == {("withdraw", "preference_center")}
    assert suppression_reason(kind="email", value=camille.email) == "global_unsubscribe"
    assert camille.timeline.filter(kind="unsubscribed").count() == 1


def test_unsubscribed_person_is_offered_to_resubscribe(
    client: Client, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    grant(camille, purposes["newsletter"], channel="email")
    post_form(client, token, "unsubscribe")

    response = client.get(center_path(token, lang="en"), **BROWSER)

    text = page_text(response)
    assert "You are unsubscribed from all marketing" in text
    assert "Unsubscribe from everything" not in text
    page = read_page(response)
    forms = {tag.get("value") for tag in page.inputs if tag.get("name") == "form"}
    assert "resubscribe" in forms and "unsubscribe" not in forms
    assert "Newsletter" in text  # what it would grant again is listed
    assert page.checked() == set()


def test_resubscribe_grants_again_what_unsubscribe_withdrew_and_lifts_the_suppression(
    client: Client, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    # given consents, one withdrawn by the person earlier, then "unsubscribe from all"
    grant(camille, purposes["newsletter"], channel="email")
    grant(camille, purposes["offers"], channel="postal")
    grant(camille, purposes["offers"], channel="postal", action="withdraw", evidence=None)
    post_form(client, token, "unsubscribe")
    before = last_record_id()

    # when they resubscribe
    response = post_form(client, token, "resubscribe")

    # then what unsubscribe withdrew is back, with fresh evidence; the earlier choice stays
    assert response.status_code == 303
    written = records_after(before)
    assert sorted((r.purpose.slug, r.channel, r.action) for r in written) == [
        ("newsletter", "email", "grant"),
        ("product-news", "email", "grant"),
    ]
    for record in written:
        assert record.source_kind == "preference_center"
        assert record.wording == record.purpose_version.wording_fr
        assert record.policy_version == settings.PRIVACY_POLICY_VERSION
        assert record.personal_evidence.user_agent == BROWSER["HTTP_USER_AGENT"]
    assert states(camille)[("offers", "postal")] == "withdrawn"
    assert suppression_reason(kind="email", value=camille.email) is None
    assert camille.timeline.filter(kind="resubscribed").count() == 1


def test_ticking_a_box_after_unsubscribing_lifts_the_suppression(
    client: Client, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    post_form(client, token, "unsubscribe")

    save_consents(client, token, tick=["offers:email"])

    assert states(camille)[("offers", "email")] == "granted"
    assert suppression_reason(kind="email", value=camille.email) is None


# --- objection to profiling -------------------------------------------------------------------


@pytest.fixture
def recommendations(db: None) -> Purpose:
    """Profiling on legitimate interest: on until the person objects."""
    return PurposeFactory(
        slug="recommendations",
        legal_basis=LegalBasis.LEGITIMATE_INTERESTS,
        is_profiling=True,
        channels=["email"],
    )


def test_objecting_to_profiling_withdraws_every_profiling_purpose_only(
    client: Client,
    camille: Contact,
    token: str,
    purposes: dict[str, Purpose],
    recommendations: Purpose,
) -> None:
    grant(camille, purposes["personalisation"], channel="email")
    grant(camille, purposes["newsletter"], channel="email")
    before = last_record_id()

    response = post_form(client, token, "objection", objected="1")

    assert response.status_code == 303
    camille.refresh_from_db()
    assert camille.profiling_objected_at is not None
    written = records_after(before)
    assert sorted((r.purpose.slug, r.action, r.source_kind) for r in written) == [
        ("personalisation", "withdraw", "preference_center"),
        ("recommendations", "withdraw", "preference_center"),
    ]
    assert states(camille)[("newsletter", "email")] == "granted"
    page = read_page(client.get(center_path(token), **BROWSER))
    assert "disabled" in page.boxes()["personalisation:email"]
    assert "disabled" in page.boxes()["recommendations:email"]
    assert camille.timeline.filter(kind="profiling_objection").count() == 1


def test_profiling_cannot_be_ticked_while_the_objection_stands(
    client: Client,
    camille: Contact,
    token: str,
    purposes: dict[str, Purpose],
    recommendations: Purpose,
) -> None:
    post_form(client, token, "objection", objected="1")
    before = last_record_id()

    response = save_consents(client, token, tick=["personalisation:email"], lang="en")

    assert response.status_code == 400
    assert "You objected to profiling" in page_text(response)
    assert records_after(before) == []


def test_lifting_the_objection_restores_legitimate_interest_profiling_only(
    client: Client,
    camille: Contact,
    token: str,
    purposes: dict[str, Purpose],
    recommendations: Purpose,
) -> None:
    grant(camille, purposes["personalisation"], channel="email")
    post_form(client, token, "objection", objected="1")
    before = last_record_id()

    response = post_form(client, token, "objection", objected="0")

    assert response.status_code == 303
    camille.refresh_from_db()
    assert camille.profiling_objected_at is None
    assert [(r.purpose.slug, r.action) for r in records_after(before)] == [
        ("recommendations", "grant")
    ]
    assert states(camille)[("personalisation", "email")] == "withdrawn"  # consent: tick again
    assert read_page(client.get(center_path(token))).checked() == {
        "product-news:email",
        "recommendations:email",
    }


def test_objecting_twice_writes_nothing_more(
    client: Client, camille: Contact, token: str, recommendations: Purpose
) -> None:
    post_form(client, token, "objection", objected="1")
    before = (last_record_id(), TimelineEvent.objects.count())

    post_form(client, token, "objection", objected="1")

    assert (last_record_id(), TimelineEvent.objects.count()) == before


def test_ticking_a_double_opt_in_purpose_waits_for_the_emailed_confirmation(
    transactional_db: None,
    celery_worker: Any,
    client: Client,
    camille: Contact,
    token: str,
    mailbox: Any,
) -> None:
    # the confirmation goes out once the save commits: in-process, or from the real worker
    PurposeFactory(slug="events", double_opt_in=True, channels=["email"])

    save_consents(client, token, tick=["events:email"])

    assert states(camille)[("events", "email")] == "pending"
    assert [message["To"] for message in mailbox.wait(1)] == [camille.email]
    page = client.get(center_path(token, lang="en"), **BROWSER)
    assert "events:email" not in read_page(page).checked()
    assert "waiting for your confirmation" in page_text(page)


def test_profiling_added_after_the_objection_shows_off_and_stays_untouched(
    client: Client,
    camille: Contact,
    token: str,
    purposes: dict[str, Purpose],
) -> None:
    # given a person who objected to profiling, then a new legitimate-interest profiling purpose
    post_form(client, token, "objection", objected="1")
    PurposeFactory(
        slug="lookalike",
        legal_basis=LegalBasis.LEGITIMATE_INTERESTS,
        is_profiling=True,
        channels=["email"],
    )

    # then the page shows it off (not a ticked box next to "off because you objected")
    page = read_page(client.get(center_path(token), **BROWSER))
    box = page.boxes()["lookalike:email"]
    assert "disabled" in box and "checked" not in box

    # and saving an unrelated choice writes nothing about it
    before = last_record_id()
    save_consents(client, token, tick=["newsletter:email"])
    assert [(r.purpose.slug, r.action) for r in records_after(before)] == [("newsletter", "grant")]


def test_what_the_person_typed_is_shown_as_text_never_run(
    client: Client, camille: Contact, token: str
) -> None:
    post_form(client, token, "identity", **identity(camille, company="<script>alert(1)</script>"))

    response = client.get(center_path(token), **BROWSER)

    assert "<script" not in response.content.decode().lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.content.decode()


# --- consents given on replaced wording, and forms older than the choices they send ------------


@pytest.mark.parametrize("material", [True, False])
def test_consent_on_materially_replaced_wording_shows_unticked_and_ticking_grants_it_again(
    client: Client, camille: Contact, token: str, purposes: dict[str, Purpose], material: bool
) -> None:
    # given a consent on the first wording, then a new wording (material or a typo fix)
    newsletter = purposes["newsletter"]
    grant(camille, newsletter, channel="email")
    purpose_wording_update(
        purpose=newsletter, wording_fr="Nouveau.", wording_en="New wording.", is_material=material
    )

    # when the person opens the page
    page = client.get(center_path(token, lang="en"), **BROWSER)

    # then only a material change unticks the box, with a word on why
    assert ("newsletter:email" in read_page(page).checked()) is not material
    assert ("the wording changed since you agreed" in page_text(page)) is material

    # and ticking it records a grant on the new wording, which makes the contact eligible
    before = last_record_id()
    assert save_consents(client, token, tick=["newsletter:email"]).status_code == 303
    written = records_after(before)
    if material:
        [record] = written
        assert (record.action, record.purpose_version.number) == ("grant", 2)
    else:
        assert written == []
    newsletter.refresh_from_db()
    assert contact_eligibility(camille, newsletter, "email") == []


def test_a_purpose_added_after_the_page_was_loaded_is_left_alone(
    client: Client, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    # given the page was loaded, then a legitimate-interest purpose was added
    page = read_page(client.get(center_path(token, lang="en"), **BROWSER))
    PurposeFactory(slug="loyalty", legal_basis=LegalBasis.LEGITIMATE_INTERESTS, channels=["email"])
    before = last_record_id()

    # when the person sends the old page with one new tick
    response = client.post(
        center_path(token),
        {
            "form": "consents",
            "lang": "en",
            "consent": sorted(page.submitted() | {"offers:email"}),
            **{k: v for k, v in page.hidden().items() if k.startswith(("version-", "seen:"))},
        },
        **BROWSER,
    )

    # then the tick is saved, and no objection is written in their name for the new purpose
    assert response.status_code == 303
    assert [(r.purpose.slug, r.action) for r in records_after(before)] == [("offers", "grant")]
    assert ("loyalty", "email") not in states(camille)


def test_a_choice_changed_since_the_page_was_loaded_is_refused_not_overwritten(
    client: Client, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    # given the page was loaded, then a web form recorded the newsletter grant
    page = read_page(client.get(center_path(token, lang="en"), **BROWSER))
    grant(camille, purposes["newsletter"], channel="email")
    before = (last_record_id(), snapshot(camille))

    # when the person sends the old page, where the newsletter box was unticked
    response = client.post(
        center_path(token),
        {
            "form": "consents",
            "lang": "en",
            "consent": sorted(page.submitted() | {"offers:email"}),
            **{k: v for k, v in page.hidden().items() if k.startswith(("version-", "seen:"))},
        },
        **BROWSER,
    )

    # then nothing is saved: the newer grant stands, and the person is asked to check it
    assert response.status_code == 400
    assert (last_record_id(), snapshot(camille)) == before
    assert states(camille)[("newsletter", "email")] == "granted"
    assert "changed since the page was opened" in field_error_near(response, "newsletter")


def field_error_near(response: Any, slug: str) -> str:
    found = re.search(rf'<ul class="error" id="error-{slug}">(.*?)</ul>', page_text(response), re.S)
    return found.group(1) if found else ""


def test_behind_a_trusted_proxy_the_evidence_keeps_the_forwarded_client_ip(
    settings: Any, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    # given the center served behind a proxy at the address the test browser comes from
    settings.TRUSTED_PROXIES = ["198.51.100.23"]
    behind_proxy = Client(HTTP_X_FORWARDED_FOR="203.0.113.50")
    before = last_record_id()

    save_consents(behind_proxy, token, tick=["newsletter:email"])

    [record] = records_after(before)
    assert record.personal_evidence.ip == "203.0.113.50"


def test_a_forwarded_for_header_from_an_untrusted_peer_is_not_evidence(
    settings: Any, camille: Contact, token: str, purposes: dict[str, Purpose]
) -> None:
    settings.TRUSTED_PROXIES = []
    spoofing = Client(HTTP_X_FORWARDED_FOR="203.0.113.50")
    before = last_record_id()

    save_consents(spoofing, token, tick=["newsletter:email"])

    [record] = records_after(before)
    assert record.personal_evidence.ip == "198.51.100.23"
