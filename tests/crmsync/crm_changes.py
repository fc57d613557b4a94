"""Outbox changes as an adapter receives them, built directly (no outbox needed)."""

import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

from crmsync.adapters.base import Change

_sequence = itertools.count(1)
GIVEN_AT = "2026-11-20T09:30:00+00:00"


def person(n: int = 0, **fields: Any) -> dict[str, Any]:
    """A contact as `contacts.services.contact_payload` gives it."""
    return {
        "id": str(uuid.UUID(int=n + 1)),
        "email": f"person{n}@example.fr",
        "first_name": "Camille",
        "last_name": f"Martin{n}",
        "phone": "+33612345678",
        "company": "Acme",
        "job_title": "Buyer",
        "country": "FR",
        "language": "fr",
        "lifecycle_stage": "mql",
        "frequency": "",
        "b2b": True,
        "relationship": "prospect",
        "customer_since": None,
        "customer_until": None,
        "status": "active",
        "paused_until": None,
        "objected_to_profiling": False,
        "objected_to_marketing": False,
        **fields,
    }


def contact_change(
    data: dict[str, Any], topic: str = "contact.updated", remote_id: str = "", **extra: Any
) -> Change:
    return Change(
        id=uuid.uuid4(),
        sequence=next(_sequence),
        topic=topic,
        contact=uuid.UUID(data["id"]),
        occurred_at=datetime.now(UTC),
        data={**data, **extra},
        contact_data=data,
        remote_id=remote_id,
    )


def consent_change(
    contact: dict[str, Any] | None,
    purpose: str,
    status: str = "granted",
    channel: str = "email",
    topic: str = "consent.recorded",
    contact_id: str | None = None,
) -> Change:
    action = {"granted": "grant", "pending": "grant", "withdrawn": "withdraw"}.get(status, "expire")
    return Change(
        id=uuid.uuid4(),
        sequence=next(_sequence),
        topic=topic,
        contact=uuid.UUID(contact["id"] if contact else contact_id),
        occurred_at=datetime.now(UTC),
        data={
            "record": str(uuid.uuid4()),
            "purpose": purpose,
            "version": 1,
            "channel": channel,
            "action": action,
            "status": status,
            "given_at": GIVEN_AT,
        },
        contact_data=contact,
    )


def other_change(contact: dict[str, Any], topic: str, data: dict[str, Any]) -> Change:
    return Change(
        id=uuid.uuid4(),
        sequence=next(_sequence),
        topic=topic,
        contact=uuid.UUID(contact["id"]),
        occurred_at=datetime.now(UTC),
        data=data,
        contact_data=contact if topic != "contact.erased" else None,
    )
