"""What the HubSpot and Salesforce adapters share: collapsing a batch to one record per
contact, and finding which records a CRM refuses when it refuses a whole batch."""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from crmsync.adapters.base import Change
from crmsync.models import OutboxTopic

CONTACT_TOPICS = (
    OutboxTopic.CONTACT_CREATED,
    OutboxTopic.CONTACT_UPDATED,
    OutboxTopic.CONTACT_MERGED,
)

NOT_FOUND = 404

Item = TypeVar("Item")


class Refused(Exception):
    """The CRM refused what was sent for good (a 4xx that is not about rate or credentials)."""

    def __init__(
        self, message: str, *, status: int | None = None, about_the_call: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        # refused whatever the records (a mapped field the CRM lacks): every record is refused
        self.about_the_call = about_the_call


@dataclass
class ContactState:
    """The last state of one contact in a batch, and every change it stands for."""

    contact: uuid.UUID
    data: dict[str, Any]
    remote_id: str
    changes: list[uuid.UUID] = field(default_factory=list)
    # our fields a `contact.updated` of the batch named as changed: sent even when emptied
    changed: set[str] = field(default_factory=set)


def contact_states(changes: Sequence[Change]) -> dict[uuid.UUID, ContactState]:
    """One state per contact changed in the batch: the last one (outbox order), so that
    several changes of one contact reach the CRM as one upsert."""
    states: dict[uuid.UUID, ContactState] = {}
    for change in sorted(changes, key=lambda change: change.sequence):
        if change.topic not in CONTACT_TOPICS:
            continue
        state = states.get(change.contact)
        if state is None:
            state = states[change.contact] = ContactState(change.contact, {}, change.remote_id)
        state.data = change.data
        state.remote_id = change.remote_id or state.remote_id
        state.changes.append(change.id)
        state.changed.update(change.data.get("changed") or ())
    return states


@dataclass
class Outcome(Generic[Item]):
    """What became of each item sent: its CRM id, or why it was refused."""

    accepted: dict[int, str] = field(default_factory=dict)  # item index -> CRM id
    refused: dict[int, str] = field(default_factory=dict)  # item index -> the CRM's message
    missing: set[int] = field(default_factory=set)  # refused as not found (404)


def send_isolating(
    items: Sequence[Item], send: Callable[[Sequence[Item]], Outcome[Item]]
) -> Outcome[Item]:
    """`send` the items; when the CRM refuses the whole call, halve it until the refused
    items stand alone, so that one bad record never holds back the others.

    Re-sending is safe since every call is an upsert by a stable key."""
    try:
        return send(items)
    except Refused as refusal:
        return _isolated(items, send, refusal)


def _isolated(
    items: Sequence[Item], send: Callable[[Sequence[Item]], Outcome[Item]], refusal: Refused
) -> Outcome[Item]:
    if refusal.about_the_call:
        # splitting would only spend the CRM's rate limit on the same refusal
        return Outcome(refused=dict.fromkeys(range(len(items)), refusal.message))
    if len(items) == 1:
        missing = {0} if refusal.status == NOT_FOUND else set()
        return Outcome(refused={0: refusal.message}, missing=missing)
    middle = len(items) // 2
    halves: list[tuple[int, Sequence[Item], Outcome[Item] | Refused]] = []
    for offset, half in ((0, items[:middle]), (middle, items[middle:])):
        try:
            halves.append((offset, half, send(half)))
        except Refused as half_refused:
            halves.append((offset, half, half_refused))
    outcome: Outcome[Item] = Outcome()
    for offset, half, part in halves:
        if isinstance(part, Refused):
            part = _isolated(half, send, part)
        outcome.accepted.update({offset + index: id_ for index, id_ in part.accepted.items()})
        outcome.refused.update({offset + index: why for index, why in part.refused.items()})
        outcome.missing.update(offset + index for index in part.missing)
    return outcome
