"""The admin's "Merge" action: two contacts, a confirmation page choosing the one that stays."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from consent.models import ConsentState
from contacts.models import Contact, ContactStatus
from core.models import AuditAction, AuditEvent
from tests.admin.forms import submitted_form
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db

CONTACTS = reverse("admin:contacts_contact_changelist")


def merge_action(client: Client, *contacts: Contact, **extra: object):
    data = {"action": "merge_contacts", "_selected_action": [c.pk for c in contacts], **extra}
    return client.post(CONTACTS, data)


def confirmation_form(page) -> dict[str, list[str]]:
    """What the confirmation page's form posts: its hidden fields, as the browser sends them."""
    fields: dict[str, list[str]] = {}
    for name, value in re.findall(
        r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.content.decode()
    ):
        fields.setdefault(name, []).append(value)
    return fields


@pytest.fixture
def pair() -> tuple[Contact, Contact]:
    camille = ContactFactory(email="camille@example.fr", hubspot_id="HS-1")
    other = ContactFactory(email="c.martin@work.example", salesforce_id="SF-2")
    grant(other, PurposeFactory(slug="newsletter"))
    return camille, other


def test_the_dpo_sees_both_contacts_and_what_will_happen_before_merging(as_dpo, pair):
    camille, other = pair

    page = merge_action(as_dpo, camille, other)

    assert page.status_code == 200
    text = page.content.decode()
    assert "camille@example.fr" in text and "c.martin@work.example" in text
    assert "HS-1" in text and "SF-2" in text
    assert "Both consent histories are kept" in text
    # nothing is merged until the page is confirmed
    assert not Contact.objects.filter(status=ContactStatus.MERGED).exists()


def test_confirming_merges_into_the_chosen_contact_and_is_audited(as_dpo, pair):
    camille, other = pair
    page = merge_action(as_dpo, camille, other)

    response = as_dpo.post(CONTACTS, {**confirmation_form(page), "survivor": other.pk})

    assert response.status_code == 302
    camille.refresh_from_db()
    assert (camille.status, camille.merged_into) == (ContactStatus.MERGED, other)
    other.refresh_from_db()
    assert other.hubspot_id == "HS-1"  # filled from the merged contact
    (event,) = AuditEvent.objects.filter(action=AuditAction.MERGE)
    assert (event.contact, event.username) == (other, "dpo-persona")
    assert event.details == {"merged": str(camille.public_id), "survivor": str(other.public_id)}


def test_the_survivors_page_shows_the_merged_contacts_consent(as_dpo, pair):
    camille, other = pair
    merge_action(as_dpo, camille, other, confirmed="yes", survivor=camille.pk)

    page = as_dpo.get(reverse("admin:contacts_contact_change", args=[camille.pk]))

    assert page.status_code == 200
    text = page.content.decode()
    assert ConsentState.objects.get(contact=camille).status == "granted"
    assert f"{other.email} merged into this contact." in text  # the timeline entry
    # the other contact's own record, which stays on its contact, is shown here too
    origin = other.consent_records.get()
    assert "consent history of the contacts merged into this one" in text.lower()
    assert "1 record stays on a contact merged into this one." in text
    # listed in the contact's consent history, marked as the merged contact's
    assert reverse("admin:consent_consentrecord_change", args=[origin.pk]) in text
    assert "(from a contact merged into this one)" in text
    # and the merged contact's page names the contact that holds the person now
    page = as_dpo.get(reverse("admin:contacts_contact_change", args=[other.pk]))
    assert reverse("admin:contacts_contact_change", args=[camille.pk]) in page.content.decode()


def test_a_merge_needs_exactly_two_contacts(as_dpo, pair):
    camille, other = pair

    response = merge_action(as_dpo, camille, other, ContactFactory(), confirmed="yes")

    assert response.status_code == 302
    assert not Contact.objects.filter(status=ContactStatus.MERGED).exists()
    messages = [str(m) for m in as_dpo.get(CONTACTS).context["messages"]]
    assert "Select exactly two contacts to merge." in messages


def test_a_refused_merge_is_reported_and_writes_nothing(as_dpo, pair):
    camille, other = pair
    Contact.objects.filter(pk=other.pk).update(status=ContactStatus.ERASED)

    response = merge_action(as_dpo, camille, other, confirmed="yes", survivor=camille.pk)

    assert response.status_code == 302
    messages = [str(m) for m in as_dpo.get(CONTACTS).context["messages"]]
    assert "This contact was erased." in messages
    assert not AuditEvent.objects.filter(action=AuditAction.MERGE).exists()
    camille.refresh_from_db()
    assert camille.status == ContactStatus.ACTIVE


def test_a_marketer_cannot_merge(as_marketer, pair):
    camille, other = pair

    response = merge_action(as_marketer, camille, other, confirmed="yes", survivor=camille.pk)

    # the action is not offered: Django answers with the list and a "no action" message
    assert response.status_code in (200, 302)
    assert not Contact.objects.filter(status=ContactStatus.MERGED).exists()
    page = as_marketer.get(CONTACTS).content.decode()
    assert "merge_contacts" not in page


def test_a_merged_contacts_page_refuses_changes(as_dpo, pair):
    camille, other = pair
    merge_action(as_dpo, camille, other, confirmed="yes", survivor=other.pk)
    url = reverse("admin:contacts_contact_change", args=[camille.pk])

    response = as_dpo.post(url, submitted_form(as_dpo.get(url), city="Lyon"))

    assert response.status_code == 200
    assert "merged into another one: change that one instead" in response.content.decode()
    camille.refresh_from_db()
    assert camille.city == ""
