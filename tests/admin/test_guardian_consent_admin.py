"""The admin sets a contact's birth year and records a guardian's consent for a child through
the one consent-write path (GDPR Art. 8)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from consent.eligibility import contact_eligibility
from consent.models import ConsentEvidence, ConsentRecord
from contacts.models import Contact
from tests.admin.forms import submitted_form
from tests.factories import ContactFactory, PurposeFactory

pytestmark = pytest.mark.django_db

CONTACTS = reverse("admin:contacts_contact_changelist")


def guardian_action(client: Client, contact: Contact, **fields: object):
    data = {"action": "record_guardian_consent", "_selected_action": [contact.pk], **fields}
    return client.post(CONTACTS, data)


def test_the_contact_page_sets_the_birth_year(as_marketer):
    contact = ContactFactory(country="FR")
    url = reverse("admin:contacts_contact_change", args=[contact.pk])
    page = as_marketer.get(url)

    response = as_marketer.post(url, submitted_form(page, birth_year="2013"))

    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.birth_year == 2013


def test_a_marketer_records_the_joint_consent_of_a_french_child_and_guardian(as_marketer):
    purpose = PurposeFactory(slug="newsletter")
    child = ContactFactory(birth_year=timezone.now().year - 13, country="FR")
    assert contact_eligibility(child, purpose, "email") == ["no_consent", "minor"]

    form_page = guardian_action(as_marketer, child)
    response = guardian_action(
        as_marketer,
        child,
        confirmed="yes",
        purpose=purpose.pk,
        channel="email",
        actor="person_and_guardian",
        guardian_name="Alex Martin",
        guardian_contact="alex.martin@example.fr",
        given_at="2026-11-20 18:00",
        document=SimpleUploadedFile("signed.pdf", b"%PDF-1.4 signed", "application/pdf"),
    )

    assert form_page.status_code == 200
    assert "Guardian" in form_page.content.decode()
    assert response.status_code == 302
    record = ConsentRecord.objects.filter(contact=child).order_by("-id").first()
    assert (record.actor, record.source_kind, record.source_reference) == (
        "person_and_guardian",
        "admin",
        "admin:marketer-persona",
    )
    evidence = ConsentEvidence.objects.get(record=record)
    assert evidence.guardian_name == "Alex Martin" and evidence.document_sha256
    assert contact_eligibility(child, purpose, "email") == []


def test_a_guardians_consent_without_the_guardian_is_refused_on_the_form(as_marketer):
    purpose = PurposeFactory(slug="newsletter")
    child = ContactFactory(birth_year=timezone.now().year - 13, country="FR")

    response = guardian_action(
        as_marketer,
        child,
        confirmed="yes",
        purpose=purpose.pk,
        channel="email",
        actor="guardian",
        given_at="2026-11-20 18:00",
    )

    assert response.status_code == 200
    assert response.context["form"].errors["guardian_name"]
    assert not ConsentRecord.objects.filter(contact=child).exists()
