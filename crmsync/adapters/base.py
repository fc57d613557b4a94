"""What the push machinery hands an adapter, and what it expects back.

The machinery (claiming events, cursors, retries, dead letters) knows nothing of a CRM's
API; an adapter knows nothing of the outbox. An adapter's `push` receives changes in outbox
order, at most `batch_size` of them, and either returns a `PushResult` (everything not
rejected was delivered) or raises `TransientError` for the whole batch, which is then sent
again later, unchanged: every call an adapter makes must be idempotent (upserts by a stable
key), since delivery is at least once."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class ConnectionConfig:
    """A connection as an adapter sees it: plain values, credentials already decrypted."""

    name: str
    kind: str  # "hubspot", "salesforce" or "webhook"
    base_url: str
    credentials: dict[str, str] = field(default_factory=dict)
    # our purpose slug -> the CRM's subscription type id (HubSpot) or data-use purpose (Salesforce)
    purpose_map: dict[str, str] = field(default_factory=dict)
    # [{"field": ours, "remote": theirs, "direction": "push"|"pull"|"both",
    #   "conflict": "ours"|"theirs"|"latest"}]
    field_mappings: list[dict[str, str]] = field(default_factory=list)
    # kind-specific switches, e.g. {"consent_objects": true} for Salesforce
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """One outbox event, as pushed."""

    id: uuid.UUID  # the event's id: stable across retries (webhook-id, idempotency keys)
    sequence: int  # its place in the outbox, in commit order
    topic: str  # an OutboxTopic value
    contact: uuid.UUID  # the contact's public id
    occurred_at: datetime
    data: dict[str, Any]  # the event's payload
    # the contact as it is now (`contacts.services.contact_payload`), so that a consent change
    # can name the person (their email) in the CRM; None once the contact is erased
    contact_data: dict[str, Any] | None = None
    # what the CRM calls this contact, when a push or a pull has told us
    remote_id: str = ""


@dataclass
class PushResult:
    """What became of a batch that was sent."""

    # change id -> why the CRM refused it for good (a dead letter staff can replay)
    rejected: dict[uuid.UUID, str] = field(default_factory=dict)
    # contact public id -> the CRM's id for it, learned from the answers
    remote_ids: dict[uuid.UUID, str] = field(default_factory=dict)


class TransientError(Exception):
    """The whole batch failed for now (429, 5xx, timeout, connection refused): send it again
    after `retry_after` seconds (the CRM's `Retry-After`) or after the machinery's backoff."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Adapter(Protocol):
    """A kind of CRM connection."""

    batch_size: int

    def push(self, changes: Sequence[Change]) -> PushResult:
        """Deliver the changes (idempotently), or raise TransientError.

        The push calls it from a thread of its own, which waits for the CRM while the batch
        before is delivered: it must not use the database. An adapter that needs something
        from it reads it in an optional `prepare(changes)`, called first in the push's own
        thread."""
        ...


# -- pull ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RemoteConsent:
    """A subscription status the CRM holds for one of our purposes, and when it was set."""

    purpose: str  # our purpose slug (through the connection's purpose map)
    granted: bool
    at: datetime  # the CRM's time of the change
    channel: str = "email"
    # what the CRM says of the change (a legal basis and its explanation, the record it is
    # read from), kept with a grant as its second-hand evidence
    statement: str = ""


@dataclass(frozen=True)
class RemoteContact:
    """A person as a pull reads them from the CRM: only what the connection maps."""

    remote_id: str
    email: str  # as the CRM spells it (normalised by the pull)
    modified_at: datetime  # the CRM's modification time of the record
    # our field -> the CRM's value, for the mappings pulled ("pull" or "both")
    fields: dict[str, Any] = field(default_factory=dict)
    consents: tuple[RemoteConsent, ...] = ()
    # our contact's public id, when the CRM holds it (Salesforce's external id field)
    our_id: str = ""
    # a Salesforce lead converted: the Contact's id (ConvertedContactId), which takes the
    # lead's place as what the CRM calls the person
    converted_to: str = ""
    # who in the sales team owns the record in the CRM (HubSpot's `hubspot_owner_id`,
    # Salesforce's `OwnerId`): None when the record says nothing of it (a consent object, a
    # converted lead), "" when it has no owner; their address, when the CRM gave it
    owner_id: str | None = None
    owner_email: str = ""


@dataclass(frozen=True)
class PullPage:
    """One page of a pull: the records changed since `cursor`, and where the next page starts.

    `next_cursor` is opaque text the pull stores once the page is applied; `done` says the
    CRM had nothing more for now. `problems` names records the adapter could not read
    (bad data from the CRM), reported rather than stopping the pull."""

    contacts: list[RemoteContact]
    next_cursor: str
    done: bool
    problems: list[str] = field(default_factory=list)


class Puller(Protocol):
    """A kind of connection that can be pulled."""

    def pull(self, cursor: str | None, limit: int) -> PullPage:
        """The next page of records changed since `cursor`, or raise TransientError."""


@dataclass(frozen=True)
class ErasureTarget:
    """A person erased here, as a CRM needs them to erase its own copy (GDPR Art. 17(2))."""

    contact: uuid.UUID  # the contact's public id (Salesforce's external id)
    remote_id: str = ""  # what the CRM calls them, when a push or a pull told us
    email: str = ""  # decrypted for the call only, when the CRM has no other key (HubSpot)
    # the `contact.erased` outbox event: the erasure itself, for a webhook
    event: Change | None = None


class Eraser(Protocol):
    """An adapter that erases a person in its CRM."""

    def erase(self, target: ErasureTarget) -> None:
        """Erase (or anonymise) the person; a person the CRM does not hold counts as erased.
        Raises TransientError (try again later) or another error (refused, retried too)."""
        ...
