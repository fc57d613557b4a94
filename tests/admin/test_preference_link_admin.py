"""Renewing a contact's preference link from the admin (a forwarded or leaked link): the new
link is emailed to the person, never shown to staff, and the renewal is audited."""

import re
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from contacts.models import Contact, ContactStatus
from contacts.services import contact_update
from core.models import AuditEvent
from preferences.services import preference_token_issue
from tests.api.live import LIVE_DB
from tests.conftest import USES_REAL_WORKER, Mailbox, message_text, wait_for
from tests.factories import ContactFactory

# The link goes out from a task once the action commits (on the real worker when there is one).
pytestmark = LIVE_DB if USES_REAL_WORKER else pytest.mark.django_db

CHANGELIST = reverse("admin:contacts_contact_changelist")
LIVE_LINK = re.compile(r"/[pu]/[A-Za-z0-9_-]{20,}/")


@pytest.fixture
def renew(mailbox: Mailbox, celery_worker: Any, django_capture_on_commit_callbacks: Any) -> Any:
    """Run the admin action as committed; answer the messages shown and the mail sent."""

    def run(client: Client, *contacts: Contact) -> tuple[list[str], list[Message]]:
        data = {"action": "renew_preference_link", "_selected_action": [c.pk for c in contacts]}
        if USES_REAL_WORKER:
            response = client.post(CHANGELIST, data, follow=True)
            emailed = [c for c in contacts if c.status != ContactStatus.ERASED]
            wait_for(lambda: len(mailbox.messages) >= len(emailed))
        else:
            with django_capture_on_commit_callbacks(execute=True):
                response = client.post(CHANGELIST, data, follow=True)
        assert response.status_code == 200
        assert not LIVE_LINK.search(response.content.decode())
        shown = [str(message) for message in get_messages(response.wsgi_request)]
        return shown, mailbox.messages

    return run


def link_in(message: Message) -> str:
    found = re.search(r"https?://\S+(/p/\S+/)", message_text(message))
    assert found, message_text(message)
    return found.group(1)


def test_renewal_emails_the_new_link_to_the_person_and_the_old_one_stops_working(
    as_marketer: Client, client: Client, renew: Any
) -> None:
    # given a contact whose link was forwarded
    camille = ContactFactory(email="camille.durand@example.fr")
    old = preference_token_issue(contact=camille)

    # when a marketer renews it from the contact list
    [shown], [sent] = renew(as_marketer, camille)

    # then the old link is dead, the marketer saw no link, and the person got a working one
    assert client.get(reverse("preferences:center", args=[old])).status_code == 404
    assert "/p/" not in shown and "emailed" in shown
    assert sent["To"] == "camille.durand@example.fr"
    new = link_in(sent)
    assert old not in new
    response = client.get(urlsplit(new).path)
    assert response.status_code == 200
    assert "camille.durand@example.fr" in response.content.decode()


def test_renewal_is_in_the_audit_log_and_on_the_timeline_with_who_did_it(
    as_marketer: Client, renew: Any
) -> None:
    camille = ContactFactory(email="camille.durand@example.fr")

    renew(as_marketer, camille)

    assert camille.timeline.filter(kind="link_renewed", summary="marketer-persona").exists()
    [event] = AuditEvent.objects.filter(action="link_renewal")
    assert (event.username, event.contact_id) == ("marketer-persona", camille.pk)
    assert not LIVE_LINK.search(str(event.details))


def test_renewing_several_contacts_emails_each_their_own_link(
    as_marketer: Client, renew: Any
) -> None:
    contacts = [ContactFactory(), ContactFactory()]

    shown, sent = renew(as_marketer, *contacts)

    assert len(shown) == 2
    assert sorted(message["To"] for message in sent) == sorted(c.email for c in contacts)
    assert link_in(sent[0]) != link_in(sent[1])


def test_no_admin_page_shows_a_marketer_a_live_link(as_marketer: Client, renew: Any) -> None:
    # given a contact with live links, one of them just renewed
    camille = ContactFactory(email="camille.durand@example.fr")
    preference_token_issue(contact=camille)
    renew(as_marketer, camille)

    # then neither the contact list nor the contact's page (timeline included) shows one
    for page in (CHANGELIST, reverse("admin:contacts_contact_change", args=[camille.pk])):
        response = as_marketer.get(page)
        assert response.status_code == 200
        assert not LIVE_LINK.search(response.content.decode()), page


def test_renewal_after_a_recent_email_change_goes_to_the_previous_address(
    as_marketer: Client, renew: Any
) -> None:
    camille = ContactFactory(email="camille.durand@example.fr")
    # an address typed in by someone else (a marketer, the API, a CRM) a moment ago
    contact_update(contact=camille, email="someone.else@example.com")

    _shown, [sent] = renew(as_marketer, camille)

    assert sent["To"] == "camille.durand@example.fr"


def test_erased_contacts_get_no_new_link(as_marketer: Client, renew: Any) -> None:
    erased = ContactFactory(status=ContactStatus.ERASED)

    shown, sent = renew(as_marketer, erased)

    assert shown == [] and sent == []
    assert not erased.preference_tokens.exists()
