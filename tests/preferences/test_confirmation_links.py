"""Email change, data download and erasure: confirmed through a signed, time-limited link
sent by email (to the new address for an email change, else to the address on file)."""

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
from freezegun import freeze_time

from consent.models import PrivacyRequest, Purpose
from contacts.models import Contact
from contacts.services import suppression_add
from preferences.services import LINK_SALT, LinkAction, action_link_send
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


def test_email_change_sends_the_link_to_the_new_address_only(
    camille: Contact, request_link: Callable[..., HttpResponseAndMail]
) -> None:
    response, messages = request_link("email", email="camille@nouveau.fr")

    assert response.status_code == 303
    assert "done=email" in response["Location"]
    [message] = messages
    assert message["To"] == "camille@nouveau.fr"
    assert link_in(message)
    camille.refresh_from_db()
    assert camille.email == "camille.durand@example.fr"  # nothing changes before the link


def test_email_changes_only_when_the_link_page_is_posted(
    client: Client, camille: Contact, request_link: Callable[..., HttpResponseAndMail]
) -> None:
    _response, [message] = request_link("email", email="Camille@Nouveau.FR")
    link = link_in(message)

    # following the link shows a button and changes nothing
    page = client.get(link, **ENGLISH)
    assert page.status_code == 200
    assert "Confirm your new email address" in page_text(page)
    camille.refresh_from_db()
    assert camille.email == "camille.durand@example.fr"

    # pressing the button changes the address
    done = client.post(link, {"lang": "en"}, **ENGLISH)

    assert done.status_code == 200
    assert "Your email address is changed" in page_text(done)
    camille.refresh_from_db()
    assert camille.email == "camille@nouveau.fr"
    assert camille.timeline.filter(kind="email_changed", summary="camille@nouveau.fr").exists()


def test_confirming_the_email_change_twice_is_harmless(
    client: Client, camille: Contact, request_link: Callable[..., HttpResponseAndMail]
) -> None:
    _response, [message] = request_link("email", email="camille@nouveau.fr")
    client.post(link_in(message), **ENGLISH)

    again = client.post(link_in(message), **ENGLISH)

    assert again.status_code == 200
    assert camille.timeline.filter(kind="email_changed").count() == 1


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


def test_address_taken_after_the_link_was_sent_is_refused_on_confirmation(
    client: Client, camille: Contact, request_link: Callable[..., HttpResponseAndMail]
) -> None:
    _response, [message] = request_link("email", email="camille@nouveau.fr")
    ContactFactory(email="camille@nouveau.fr")

    response = client.post(link_in(message), **ENGLISH)

    assert "Another contact already has this email" in page_text(response)
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
    client: Client, camille: Contact, request_link: Callable[..., HttpResponseAndMail]
) -> None:
    # given a download link and a first email-change link sent for the address on file
    _response, [download] = request_link("download")
    _response, [*_earlier, to_first] = request_link("email", email="camille@first.fr")
    _response, [*_earlier, to_second] = request_link("email", email="camille@second.fr")
    assert to_first["To"] == "camille@first.fr" and to_second["To"] == "camille@second.fr"

    # when the person confirms the first change
    assert "Your email address is changed" in page_text(client.post(link_in(to_first), **ENGLISH))

    # then no other link sent for the old address works any more
    for link in (link_in(download), link_in(to_second)):
        assert "link is not valid" in page_text(client.post(link, {"format": "json"}, **ENGLISH))
    camille.refresh_from_db()
    assert camille.email == "camille@first.fr"
    # and the confirmed link itself stays harmless to follow again
    again = client.post(link_in(to_first), **ENGLISH)
    assert again.status_code == 200
    assert camille.timeline.filter(kind="email_changed").count() == 1
