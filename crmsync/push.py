"""The push: each connection's outbox events handed to its adapter in order, in batches,
delivered at least once.

A push claims its connection with a conditional UPDATE (a lease token and its expiry: two
workers never send the same event), numbers the committed events (`outbox_sequence`), reads
the next `batch_size` after the connection's cursor, calls the adapter, then in one
transaction, and only while the lease is still its own, moves the cursor past the batch,
parks the events the CRM refused as dead letters and stores the CRM's ids of our contacts.
A worker killed mid-batch moves nothing: its lease expires and the batch is sent again
(adapters upsert, so the second delivery changes nothing). A failure (`TransientError`, or
any error of the adapter) leaves the cursor where it is and waits (the CRM's `Retry-After`,
else a doubling backoff with jitter); after `CRM_PUSH_MAX_FAILURES` in a row the batch is
parked as dead letters and the cursor moves on. Staff replay dead letters from the admin.

An event is "processed" (delivered everywhere; the access export and the erasure read it)
once every enabled connection's cursor is past it and no connection holds it as a dead
letter. An erased person's delivered events are scrubbed to `{"erased": true}`: such an
event is not sent again (the `contact.erased` event that follows it tells the CRM).
"""

import logging
import random
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection as database
from django.db import connections as db_connections
from django.db import transaction
from django.db.models import Exists, Min, OuterRef, Q, Subquery
from django.utils import timezone, translation

from consent.models import ConsentState, ConsentStatus
from contacts.models import Contact, ContactStatus
from contacts.services import CONTACT_PAYLOAD_FIELDS, contact_payload_of
from crmsync.adapters import AdapterUnavailable, adapter_for
from crmsync.adapters.base import Adapter, Change, PushResult, TransientError
from crmsync.connections import connection_config
from crmsync.models import (
    Connection,
    ConnectionKind,
    ConnectionState,
    ContactLink,
    DeadLetter,
    OutboxEvent,
    OutboxTopic,
)
from crmsync.services import ORIGIN_KEY, outbox_head, outbox_sequence

logger = logging.getLogger(__name__)

# What an erasure leaves of a delivered event's payload (privacy.services).
SCRUBBED_PAYLOAD = {"erased": True}
# The key of the PostgreSQL advisory lock under which one push at a time marks events processed.
PROCESSED_LOCK = 1_400_015
ERROR_LENGTH = 2000


@dataclass
class PushOutcome:
    """What one push call did."""

    delivered: int = 0
    rejected: int = 0
    parked: int = 0
    # a failure: the next attempt is due in this many seconds
    retry_in: float | None = None
    # stopped at its time budget with events still waiting: push again at once
    more: bool = False


@dataclass
class ReplayOutcome:
    """What a replay of dead letters did."""

    resolved: int = 0
    failed: int = 0
    busy: int = 0  # their connection was being pushed: try again in a moment
    errors: list[str] = field(default_factory=list)


def connection_push(*, connection_id: int) -> PushOutcome:
    """Push the connection's waiting outbox events to its CRM, in order, until none is left,
    a failure, or the time budget (`CRM_PUSH_TIME_BUDGET`). Safe to run twice at once."""
    outcome = PushOutcome()
    connection = Connection.objects.filter(pk=connection_id, enabled=True).first()
    if connection is None:
        return outcome
    # made with the connection (crmsync.connections); here too for one made otherwise
    ConnectionState.objects.get_or_create(
        connection=connection, defaults={"push_cursor": outbox_head()}
    )
    try:
        adapter = adapter_for(connection_config(connection))
    except AdapterUnavailable as error:
        _error_record(connection_id, str(error))
        return outcome
    deadline = time.monotonic() + settings.CRM_PUSH_TIME_BUDGET
    while True:
        token = _claim(connection_id)
        if token is None:
            return outcome  # another worker is pushing (and re-checks when done), or waiting
        try:
            _drain(connection, adapter, token, deadline, outcome)
        finally:
            _release(connection_id, token)
        # an event committed while this push released its claim found the claim taken: it
        # is this push's to send, not the safety net's
        if outcome.retry_in is not None or not connection_waiting(connection_id=connection_id):
            return outcome
        if time.monotonic() >= deadline:
            outcome.more = True
            return outcome


def connections_retry_now(*, connection_ids: Sequence[int]) -> int:
    """End the backoff of these connections (their CRM is back, say): the next push, queued
    by the caller, goes at once. Answers how many were waiting."""
    return ConnectionState.objects.filter(
        pk__in=list(connection_ids), next_attempt_at__isnull=False
    ).update(next_attempt_at=None)


def connection_waiting(*, connection_id: int) -> bool:
    """Whether committed events wait for this connection (numbering them first)."""
    outbox_sequence()
    cursor = ConnectionState.objects.filter(pk=connection_id).values_list("push_cursor", flat=True)
    return OutboxEvent.objects.filter(sequence__gt=cursor[:1]).exists()


def _claim(connection_id: int, *, ignore_backoff: bool = False) -> uuid.UUID | None:
    """Take the connection's lease when it is free (and, unless told, no backoff runs): one
    conditional UPDATE on the state row alone, so that PostgreSQL re-checks its condition on
    the row a concurrent claim just wrote."""
    now = timezone.now()
    token = uuid.uuid4()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    due = Q() if ignore_backoff else Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    claimed = (
        ConnectionState.objects.filter(pk=connection_id)
        .filter(free)
        .filter(due)
        .update(lease_token=token, lease_until=now + timedelta(seconds=settings.CRM_PUSH_LEASE))
    )
    return token if claimed else None


def _release(connection_id: int, token: uuid.UUID) -> None:
    ConnectionState.objects.filter(pk=connection_id, lease_token=token).update(
        lease_token=None, lease_until=None
    )


def _held(connection_id: int, token: uuid.UUID) -> ConnectionState | None:
    """The state row, locked, if the lease is still this push's; in a transaction."""
    return (
        ConnectionState.objects.select_for_update()
        .filter(pk=connection_id, lease_token=token)
        .first()
    )


def _drain(
    connection: Connection,
    adapter: Adapter,
    token: uuid.UUID,
    deadline: float,
    outcome: PushOutcome,
) -> None:
    """Send batch after batch until none is left, a failure, the lease lost or the deadline.

    While the CRM answers a batch, the previous one is delivered (its cursor moved, its links
    stored): the calls go one at a time and in order, from a thread of their own that only
    waits for the CRM, and the database work is done here meanwhile. A batch is read (and
    sent) only once the CRM has answered the one before, with the ids it just learned.

    Per batch in the steady state: one query reads the events with their contacts and the
    CRM's ids, then one short transaction moves the cursor (and stores the new ids): the
    cursor is this push's while it holds the lease, so it is read once; events are numbered
    only when the numbered ones run out. The processed marks, which look at every connection,
    are a task of their own (`outbox_mark_processed`, queued by the push task)."""
    cursor = ConnectionState.objects.values_list("push_cursor", flat=True).get(pk=connection.pk)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="crm-push") as calls:
        send = _Sender(adapter, calls)
        sending = send(_batch_next(connection, cursor, adapter.batch_size))
        while sending is not None:
            batch, answer = sending
            try:
                result = answer.result()
            except Exception as error:  # TransientError, or a bug of the adapter: a wait
                if not isinstance(error, TransientError):
                    logger.exception("CRM connection %s: the adapter failed", connection.pk)
                if not _failed(connection.pk, token, batch, error, outcome):
                    return
                # the batch was parked: on to the next
                sending = send(_batch_next(connection, batch.last_sequence, adapter.batch_size))
                continue
            sending = None
            if time.monotonic() < deadline:
                following = _batch_next(
                    connection, batch.last_sequence, adapter.batch_size, result.remote_ids
                )
                sending = send(following)
            if not _delivered(connection.pk, token, batch, result, outcome):
                send.settle(sending)
                return  # the lease was lost (it expired and another push took it)


class _Sender:
    """Hands batches to the adapter in the push's call thread: the future of its answer."""

    def __init__(self, adapter: Adapter, calls: ThreadPoolExecutor) -> None:
        self.adapter = adapter
        self.calls = calls
        # the thread speaks the push's language (the CRM errors kept for the admin)
        self.language = translation.get_language()

    def __call__(self, batch: "_Batch") -> "tuple[_Batch, Future[PushResult]] | None":
        if not batch.event_ids:
            return None
        if not batch.changes:  # every event scrubbed, or this connection's own
            done: Future[PushResult] = Future()
            done.set_result(PushResult())
            return batch, done
        prepare = getattr(self.adapter, "prepare", None)
        if prepare is not None:
            prepare(batch.changes)  # what the call needs from the database, read here
        return batch, self.calls.submit(self._push, batch.changes)

    def _push(self, changes: list[Change]) -> PushResult:
        try:
            with translation.override(self.language):
                return self.adapter.push(changes)
        finally:
            # adapters call their CRM only; a connection opened here anyway is closed here
            db_connections.close_all()

    @staticmethod
    def settle(sending: "tuple[_Batch, Future[PushResult]] | None") -> None:
        """Wait for a call in flight that will not be delivered (sent again later)."""
        if sending is not None:
            wait([sending[1]])


def _batch_next(
    connection: Connection,
    cursor: int,
    limit: int,
    learned: dict[uuid.UUID, str] | None = None,
) -> "_Batch":
    """The next batch after the cursor, numbering new events when the numbered ones run out.
    `learned`: the CRM's ids the batch before taught us, not stored yet."""
    batch = _batch_read(connection, Q(sequence__gt=cursor), limit)
    if len(batch.event_ids) < limit and outbox_sequence():
        batch = _batch_read(connection, Q(sequence__gt=cursor), limit)
    if learned:
        batch.learn(learned)
    return batch


@dataclass
class _Batch:
    """Events read for a push: their changes, and what the delivery needs besides."""

    event_ids: list[uuid.UUID] = field(default_factory=list)  # every event read, in order
    last_sequence: int = 0
    # the changes to send: scrubbed events and those of this connection's own pulls left out
    changes: list[Change] = field(default_factory=list)
    contacts: dict[uuid.UUID, int] = field(default_factory=dict)  # public id -> pk
    known: dict[uuid.UUID, str] = field(default_factory=dict)  # public id -> linked CRM id

    def learn(self, remote_ids: dict[uuid.UUID, str]) -> None:
        """Take the CRM's ids of the batch before (being stored as this one is sent): so an
        email changed here updates the record the CRM just made, rather than a new one."""
        ours = {
            public_id: remote_ids[public_id]
            for public_id in self.contacts
            if public_id in remote_ids
        }
        if not ours:
            return
        self.known.update(ours)
        self.changes = [
            replace(change, remote_id=ours[change.contact]) if change.contact in ours else change
            for change in self.changes
        ]


EVENT_COLUMNS = ("id", "topic", "contact_public_id", "payload", "created_at", "sequence")
# the contact's public id is the event's
CONTACT_FIELDS = tuple(name for name in CONTACT_PAYLOAD_FIELDS if name != "public_id")
CONTACT_COLUMNS = ("contact__id", *(f"contact__{name}" for name in CONTACT_FIELDS))


def _batch_read(connection: Connection, which: Q, limit: int | None = None) -> _Batch:
    """The events `which` selects, in outbox order, each with its contact as it is now and
    the CRM's id linked to it: one query, read as values (a model instance per row would cost
    more than the query)."""
    linked = ContactLink.objects.filter(connection=connection, contact=OuterRef("contact__pk"))
    rows = (
        OutboxEvent.objects.filter(which)
        .annotate(linked_remote_id=Subquery(linked.values("remote_id")[:1]))
        .order_by("sequence")
        .values_list(*EVENT_COLUMNS, *CONTACT_COLUMNS, "linked_remote_id")
    )
    batch = _Batch()
    events = len(EVENT_COLUMNS)
    for row in rows[:limit] if limit else rows:
        event_id, topic, public_id, payload, created_at, sequence = row[:events]
        contact_pk, contact = row[events], row[events + 1 : -1]
        remote_id = row[-1] or ""
        batch.event_ids.append(event_id)
        batch.last_sequence = max(batch.last_sequence, sequence or 0)
        if payload == SCRUBBED_PAYLOAD or payload.get(ORIGIN_KEY) == connection.pk:
            continue
        data = None
        if contact_pk is not None:
            values = dict(zip(CONTACT_FIELDS, contact, strict=True), public_id=public_id)
            batch.contacts[public_id] = contact_pk
            if remote_id:
                batch.known[public_id] = remote_id
            if values["status"] != ContactStatus.ERASED:
                data = contact_payload_of(values)
        batch.changes.append(
            Change(
                id=event_id,
                sequence=sequence or 0,
                topic=topic,
                contact=public_id,
                occurred_at=created_at,
                data=payload,
                contact_data=data,
                remote_id=remote_id,
            )
        )
    if connection.kind != ConnectionKind.WEBHOOK:
        batch.changes = _overtaken_left_out(batch)
    return batch


def _overtaken_left_out(batch: _Batch) -> list[Change]:
    """The batch's changes less the consent changes overtaken since: those whose (contact,
    purpose, channel) state now stands on a later record. A CRM keeps one status, so it is
    told only what holds: the later change follows in the outbox (or it came from this very
    CRM, which has it), and an older one sent after it, when the CRM was down or its batch
    was parked, would undo it there. A state pending a double opt-in overtakes nothing: the
    CRMs are not told of it, and the change before it is what they must show meanwhile. (A
    webhook receives every event: not for it.)"""

    def key(change: Change) -> tuple[int | None, str, str]:
        data = change.data
        return batch.contacts.get(change.contact), data.get("purpose", ""), data.get("channel", "")

    consents = [c for c in batch.changes if c.topic == OutboxTopic.CONSENT_RECORDED]
    if not consents:
        return batch.changes
    keys = {key(change) for change in consents}
    current: dict[tuple[int | None, str, str], str] = {
        (contact_id, slug, channel): str(record)
        for contact_id, slug, channel, record in ConsentState.objects.filter(
            contact_id__in={contact_id for contact_id, _slug, _channel in keys},
            purpose__slug__in={slug for _contact, slug, _channel in keys},
        )
        .exclude(status=ConsentStatus.PENDING)
        .values_list("contact_id", "purpose__slug", "channel", "record__uuid")
    }
    return [
        change
        for change in batch.changes
        if change.topic != OutboxTopic.CONSENT_RECORDED
        or current.get(key(change), change.data.get("record")) == change.data.get("record")
    ]


def changes_for(connection: Connection, events: Sequence[OutboxEvent]) -> list[Change]:
    """The events as the adapter receives them, with each contact as it is now and the CRM's
    id for it (one query). Scrubbed events (their person erased) are left out, and so are
    those a pull of this very connection wrote (it has them: no ping-pong)."""
    return _batch_read(connection, Q(pk__in=[event.pk for event in events])).changes


def _delivered(
    connection_id: int,
    token: uuid.UUID,
    batch: _Batch,
    result: PushResult,
    outcome: PushOutcome,
) -> bool:
    """Move the cursor past the batch, park what was refused, store the CRM's ids: one
    transaction, only while the lease is ours. Answers whether it was.

    Its commit does not wait for the disk (`_no_disk_wait`): a crash of the database may lose
    it, and then only sends the batch again, which delivery at least once and idempotent
    upserts already allow for."""
    now = timezone.now()
    moved = {
        public_id: remote_id
        for public_id, remote_id in result.remote_ids.items()
        if batch.known.get(public_id) != remote_id
    }
    refused = [event_id for event_id in batch.event_ids if event_id in result.rejected]
    moves = {
        "push_cursor": batch.last_sequence,
        "failures": 0,
        "next_attempt_at": None,
        "last_push_at": now,
        "lease_until": now + timedelta(seconds=settings.CRM_PUSH_LEASE),
    }
    held = ConnectionState.objects.filter(pk=connection_id, lease_token=token)
    with transaction.atomic():
        _no_disk_wait()
        # first: the row it locks is the lease, so nothing below is written without it
        if not held.update(**moves):
            return False
        _park(connection_id, refused, result.rejected, 1)
        links_store(connection_id=connection_id, remote_ids=moved, now=now, pks=batch.contacts)
    outcome.delivered += len(batch.event_ids) - len(result.rejected)
    outcome.rejected += len(result.rejected)
    return True


def _no_disk_wait() -> None:
    """Let the current transaction commit without waiting for the disk (PostgreSQL's
    `synchronous_commit`, for this transaction only): what the push writes (cursor, links,
    processed marks) is bookkeeping that a crash of the database may lose, so that a batch
    is sent again or a mark made again. WAL keeps the commits' order, so what survives a
    crash is consistent."""
    if database.vendor == "postgresql":
        with database.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _failed(
    connection_id: int,
    token: uuid.UUID,
    batch: _Batch,
    error: Exception,
    outcome: PushOutcome,
) -> bool:
    """Count a failure of the batch: wait before the next attempt or, at the last one, park
    the batch and move on. Answers whether the push may go on (the batch was parked)."""
    now = timezone.now()
    message = f"{type(error).__name__}: {error}"[:ERROR_LENGTH]
    with transaction.atomic():
        state = _held(connection_id, token)
        if state is None:
            return False
        state.failures += 1
        state.last_error, state.last_error_at = message, now
        parked = state.failures >= settings.CRM_PUSH_MAX_FAILURES
        if parked:
            _park(connection_id, batch.event_ids, {}, state.failures, default_error=message)
            state.push_cursor = batch.last_sequence
            state.failures = 0
            state.next_attempt_at = None
        else:
            delay = retry_delay(state.failures, getattr(error, "retry_after", None))
            state.next_attempt_at = now + timedelta(seconds=delay)
            outcome.retry_in = delay
        state.save()
    if parked:
        outcome.parked += len(batch.event_ids)
    return parked


def retry_delay(failures: int, retry_after: float | None) -> float:
    """Seconds before the next attempt: the CRM's Retry-After when it gave one, else a
    doubling backoff from `CRM_PUSH_BACKOFF_BASE` with jitter (half to all of it), capped."""
    cap = settings.CRM_PUSH_BACKOFF_CAP
    if retry_after is not None:
        return max(float(retry_after), 0.0)
    delay = min(cap, settings.CRM_PUSH_BACKOFF_BASE * 2 ** min(failures - 1, 60))
    return random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not a secret


def _park(
    connection_id: int,
    event_ids: Sequence[uuid.UUID],
    errors: dict[uuid.UUID, str],
    attempts: int,
    *,
    default_error: str = "",
) -> None:
    """Dead letters for the events still there (an erasure may have deleted some since they
    were read: those are locked now, so it waits for this transaction)."""
    if not event_ids:
        return
    live = set(
        OutboxEvent.objects.select_for_update()
        .filter(pk__in=list(event_ids))
        .values_list("pk", flat=True)
    )
    DeadLetter.objects.bulk_create(
        [
            DeadLetter(
                connection_id=connection_id,
                event_id=event_id,
                error=(errors.get(event_id) or default_error)[:ERROR_LENGTH],
                attempts=attempts,
            )
            for event_id in event_ids
            if event_id in live
        ],
        ignore_conflicts=True,
    )


def links_store(
    *,
    connection_id: int,
    remote_ids: dict[uuid.UUID, str],
    now: datetime,
    pks: dict[uuid.UUID, int] | None = None,
) -> None:
    """Remember the CRM's id of each contact (by public id; `pks` maps those the caller has
    read to their pk), a statement or a few for the batch: the later answer wins, also over
    another contact that held the same remote id (the CRM merged them, or reused the id).

    New links go in with one INSERT that skips any conflict; only those it skipped (a contact
    linked to another id, an id linked to another contact) take the slower path."""
    if not remote_ids:
        return
    contacts = dict(pks or {})
    missing = [public_id for public_id in remote_ids if public_id not in contacts]
    if missing:
        contacts.update(
            Contact.objects.filter(public_id__in=missing).values_list("public_id", "pk")
        )
    # one contact per remote id: the last one named wins
    by_remote = {
        str(remote_id): contacts[public_id]
        for public_id, remote_id in remote_ids.items()
        if remote_id and public_id in contacts
    }
    wanted = {contact_id: remote_id for remote_id, contact_id in by_remote.items()}
    inserted = _links_insert(connection_id, wanted, now)
    rest = {contact: remote for contact, remote in wanted.items() if contact not in inserted}
    if rest:
        _links_replace(connection_id, rest, now)


def _links_insert(connection_id: int, wanted: dict[int, str], now: datetime) -> set[int]:
    """Insert the links no row stands in the way of (the other columns at their defaults);
    answers the contacts inserted."""
    if not wanted or not database.features.can_return_rows_from_bulk_insert:
        return set()  # (SQLite before 3.35: every link takes the other path)
    fields = [field for field in ContactLink._meta.concrete_fields if not field.primary_key]
    quote = database.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    rows = ", ".join([f"({', '.join(['%s'] * len(fields))})"] * len(wanted))
    row = {field.attname: field.get_default() for field in fields}
    # as the ORM stores a date (naive UTC on SQLite), so that links order by it
    row.update(connection_id=connection_id, updated_at=database.ops.adapt_datetimefield_value(now))
    values: list[Any] = []
    for contact_id, remote_id in wanted.items():
        row.update(contact_id=contact_id, remote_id=remote_id)
        values += row.values()
    with database.cursor() as cursor:
        cursor.execute(
            # the names are the model's, quoted; the values are parameters
            f"INSERT INTO {quote(ContactLink._meta.db_table)} ({columns}) "  # noqa: S608
            f"VALUES {rows} ON CONFLICT DO NOTHING RETURNING {quote('contact_id')}",
            values,
        )
        return {row[0] for row in cursor.fetchall()}


@transaction.atomic
def _links_replace(connection_id: int, wanted: dict[int, str], now: datetime) -> None:
    """The links that met another: stale ones (the contact's old id, another contact's hold
    of the id) deleted, then the wanted ones written, in one transaction."""
    by_remote = {remote_id: contact_id for contact_id, remote_id in wanted.items()}
    existing = ContactLink.objects.filter(connection_id=connection_id).filter(
        Q(contact_id__in=list(wanted)) | Q(remote_id__in=list(by_remote))
    )
    kept = set()
    stale = []
    for pk, contact_id, remote_id in existing.values_list("pk", "contact_id", "remote_id"):
        if wanted.get(contact_id) == remote_id:
            kept.add(contact_id)
        else:
            stale.append(pk)
    ContactLink.objects.filter(pk__in=stale).delete()
    ContactLink.objects.bulk_create(
        [
            ContactLink(
                connection_id=connection_id,
                contact_id=contact_id,
                remote_id=remote_id,
                updated_at=now,
            )
            for contact_id, remote_id in wanted.items()
            if contact_id not in kept
        ],
        # a pull may have stored the same link meanwhile
        ignore_conflicts=True,
    )


def outbox_mark_processed() -> int:
    """Mark processed the events every enabled connection's cursor has passed and none holds
    as an unresolved dead letter: a task after the pushes that moved a cursor or parked a
    batch, and every minute (beat). One at a time does it (another at once leaves it to that
    one). Answers how many were marked."""
    with transaction.atomic():
        if database.vendor == "postgresql":
            _no_disk_wait()
            with database.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [PROCESSED_LOCK])
                if not cursor.fetchone()[0]:
                    return 0
        low = ConnectionState.objects.filter(connection__enabled=True).aggregate(
            low=Min("push_cursor")
        )["low"]
        if low is None:
            return 0  # no connection: delivered nowhere
        parked = DeadLetter.objects.filter(event=OuterRef("pk"), resolved_at__isnull=True)
        return (
            OutboxEvent.objects.filter(processed_at__isnull=True, sequence__lte=low)
            .filter(~Exists(parked))
            .update(processed_at=timezone.now())
        )


def _error_record(connection_id: int, message: str) -> None:
    ConnectionState.objects.filter(pk=connection_id).update(
        last_error=message[:ERROR_LENGTH], last_error_at=timezone.now()
    )


def dead_letters_replay(*, dead_letter_ids: Sequence[int]) -> ReplayOutcome:
    """Push the events of these dead letters again through their connection's adapter (under
    its lease, so never beside a push), in outbox order, and resolve those delivered."""
    outcome = ReplayOutcome()
    letters = list(
        DeadLetter.objects.filter(pk__in=dead_letter_ids, resolved_at__isnull=True)
        .select_related("connection", "event")
        .order_by("connection_id", "event__sequence")
    )
    by_connection: dict[int, list[DeadLetter]] = {}
    for letter in letters:
        by_connection.setdefault(letter.connection_id, []).append(letter)
    for connection_id, group in by_connection.items():
        token = _claim(connection_id, ignore_backoff=True)
        if token is None:
            outcome.busy += len(group)
            continue
        try:
            _replay(group[0].connection, group, outcome)
        finally:
            _release(connection_id, token)
    outbox_mark_processed()
    return outcome


def _replay(connection: Connection, letters: list[DeadLetter], outcome: ReplayOutcome) -> None:
    try:
        adapter = adapter_for(connection_config(connection))
    except AdapterUnavailable as error:
        outcome.failed += len(letters)
        outcome.errors.append(str(error))
        return
    for start in range(0, len(letters), adapter.batch_size):
        batch = letters[start : start + adapter.batch_size]
        changes = changes_for(connection, [letter.event for letter in batch])
        try:
            result = adapter.push(changes) if changes else PushResult()
        except Exception as error:
            message = f"{type(error).__name__}: {error}"[:ERROR_LENGTH]
            _letters_failed(batch, {letter.event_id: message for letter in batch})
            outcome.failed += len(batch)
            outcome.errors.append(message)
            continue
        now = timezone.now()
        with transaction.atomic():
            links_store(connection_id=connection.pk, remote_ids=result.remote_ids, now=now)
            refused = [letter for letter in batch if letter.event_id in result.rejected]
            _letters_failed(refused, result.rejected)
            DeadLetter.objects.filter(
                pk__in=[letter.pk for letter in batch if letter.event_id not in result.rejected]
            ).update(resolved_at=now)
        outcome.resolved += len(batch) - len(refused)
        outcome.failed += len(refused)


def _letters_failed(letters: Sequence[DeadLetter], errors: dict[uuid.UUID, str]) -> None:
    for letter in letters:
        DeadLetter.objects.filter(pk=letter.pk).update(
            attempts=letter.attempts + 1, error=errors.get(letter.event_id, "")[:ERROR_LENGTH]
        )
