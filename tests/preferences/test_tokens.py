"""Preference links: random, kept only as a hash, and an invalid one reveals nothing."""

import base64
import hashlib
import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from contacts.models import Contact, ContactStatus
from contacts.services import contact_update
from preferences.models import PreferenceToken
from preferences.services import preference_link_renew, preference_token_issue
from preferences.tasks import send_preference_link
from tests.conftest import Mailbox, message_text
from tests.factories import ContactFactory
from tests.preferences.conftest import BROWSER, center_path, unsubscribe_path

pytestmark = pytest.mark.django_db

ENGLISH = {"HTTP_ACCEPT_LANGUAGE": "en"}


def every_stored_value() -> str:
    """Every row of every table of the database, as one text to search."""
    rows = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            # table names come from the database's own catalogue
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            rows.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(rows)


def test_token_carries_at_least_128_random_bits(camille: Contact) -> None:
    tokens = {preference_token_issue(contact=camille) for _ in range(20)}

    assert len(tokens) == 20
    for token in tokens:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        assert len(raw) * 8 >= 128


def test_only_the_sha256_digest_of_the_token_is_stored(camille: Contact) -> None:
    token = preference_token_issue(contact=camille)

    stored = PreferenceToken.objects.get(contact=camille)
    assert stored.digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in every_stored_value()


def test_live_token_opens_the_contacts_preference_center(client: Client, token: str) -> None:
    response = client.get(center_path(token), **BROWSER)

    assert response.status_code == 200
    assert "camille.durand@example.fr" in response.content.decode()


def test_a_contact_may_hold_several_live_links(client: Client, camille: Contact) -> None:
    first = preference_token_issue(contact=camille)
    second = preference_token_issue(contact=camille)

    assert client.get(center_path(first)).status_code == 200
    assert client.get(center_path(second)).status_code == 200


def revoked_token(camille: Contact) -> str:
    token = preference_token_issue(contact=camille)
    preference_link_renew(contact=camille, by="dpo-persona")
    return token


def erased_contact_token(camille: Contact) -> str:
    token = preference_token_issue(contact=camille)
    Contact.objects.filter(pk=camille.pk).update(status=ContactStatus.ERASED)
    return token


INVALID_TOKENS = {
    "unknown": lambda camille: "A" * 43,
    "malformed": lambda camille: "not a token!",
    "too short": lambda camille: preference_token_issue(contact=camille)[:-1],
    "revoked": revoked_token,
    "of an erased contact": erased_contact_token,
}


@pytest.mark.parametrize("path", [center_path, unsubscribe_path], ids=["center", "unsubscribe"])
def test_every_invalid_token_gets_the_same_page_that_reveals_nothing(
    client: Client, camille: Contact, path: object
) -> None:
    # given a reference 404 page for a token nobody ever held
    reference = client.get(path("B" * 43), **ENGLISH)
    assert reference.status_code == 404

    for case, make in INVALID_TOKENS.items():
        token = make(camille)

        response = client.get(path(token), **ENGLISH)

        assert response.status_code == 404, case
        assert response.content == reference.content, case
        page = response.content.decode()
        assert "This link is not valid" in page
        assert token not in page, case
        assert "camille" not in page.lower(), case
        assert response["Referrer-Policy"] == "same-origin"


def test_invalid_token_post_writes_nothing_and_gets_the_same_page(
    client: Client, camille: Contact
) -> None:
    token = revoked_token(camille)
    before = every_stored_value()

    response = client.post(unsubscribe_path(token), {"List-Unsubscribe": "One-Click"}, **ENGLISH)

    assert response.status_code == 404
    assert "This link is not valid" in response.content.decode()
    assert every_stored_value() == before


def test_renewing_revokes_every_link_and_a_new_one_is_emailed(
    client: Client, camille: Contact, mailbox: Mailbox, django_capture_on_commit_callbacks: Any
) -> None:
    # given two links sent in earlier messages
    old = [preference_token_issue(contact=camille) for _ in range(2)]

    # when the link is renewed (a forwarded message): the caller gets no link
    with django_capture_on_commit_callbacks() as queued:
        assert preference_link_renew(contact=camille, by="dpo-persona") is None

    # then the old links are dead at once, the renewal is on the timeline, and the task
    # queued after commit emails the person a working link
    assert [client.get(center_path(token)).status_code for token in old] == [404, 404]
    assert camille.timeline.filter(kind="link_renewed", summary="dpo-persona").count() == 1
    assert len(queued) == 1
    send_preference_link.apply(args=[camille.id])
    [message] = mailbox.messages
    assert message["To"] == "camille.durand@example.fr"
    new = re.search(r"/p/[A-Za-z0-9_-]+/", message_text(message)).group(0)
    assert client.get(new).status_code == 200


def test_another_contacts_token_does_not_open_camilles_page(
    client: Client, camille: Contact
) -> None:
    other = ContactFactory(email="louis.petit@example.fr")
    token = preference_token_issue(contact=other)

    page = client.get(center_path(token)).content.decode()

    assert "louis.petit@example.fr" in page
    assert "camille.durand@example.fr" not in page


def test_links_issued_before_an_email_change_from_anywhere_stop_working(
    client: Client, camille: Contact
) -> None:
    # given a link sent to the address on file
    old = preference_token_issue(contact=camille)

    # when the address is changed elsewhere than in the center (the admin, the API, a CRM)
    contact_update(contact=camille, email="camille@nouveau.fr")

    # then the old mailbox's link opens nothing, while a link issued since works
    assert client.get(center_path(old), **BROWSER).status_code == 404
    assert client.get(unsubscribe_path(old), **BROWSER).status_code == 404
    new = preference_token_issue(contact=camille)
    assert client.get(center_path(new), **BROWSER).status_code == 200
