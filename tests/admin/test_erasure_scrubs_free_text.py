"""Erasure leaves no words about the person in the audit log nor in CRM error messages."""

import json

import pytest
from django.utils import timezone

from core.models import AuditEvent
from crmsync.models import OutboxEvent
from privacy.services import contact_erase
from tests.admin.test_privacy_request_admin import filed, handle
from tests.factories import AuditEventFactory, ContactFactory, OutboxEventFactory

pytestmark = pytest.mark.django_db

PERSONAL = ("Léa", "Dupont", "06 12 34 56 78", "lea.dupont@example.fr", "hospital")


def test_erasure_scrubs_the_reasons_and_notes_the_dpo_wrote_in_the_audit_log(as_dpo):
    # given the DPO extended Léa's request and verified it, with words about her
    lea = ContactFactory(email="lea.dupont@example.fr", first_name="Léa", last_name="Dupont")
    request = filed(contact=lea)
    handle(
        as_dpo,
        request,
        extend_months="1",
        new_extension_reason="Léa Dupont is in hospital until May",
        next_status="verified",
        note="Called her on 06 12 34 56 78",
    )
    [event] = AuditEvent.objects.filter(contact=lea, action="request_change")
    assert "hospital" in json.dumps(event.details, ensure_ascii=False)

    # when she is erased
    contact_erase(contact=lea, reason="erasure")

    # then the ids and choices stay, the words are gone
    event.refresh_from_db()
    assert event.details == {
        "request": str(request.pk),
        "extend_months": "1",
        "new_extension_reason": "[erased]",
        "next_status": "verified",
        "note": "[erased]",
    }


def test_erasure_scrubs_free_text_under_any_key_of_the_audit_details():
    # given audit entries about Léa, one with keys no erasure rule names yet
    lea = ContactFactory(email="lea.dupont@example.fr", first_name="Léa", last_name="Dupont")
    hugo = ContactFactory(email="hugo@example.fr", first_name="Hugo")
    details = {
        "search": "lea.dupont@example.fr",
        "comment": {"text": "Léa Dupont asked by phone"},
        "fields": ["first_name", "Léa"],
        "count": 3,
        "confirmed": True,
        "format": "json",
    }
    about_lea = AuditEventFactory(contact=lea, details=details)
    # the contact link is lost when a user is deleted; the pseudonym stays
    by_pseudonym = AuditEventFactory(
        contact=None, contact_public_id=lea.public_id, details={"reason": "Léa"}
    )
    about_hugo = AuditEventFactory(contact=hugo, details={"search": "Hugo"})

    # when
    contact_erase(contact=lea, reason="erasure")

    # then
    about_lea.refresh_from_db()
    by_pseudonym.refresh_from_db()
    about_hugo.refresh_from_db()
    assert about_lea.details == {
        "search": "[erased]",
        "comment": "[erased]",
        "fields": "[erased]",
        "count": 3,
        "confirmed": True,
        "format": "json",
    }
    assert by_pseudonym.details == {"reason": "[erased]"}
    assert about_hugo.details == {"search": "Hugo"}
    everything = json.dumps(
        list(AuditEvent.objects.exclude(pk=about_hugo.pk).values()), default=str
    )
    assert not any(word in everything for word in PERSONAL)


def test_erasure_scrubs_the_crm_errors_of_the_persons_delivered_events():
    # given a delivered event whose CRM answered an error quoting her, and one of Hugo's
    lea = ContactFactory(email="lea.dupont@example.fr", first_name="Léa")
    hugo = ContactFactory(email="hugo@example.fr")
    error = "HubSpot 409: a contact lea.dupont@example.fr (Léa) already exists"
    delivered = OutboxEventFactory(
        contact=lea, processed_at=timezone.now(), attempts=2, last_error=error
    )
    clean = OutboxEventFactory(contact=lea, processed_at=timezone.now())
    hugos = OutboxEventFactory(
        contact=hugo, processed_at=timezone.now(), last_error="HubSpot 500 for hugo@example.fr"
    )

    # when
    contact_erase(contact=lea, reason="erasure")

    # then
    for event in (delivered, clean, hugos):
        event.refresh_from_db()
    assert (delivered.last_error, delivered.attempts) == ("[erased]", 2)
    assert clean.last_error == ""
    assert hugos.last_error == "HubSpot 500 for hugo@example.fr"
    assert not OutboxEvent.objects.filter(last_error__contains="lea.dupont").exists()
