"""Reads for CRM sync: the outbox as a feed, and how far each connection lags."""

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from django.db.models import Count, Min, Q, Window

from contacts.models import Contact
from crmsync.adapters.base import Change
from crmsync.models import Connection, ContactLink, DeadLetter, OutboxEvent


def events_after(*, after: int, limit: int) -> list[Change]:
    """The numbered outbox events after the cursor `after`, oldest first, as changes (the
    caller numbers the committed events first: `crmsync.services.outbox_sequence`)."""
    events = OutboxEvent.objects.filter(sequence__gt=after).order_by("sequence")[:limit]
    return [
        Change(
            id=event.pk,
            sequence=event.sequence or 0,
            topic=event.topic,
            contact=event.contact_public_id,
            occurred_at=event.created_at,
            data=event.payload,
        )
        for event in events
    ]


@dataclass(frozen=True)
class ConnectionLag:
    """What waits for a connection: events after its cursor, the oldest one's time, and the
    dead letters not resolved."""

    waiting: int
    oldest_waiting_at: datetime | None
    dead_letters: int


def connection_lag(connection: Connection) -> ConnectionLag:
    """How far behind the connection is (events numbered so far)."""
    cursor = connection.state.push_cursor if hasattr(connection, "state") else 0
    waiting = OutboxEvent.objects.filter(sequence__gt=cursor).aggregate(
        count=Count("pk"), oldest=Min("created_at")
    )
    dead = DeadLetter.objects.filter(connection=connection).aggregate(
        count=Count("pk", filter=Q(resolved_at__isnull=True))
    )
    return ConnectionLag(
        waiting=waiting["count"], oldest_waiting_at=waiting["oldest"], dead_letters=dead["count"]
    )


@dataclass(frozen=True)
class ContactSync:
    """Where a contact stands in the CRMs: its links (the CRM's ids for it, with their
    connection and its state), its outbox events not yet delivered everywhere, and the latest
    dead letters about it not resolved (`dead_letters_total` of them in all)."""

    links: list[ContactLink]
    pending_events: int
    dead_letters: list[DeadLetter]
    dead_letters_total: int = 0


# The dead letters a contact's page lists, the latest first (the others are counted).
CONTACT_DEAD_LETTERS = 20


def contact_crm_sync(contact: Contact, *, dead_letters: int = CONTACT_DEAD_LETTERS) -> ContactSync:
    """`ContactSync` of the contact, in three statements however many links, events and dead
    letters (at most `dead_letters` of them listed)."""
    links = list(
        ContactLink.objects.filter(contact=contact)
        .select_related("connection", "connection__state")
        .order_by("connection__name")
    )
    pending = OutboxEvent.objects.filter(
        contact_public_id=contact.public_id, processed_at__isnull=True
    ).count()
    latest = cast(
        list[DeadLetter],
        list(
            DeadLetter.objects.filter(
                event__contact_public_id=contact.public_id, resolved_at__isnull=True
            )
            .select_related("connection", "event")
            .annotate(in_all=Window(expression=Count("pk")))
            .order_by("-created_at", "-id")[:dead_letters]
        ),
    )
    return ContactSync(
        links=links,
        pending_events=pending,
        dead_letters=latest,
        dead_letters_total=getattr(latest[0], "in_all", 0) if latest else 0,
    )
