"""Writes for CRM sync: the outbox event every contact or consent change leaves behind."""

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.utils import timezone

from contacts.models import Contact
from core.bulk import bulk_insert_rows
from crmsync.models import OutboxEvent, OutboxTopic


def outbox_emit(*, topic: OutboxTopic, contact: Contact, payload: dict[str, Any]) -> OutboxEvent:
    """Queue a change for the CRMs; call it inside the transaction that makes the change."""
    if topic not in OutboxTopic.values:
        # the CRMs and the event feed know the topics of OutboxTopic only
        raise ValueError(f"Unknown outbox topic {topic!r}: add it to OutboxTopic first.")
    return OutboxEvent.objects.create(
        topic=topic, contact_public_id=contact.public_id, payload=payload
    )


def outbox_emit_many(*, events: Sequence[tuple[str, Contact, dict[str, Any]]]) -> None:
    """Queue many changes at once, in their order (topic, contact, payload): one statement.

    Their `created_at` rises by a microsecond each, so that they are read in this order."""
    unknown = {topic for topic, _contact, _payload in events} - set(OutboxTopic.values)
    if unknown:
        raise ValueError(f"Unknown outbox topic {sorted(unknown)!r}: add it to OutboxTopic first.")
    start = timezone.now()
    bulk_insert_rows(
        OutboxEvent,
        [
            {
                "topic": topic,
                "contact_public_id": contact.public_id,
                "payload": payload,
                "created_at": start + timedelta(microseconds=index),
            }
            for index, (topic, contact, payload) in enumerate(events)
        ],
    )
