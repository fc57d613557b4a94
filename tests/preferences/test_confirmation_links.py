"""Email change, data download and erasure: confirmed through signed, time-limited links sent
by email (an email change from the address on file, then from the new one; data links to an
address that has held the contact for 7 days)."""

import io
import json
import re
import zipfile
from collections.abc import Callable
from datetime import timedelta
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core import signing
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time

from consent.models import Purpose
from contacts.models import Contact
from contacts.services import contact_update, suppression_add
from preferences.services import LINK_SALT, LinkAction, action_link_send
from preferences.tasks import forget_previous_emails
from privacy.models import PrivacyRequest
from privacy.services import contact_erase
from tests.api.live import LIVE_DB
from tests.conftest import USES_REAL_WORKER, Mailbox, message_text, wait_for
from tests.factories import ContactFactory, InterestFactory, grant
from tests.preferences.conftest import BROWSER, field_error, page_text, post_form, snapshot

# With a real worker, the link goes out from the worker once the request commits: such a test
# must commit (transactional), and waits for the worker's mail.
pytestmark = LIVE_DB if USES_REAL_WORKER else pytest.mark.django_db

ENGLISH = {**BROWSER, "HTTP_ACCEPT_LANGUAGE": "en"}
HttpResponseAndMail = tuple[Any, list[Message]]


def link_in(message: Message) -> str:
    """The confirmation link of an email's plain-text body, its page switched to English."""
    found = re.search(r"https?://\S+/p/confirm/\S+/", message_text(message))
    assert found, message_text(message)
    return urlsplit(found.group(0)).path + "?lang=en"


@pytest.fixture
def request_link(
    client: Client,
    camille: Contact,
    token: str,
    mailbox: Mailbox,
    celery_worker: Any,
    django_capture_on_commit_callbacks: Any,
) -> Callable[..., HttpResponseAndMail]:
    """Submit a center form that asks for a link, as committed; return the answer and the
    mail sent, once the task (in-process or on the real worker) has finished."""

    def links_sent() -> int:
        return camille.timeline.filter(kind="confirmation_sent").count()

    def submit(form: str, **data: str) -> HttpResponseAndMail:
        if not USES_REAL_WORKER:
            with django_capture_on_commit_callbacks(execute=True):
                response = post_form(client, token, form, **data)
            return response, mailbox.messages
        before = links_sent()
        response = post_form(client, token, form, **data)
        if response.status_code == 303:  # accepted: the task records the link it sent last
            wait_for(lambda: links_sent() > before)
        return response, mailbox.messages

    return submit


# --- email change -----------------------------------------------------------------------------


@pytest.fixture
def press(
    client: Client, mailbox: Mailbox, django_capture_on_commit_callbacks: Any
) -> Callable[..., HttpResponseAndMail]:
    """POST a confirmation link's page as committed; wait for the `mails` it sends."""

    def submit(link: str, mails: int = 0, **data: str) -> HttpResponseAndMail:
        before = len(mailbox.messages)
        if not USES_REAL_WORKER:
            with django_capture_on_commit_callbacks(execute=True):
                response = client.post(link, {"lang": "en", **data}, **ENGLISH)
        else:
            response = client.post(link, {"lang": "en", **data}, **ENGLISH)
            wait_for(lambda: len(mailbox.messages) >= before + mails)
        return response, mailbox.messages

    return submit


def test_email_change_is_first_confirmed_from_the_address_on_file(
    camille: Contact, request_link: Callable[..., HttpResponseAndMail]
) -> None:
    response, messages = request_link("email", email="camille@nouveau.fr")

    assert response.status_code == 303
    assert "done=email" in response["Location"]
    [message] = messages
    assert message["To"] == "camille.durand@example.fr"
    assert "camille@nouveau.fr" in message_text(message)
    assert link_in(message)
    camille.refresh_from_db()
    assert camille.email == "camille.durand@example.fr"  # nothing changes before the links


def test_the_address_on_file_approves_then_the_new_address_gets_the_last_link(
    client: Client,
    camille: Contact,
    request_link: Callable[..., HttpResponseAndMail],
    press: Callable[..., HttpResponseAndMail],
) -> None:
    _response, [to_current] = request_link("email", email="Camille@Nouveau.FR")
    first = link_in(to_current)

    # following the first link shows a button and changes or sends nothing
    page = client.get(first, **ENGLISH)
    assert page.status_code == 200
    assert "Confirm the change of your email address" in page_text(page)

    # pressing it sends the last link to the new address, and still changes nothing
    approved, [_to_current, to_new] = press(first, mails=1)

    assert approved.status_code == 200
    assert "We sent a link to camille@nouveau.fr" in page_text(approved)
    assert to_new["To"] == "camille@nouveau.fr"
    camille.refresh_from_db()
    assert camille.email == "camille.durand@example.fr"


def change_email(
    request_link: Callable[..., HttpResponseAndMail],
    press: Callable[..., HttpResponseAndMail],
    email: str = "camille@nouveau.fr",
) -> tuple[Any, list[Message]]:
    """The whole change: asked in the center, approved from the old address, confirmed from
    the new one (which sends the notice to the old address)."""
    _response, [*_earlier, to_current] = request_link("email", email=email)
    _response, [*_earlier, to_new] = press(link_in(to_current), mails=1)
    return press(link_in(to_new), mails=1)


def test_email_changes_when_the_new_address_confirms_and_the_old_one_is_told(
    client: Client,
    camille: Contact,
    request_link: Callable[..., HttpResponseAndMail],
    press: Callable[..., HttpResponseAndMail],
) -> None:
    done, [*_links, notice] = change_email(request_link, press)

    assert done.status_code == 200
    assert "Your email address is changed" in page_text(done)
    camille.refresh_from_db()
    assert camille.email == "camille@nouveau.fr"
    assert camille.timeline.filter(kind="email_changed", summary="camille@nouveau.fr").exists()
    # the old address is told, with whom to contact, and with no link acting on the choices
    assert notice["To"] == "camille.durand@example.fr"
    text = message_text(notice)
    assert "c•••@nouveau.fr" in text
    assert settings.DPO_CONTACT in text
    # (the footer's links are the privacy notice's and the CNIL's, never ours)
    assert settings.SITE_URL not in text and "/p/" not in text and "/u/" not in text


def test_preference_links_issued_before_the_change_stop_working(
    client: Client,
    camille: Contact,
    token: str,
    request_link: Callable[..., HttpResponseAndMail],
    press: Callable[..., HttpResponseAndMail],
) -> None:
    assert client.get(f"/p/{token}/", **ENGLISH).status_code == 200

    done, _messages = change_email(request_link, press)

    assert client.get(f"/p/{token}/", **ENGLISH).status_code == 404
    assert client.get(f"/u/{token}/", **ENGLISH).status_code == 404
    # the page that applied the change leads to a new, working preference center
    [new_center] = re.findall(r'href="(/p/[^"]+)"', done.content.decode())
    assert "camille@nouveau.fr" in page_text(client.get(new_center.replace("&amp;", "&")))


def test_confirming_the_email_change_twice_is_harmless(
    client: Client,
    camille: Contact,
    request_link: Callable[..., HttpResponseAndMail],
    press: Callable[..., HttpResponseAndMail],
) -> None:
    _response, [to_current] = request_link("email", email="camille@nouveau.fr")
    _response, [_to_current, to_new] = press(link_in(to_current), mails=1)
    press(link_in(to_new), mails=1)

    again, messages = press(link_in(to_new))

    assert again.status_code == 200
    assert camille.timeline.filter(kind="email_changed").count() == 1
    assert len(messages) == 3  # the old address was told once
    # the approval link of the old address is dead now
    assert "link is not valid" in page_text(press(link_in(to_current))[0])


def test_email_taken_by_another_contact_is_refused_next_to_the_field(
    camille: Contact, request_link: Callable[..., HttpResponseAndMail]
) -> None:
    ContactFactory(email="louis.petit@example.fr")

    response, messages = request_link("email", email="louis.petit@example.fr", lang="en")

    assert response.status_code == 400
    assert "Another contact already has this email" in field_error(response, "email")
    assert messages == []


def test_suppressed_email_is_refused_next_to_the_field(
    camille: Contact, request_link: Callable[..., HttpResponseAndMail]
) -> None:
    suppression_add(reason="hard_bounce", email="gone@example.fr")

    response, messages = request_link("email", email="gone@example.fr", lang="en")

    assert response.status_code == 400
    assert "suppression list" in field_error(response, "email")
    assert messages == []


@pytest.mark.parametrize("email", ["not-an-email", "camille.durand@example.fr"])
def test_malformed_or_same_email_is_refused_next_to_the_field(
    camille: Contact, request_link: Callable[..., HttpResponseAndMail], email: str
) -> None:
    response, messages = request_link("email", email=email, lang="en")

    assert response.status_code == 400
    assert field_error(response, "email")
    assert messages == []


def test_address_taken_after_the_links_were_sent_is_refused_at_each_step(
    client: Client,
    camille: Contact,
    request_link: Callable[..., HttpResponseAndMail],
    press: Callable[..., HttpResponseAndMail],
) -> None:
    _response, [to_current] = request_link("email", email="camille@nouveau.fr")
    _response, [_to_current, to_new] = press(link_in(to_current), mails=1)
    ContactFactory(email="camille@nouveau.fr")

    for link in (to_current, to_new):
        response, messages = press(link_in(link))
        assert "Another contact already has this email" in page_text(response)
    assert len(messages) == 2
    camille.refresh_from_db()
    assert camille.email == "camille.durand@example.fr"


# --- data download ----------------------------------------------------------------------------


@pytest.fixture
def history(camille: Contact, newsletter: Purpose) -> None:
    """Camille granted, then withdrew, the newsletter; she follows cycling."""
    grant(camille, newsletter, channel="email")
    grant(camille, newsletter, channel="email", action="withdraw", evidence=None)
    camille.interests.add(InterestFactory(slug="cycling"))


def test_download_link_goes_to_the_address_on_file(
    client: Client, camille: Contact, request_link: Callable[..., HttpResponseAndMail]
) -> None:
    response, [message] = request_link("download")

    assert response.status_code == 303
    assert message["To"] == "camille.durand@example.fr"
    page = client.get(link_in(message), **ENGLISH)
    assert page.status_code == 200
    assert "Download as JSON" in page_text(page)
    assert camille.timeline.filter(kind="data_exported").count() == 0  # GET gives nothing


def test_download_as_json_holds_identity_consents_with_history_interests_and_timeline(
    client: Client,
    camille: Contact,
    history: None,
    request_link: Callable[..., HttpResponseAndMail],
) -> None:
    _response, [message] = request_link("download")

    response = client.post(link_in(message), {"format": "json"}, **ENGLISH)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith("attachment;")
    data = json.loads(response.content)
    assert data["contact"]["email"] == "camille.durand@example.fr"
    assert data["contact"]["last_name"] == "Durand"
    assert data["contact"]["id"] == str(camille.public_id)
    assert [(c["purpose"], c["channel"], c["status"]) for c in data["consents"]] == [
        ("newsletter", "email", "withdrawn")
    ]
    assert [h["action"] for h in data["consent_history"]] == ["grant", "withdraw"]
    assert data["consent_history"][0]["wording"] == "J'accepte de recevoir newsletter."
    assert data["consent_history"][0]["ip"] == "203.0.113.7"
    assert [i["slug"] for i in data["interests"]] == ["cycling"]
    assert "consent_changed" in {event["kind"] for event in data["timeline"]}
    assert camille.timeline.filter(kind="data_exported", summary="json").count() == 1


def test_download_as_csv_is_a_zip_of_csv_files(
    client: Client,
    camille: Contact,
    history: None,
    request_link: Callable[..., HttpResponseAndMail],
) -> None:
    _response, [message] = request_link("download")

    response = client.post(link_in(message), {"format": "csv"}, **ENGLISH)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert {"contact.csv", "consents.csv", "consent_history.csv", "interests.csv"} <= set(
        archive.namelist()
    )
    assert "timeline.csv" in archive.namelist()
    assert "camille.durand@example.fr" in archive.read("contact.csv").decode()
    history_rows = archive.read("consent_history.csv").decode().splitlines()
    assert len(history_rows) == 3  # header, grant, withdraw
    assert "cycling" in archive.read("interests.csv").decode()
    assert camille.timeline.filter(kind="data_exported", summary="csv").count() == 1


# --- erasure ----------------------------------------------------------------------------------


def test_erasure_link_goes_to_the_address_on_file_and_get_files_nothing(
    client: Client, camille: Contact, request_link: Callable[..., HttpResponseAndMail]
) -> None:
    response, [message] = request_link("erasure")

    assert response.status_code == 303
    assert message["To"] == "camille.durand@example.fr"
    page = client.get(link_in(message), **ENGLISH)
    assert "Confirm your erasure request" in page_text(page)
    assert not PrivacyRequest.objects.exists()


def test_confirmed_erasure_files_exactly_one_request_even_when_confirmed_twice(
    client: Client, camille: Contact, request_link: Callable[..., HttpResponseAndMail]
) -> None:
    _response, [message] = request_link("erasure")

    first = client.post(link_in(message), **ENGLISH)
    second = client.post(link_in(message), **ENGLISH)

    assert first.status_code == second.status_code == 200
    assert "Your erasure request is filed" in page_text(second)
    if USES_REAL_WORKER:  # the worker carries out the verified request at once
        wait_for(lambda: PrivacyRequest.objects.filter(status="completed").exists())
    [filed] = PrivacyRequest.objects.all()
    assert (filed.contact, filed.type, filed.source_kind) == (
        camille,
        "erasure",
        "preference_center",
    )
    # filed once, verified by the email link (no step back to "received")
    assert list(filed.history.order_by("id").values_list("status", flat=True))[:1] == ["verified"]


def test_requesting_a_link_changes_nothing_else(
    camille: Contact, request_link: Callable[..., HttpResponseAndMail]
) -> None:
    before = snapshot(camille)

    for form in ("download", "erasure"):
        request_link(form)

    assert snapshot(camille) == before
    assert camille.timeline.filter(kind="confirmation_sent").count() == 2


# --- expired or tampered links ----------------------------------------------------------------


@pytest.mark.parametrize("action", LinkAction.ALL)
def test_expired_link_gets_the_invalid_link_page(
    client: Client, camille: Contact, mailbox: Mailbox, action: str
) -> None:
    with freeze_time("2026-03-02 10:00:00"):
        action_link_send(contact_id=camille.id, action=action, new_email="camille@nouveau.fr")
    [message] = mailbox.messages

    with freeze_time("2026-03-02 10:00:00") as clock:
        clock.tick(settings.PREFERENCES_LINK_TTL - timedelta(seconds=1))
        assert client.get(link_in(message), **ENGLISH).status_code == 200
        clock.tick(timedelta(seconds=2))
        expired = client.post(link_in(message), {"format": "json"}, **ENGLISH)

    assert expired.status_code == 404
    assert "This link is not valid" in page_text(expired)
    assert not PrivacyRequest.objects.exists()
    camille.refresh_from_db()
    assert camille.email == "camille.durand@example.fr"


def test_shorter_link_lifetime_setting_is_honoured(
    client: Client, camille: Contact, mailbox: Mailbox, settings: Any
) -> None:
    settings.PREFERENCES_LINK_TTL = timedelta(hours=1)
    with freeze_time("2026-03-02 10:00:00"):
        action_link_send(contact_id=camille.id, action=LinkAction.ERASURE)
    [message] = mailbox.messages

    with freeze_time("2026-03-02 11:00:01"):
        response = client.post(link_in(message), **ENGLISH)

    assert response.status_code == 404
    assert not PrivacyRequest.objects.exists()


def tampered_links(camille: Contact, mailbox: Mailbox) -> dict[str, str]:
    action_link_send(contact_id=camille.id, action=LinkAction.DOWNLOAD)
    path = link_in(mailbox.messages[0])
    signed = path.split("/")[3]
    flipped = signed[:-3] + ("A" if signed[-3] != "A" else "B") + signed[-2:]
    # a forged payload: erasure instead of download, signed with another key
    forged = signing.dumps(
        {"c": str(camille.public_id), "a": "erasure", "e": ""},
        key="not-the-server-secret",
        salt=LINK_SALT,
        compress=True,
    )
    return {
        "one character changed": path.replace(signed, flipped),
        "cut short": path.replace(signed, signed[:-6]),
        "signed with another key": path.replace(signed, forged),
        "another salt": path.replace(
            signed,
            signing.dumps({"c": str(camille.public_id), "a": "erasure", "e": ""}, compress=True),
        ),
    }


def test_tampered_link_gets_the_invalid_link_page(
    client: Client, camille: Contact, mailbox: Mailbox
) -> None:
    for case, path in tampered_links(camille, mailbox).items():
        response = client.post(path, {"format": "json"}, **ENGLISH)

        assert response.status_code == 404, case
        assert "This link is not valid" in page_text(response), case
        assert str(camille.public_id) not in page_text(response)
    assert not PrivacyRequest.objects.exists()
    assert not camille.timeline.filter(kind="data_exported").exists()


def test_link_of_an_erased_contact_is_invalid(
    client: Client, camille: Contact, mailbox: Mailbox
) -> None:
    action_link_send(contact_id=camille.id, action=LinkAction.ERASURE)
    Contact.objects.filter(pk=camille.pk).update(status="erased")

    response = client.post(link_in(mailbox.messages[0]), **ENGLISH)

    assert response.status_code == 404
    assert not PrivacyRequest.objects.exists()


def test_confirmation_page_keeps_the_link_private(
    client: Client, camille: Contact, mailbox: Mailbox
) -> None:
    action_link_send(contact_id=camille.id, action=LinkAction.DOWNLOAD)

    response = client.get(link_in(mailbox.messages[0]), **ENGLISH)

    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cache-Control"] == "no-store"
    assert "<script" not in response.content.decode().lower()


def test_links_sent_for_an_address_die_when_the_address_changes(
    client: Client,
    camille: Contact,
    request_link: Callable[..., HttpResponseAndMail],
    press: Callable[..., HttpResponseAndMail],
) -> None:
    # given a download link and two email-change approvals sent to the address on file
    _response, [download] = request_link("download")
    _response, [*_earlier, to_first] = request_link("email", email="camille@first.fr")
    _response, [*_earlier, to_second] = request_link("email", email="camille@second.fr")
    _response, [*_earlier, to_second_new] = press(link_in(to_second), mails=1)

    # when the person completes the first change
    _response, [*_earlier, to_first_new] = press(link_in(to_first), mails=1)
    assert "Your email address is changed" in page_text(press(link_in(to_first_new), mails=1)[0])

    # then no other link sent before works any more
    for link in (download, to_second, to_second_new):
        response = client.post(link_in(link), {"format": "json"}, **ENGLISH)
        assert "link is not valid" in page_text(response)
    camille.refresh_from_db()
    assert camille.email == "camille@first.fr"
    # and the confirmed link itself stays harmless to follow again
    again = client.post(link_in(to_first_new), **ENGLISH)
    assert again.status_code == 200
    assert camille.timeline.filter(kind="email_changed").count() == 1


# --- after an email change, the data goes to an address that held the contact 7 days -----------


def changed_days_ago(contact: Contact, days: float) -> None:
    """The address changed (from any surface: center, admin, API, CRM) `days` ago."""
    contact_update(contact=contact, email="camille@nouveau.fr")
    Contact.objects.filter(pk=contact.pk).update(
        email_changed_at=timezone.now() - timedelta(days=days)
    )


@pytest.mark.parametrize("form", ["download", "erasure"])
def test_for_7_days_after_a_change_data_links_go_to_the_previous_address_only(
    client: Client, camille: Contact, request_link: Callable[..., HttpResponseAndMail], form: str
) -> None:
    changed_days_ago(camille, 6.9)

    response, [message] = request_link(form)

    assert response.status_code == 303
    assert message["To"] == "camille.durand@example.fr"
    assert "camille@nouveau.fr" not in str(message["Cc"]) + str(message["To"])
    # the email is in Camille's language (French): it says why it reached the old address
    assert "nous envoyons ce lien à votre adresse précédente" in message_text(message)
    assert client.get(link_in(message), **ENGLISH).status_code == 200


@pytest.mark.parametrize("form", ["download", "erasure"])
def test_once_the_new_address_held_the_contact_7_days_data_links_go_there(
    camille: Contact, request_link: Callable[..., HttpResponseAndMail], form: str
) -> None:
    changed_days_ago(camille, 7.1)

    _response, [message] = request_link(form)

    assert message["To"] == "camille@nouveau.fr"
    assert "previous address" not in message_text(message)


def test_changes_in_a_row_keep_the_address_that_held_the_contact_longest(
    camille: Contact,
) -> None:
    contact_update(contact=camille, email="camille@first.fr")
    camille = contact_update(contact=camille, email="camille@second.fr")

    assert camille.trusted_emails() == ["camille.durand@example.fr"]
    assert camille.previous_email == "camille.durand@example.fr"


def test_the_previous_address_is_forgotten_once_no_longer_needed(camille: Contact) -> None:
    changed_days_ago(camille, 6)
    other = ContactFactory(email="louis@example.fr")
    contact_update(contact=other, email="louis@nouveau.fr")
    Contact.objects.filter(pk=other.pk).update(email_changed_at=timezone.now() - timedelta(days=8))

    assert forget_previous_emails() == 1

    camille.refresh_from_db()
    other.refresh_from_db()
    assert camille.previous_email == "camille.durand@example.fr"
    assert other.previous_email == ""
    assert other.trusted_emails() == ["louis@nouveau.fr"]


def test_erasure_scrubs_the_previous_address(camille: Contact) -> None:
    changed_days_ago(camille, 1)

    contact_erase(contact=camille, reason="test")

    camille.refresh_from_db()
    assert camille.previous_email == ""
    assert camille.email_changed_at is None
    assert "example.fr" not in str(Contact.objects.filter(pk=camille.pk).values().get())
