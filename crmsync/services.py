"""Writes for CRM sync: the outbox event every contact or consent change leaves behind."""

from typing import Any

from contacts.models import Contact
from crmsync.models import OutboxEvent


def outbox_emit(*, topic: str, contact: Contact, payload: dict[str, Any]) -> OutboxEvent:
    """Queue a change for the CRMs; call it inside the transaction that makes the change."""
    return OutboxEvent.objects.create(
        topic=topic, contact_public_id=contact.public_id, payload=payload
    )
