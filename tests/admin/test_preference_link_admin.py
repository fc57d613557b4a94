"""Renewing a contact's preference link from the admin (a forwarded or leaked link)."""

import re
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from contacts.models import Contact, ContactStatus
from preferences.services import preference_token_issue
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:contacts_contact_changelist")


def renew(client: Client, *contacts: Contact) -> list[str]:
    response = client.post(
        CHANGELIST,
        {"action": "renew_preference_link", "_selected_action": [c.pk for c in contacts]},
        follow=True,
    )
    assert response.status_code == 200
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_marketer_renews_a_link_and_the_old_one_stops_working(
    as_marketer: Client, client: Client
) -> None:
    # given a contact whose link was forwarded
    camille = ContactFactory(email="camille.durand@example.fr")
    old = preference_token_issue(contact=camille)

    # when a marketer renews it from the contact list
    [message] = renew(as_marketer, camille)

    # then the old link is dead and the message shows the new one, which works
    assert client.get(reverse("preferences:center", args=[old])).status_code == 404
    url = re.search(re.escape(settings.SITE_URL) + r"/p/\S+/", message).group(0)
    assert old not in url
    response = client.get(urlsplit(url).path)
    assert response.status_code == 200
    assert "camille.durand@example.fr" in response.content.decode()


def test_renewal_is_recorded_on_the_timeline_with_who_did_it(as_marketer: Client) -> None:
    camille = ContactFactory(email="camille.durand@example.fr")

    renew(as_marketer, camille)

    assert camille.timeline.filter(kind="link_renewed", summary="marketer-persona").exists()


def test_renewing_several_contacts_shows_one_new_link_each(as_marketer: Client) -> None:
    contacts = [ContactFactory(), ContactFactory()]

    messages = renew(as_marketer, *contacts)

    assert len(messages) == 2
    for contact in contacts:
        assert any(contact.email in message for message in messages)


def test_erased_contacts_get_no_new_link(as_marketer: Client) -> None:
    erased = ContactFactory()
    Contact.objects.filter(pk=erased.pk).update(status=ContactStatus.ERASED)

    messages = renew(as_marketer, erased)

    assert messages == []
    assert not erased.preference_tokens.exists()
