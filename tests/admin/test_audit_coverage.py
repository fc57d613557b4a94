"""The audit log also covers contact listings and searches, outbox payloads and restrictions,
and names people (or says they were erased) instead of showing UUIDs."""

import pytest
from django.test import Client
from django.urls import reverse

from contacts.models import Contact
from core.models import AuditAction, AuditEvent
from tests.admin.forms import submitted_form
from tests.factories import ContactFactory, OutboxEventFactory

pytestmark = pytest.mark.django_db

AUDIT_LOG = reverse("admin:core_auditevent_changelist")
CONTACTS = reverse("admin:contacts_contact_changelist")
OFFICE_IP = "198.51.100.7"


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def test_listing_contacts_logs_the_search_terms_and_filters(as_marketer: Client) -> None:
    response = as_marketer.get(
        CONTACTS, {"q": "moreau", "status__exact": "active"}, REMOTE_ADDR=OFFICE_IP
    )

    assert response.status_code == 200
    (event,) = events(AuditAction.LIST_CONTACTS)
    assert event.username == "marketer-persona"
    assert event.details == {"search": "moreau", "filters": {"status__exact": "active"}}
    assert event.ip == OFFICE_IP


def test_each_listing_is_logged_even_without_a_search(as_marketer: Client) -> None:
    as_marketer.get(CONTACTS)
    as_marketer.get(CONTACTS, {"p": "1"})

    assert [e.details["search"] for e in events(AuditAction.LIST_CONTACTS)] == ["", ""]


def test_searching_contacts_from_another_page_s_contact_picker_is_logged(as_dpo: Client) -> None:
    ContactFactory(last_name="Moreau")
    query = {
        "app_label": "privacy",
        "model_name": "privacyrequest",
        "field_name": "contact",
        "term": "Moreau",
    }

    response = as_dpo.get(reverse("admin:autocomplete"), query)

    assert response.status_code == 200 and response.json()["results"]
    (event,) = events(AuditAction.LIST_CONTACTS)
    assert event.details == {"search": "Moreau", "via": "autocomplete"}


def test_opening_an_outbox_payload_is_logged_with_its_contact(as_superuser: Client) -> None:
    contact = ContactFactory()
    outbox = OutboxEventFactory(contact=contact)

    response = as_superuser.get(reverse("admin:crmsync_outboxevent_change", args=[outbox.pk]))

    assert response.status_code == 200
    (event,) = events(AuditAction.VIEW_OUTBOX_EVENT)
    assert (event.contact, event.contact_public_id) == (contact, contact.public_id)
    assert event.details == {"outbox_event": str(outbox.pk), "topic": "contact.updated"}


def test_the_outbox_list_alone_logs_no_payload_view(as_superuser: Client) -> None:
    OutboxEventFactory()

    as_superuser.get(reverse("admin:crmsync_outboxevent_changelist"))

    assert events(AuditAction.VIEW_OUTBOX_EVENT) == []


def restriction(client: Client, action: str, *contacts: Contact) -> None:
    data = {"action": action, "_selected_action": [contact.pk for contact in contacts]}
    assert client.post(CONTACTS, data).status_code == 302


def test_restricting_and_lifting_are_logged_per_contact(as_dpo: Client) -> None:
    ines, paul = ContactFactory(), ContactFactory()

    restriction(as_dpo, "restrict_processing", ines, paul)
    restriction(as_dpo, "restrict_processing", ines)  # already restricted: nothing changes
    restriction(as_dpo, "lift_restriction", paul)

    assert sorted(e.contact_id for e in events(AuditAction.RESTRICTION)) == [ines.pk, paul.pk]
    assert [e.contact_id for e in events(AuditAction.RESTRICTION_LIFTED)] == [paul.pk]
    assert {e.username for e in AuditEvent.objects.all()} == {"dpo-persona"}


def test_the_audit_log_names_the_person_not_their_uuid(as_dpo: Client) -> None:
    ines = ContactFactory(first_name="Inès", last_name="Moreau", email="ines.moreau@example.fr")
    as_dpo.get(reverse("admin:contacts_contact_change", args=[ines.pk]))

    page = as_dpo.get(AUDIT_LOG).content.decode()

    assert "Inès Moreau &lt;ines.moreau@example.fr&gt;" in page
    assert str(ines.public_id) not in page


def test_the_audit_log_shows_an_erased_contact_as_such(as_dpo: Client) -> None:
    ines = ContactFactory(first_name="Inès", email="ines.moreau@example.fr")
    as_dpo.get(reverse("admin:contacts_contact_change", args=[ines.pk]))
    assert as_dpo.post(
        CONTACTS, {"action": "erase_contacts", "_selected_action": [ines.pk], "confirmed": "yes"}
    ).status_code in (200, 302)

    page = as_dpo.get(AUDIT_LOG).content.decode()

    assert "erased contact" in page
    assert "ines.moreau" not in page and "Inès" not in page


@pytest.mark.parametrize(
    ("kind", "action"),
    [("restriction", AuditAction.RESTRICTION), ("access", AuditAction.REQUEST_CHANGE)],
)
def test_a_request_filed_by_the_dpo_is_logged_a_restriction_as_such(
    as_dpo: Client, kind: str, action: str
) -> None:
    contact = ContactFactory()
    add = reverse("admin:privacy_privacyrequest_add")
    page = as_dpo.get(add)

    response = as_dpo.post(add, submitted_form(page, contact=contact.pk, type=kind))

    assert response.status_code == 302
    (event,) = AuditEvent.objects.all()
    assert (event.action, event.contact, event.username) == (action, contact, "dpo-persona")
    assert event.details["filed"] == kind
