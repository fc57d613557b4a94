"""Writes for CRM sync: the outbox event every contact or consent change leaves behind."""

from typing import Any

from contacts.models import Contact
from crmsync.models import OutboxEvent, OutboxTopic


def outbox_emit(*, topic: OutboxTopic, contact: Contact, payload: dict[str, Any]) -> OutboxEvent:
    """Queue a change for the CRMs; call it inside the transaction that makes the change."""
    if topic not in OutboxTopic.values:
        # the CRMs and the event feed know the topics of OutboxTopic only
        raise ValueError(f"Unknown outbox topic {topic!r}: add it to OutboxTopic first.")
    return OutboxEvent.objects.create(
        topic=topic, contact_public_id=contact.public_id, payload=payload
    )
