"""Writes for CRM sync: the outbox event every contact or consent change leaves behind, and its
place in the outbox (`outbox_sequence`).

The apps below this one (contacts, consent) write the outbox through this module, so it
imports none of their services: the connections are `crmsync.connections`, the push (claims,
cursors, retries, dead letters) `crmsync.push`."""

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection as database
from django.db import transaction
from django.utils import timezone

from contacts.models import Contact
from core.bulk import bulk_insert_rows, insert_select_sql
from crmsync.models import Connection, OutboxEvent, OutboxSequenceMark, OutboxTopic

logger = logging.getLogger(__name__)

# The key of the PostgreSQL advisory lock that serialises `outbox_sequence`.
SEQUENCER_LOCK = 1_400_014
# How many events one call of the sequencer numbers at most (one statement).
SEQUENCER_BATCH = 5000
# The highest sequence given: the mark's, or the table's when higher (events numbered before
# the mark existed). Portable SQL: PostgreSQL and SQLite alike.
_HIGHEST_GIVEN = """
    SELECT COALESCE(MAX(given), 0) FROM (
        SELECT MAX(sequence) AS given FROM {table}
        UNION ALL SELECT sequence FROM {mark}
    ) AS highest
"""
# The cache key that stands for "a push of this connection is queued and has not started".
PUSH_QUEUED_KEY = "crmsync:push-queued:{}"
ENABLED_CONNECTIONS_KEY = "crmsync:enabled-connections"
ENABLED_CONNECTIONS_SECONDS = 10
# The payload key naming the connection a change came from (a pull): the push does not send
# it back there (no ping-pong).
ORIGIN_KEY = "origin_connection"
_origin: ContextVar[int | None] = ContextVar("crmsync_outbox_origin", default=None)


@contextmanager
def outbox_origin(connection_id: int) -> Iterator[None]:
    """Mark the outbox events written inside as coming from this connection (a pull)."""
    token = _origin.set(connection_id)
    try:
        yield
    finally:
        _origin.reset(token)


def _with_origin(payload: dict[str, Any]) -> dict[str, Any]:
    origin = _origin.get()
    return payload if origin is None else {**payload, ORIGIN_KEY: origin}


def outbox_emit(*, topic: OutboxTopic, contact: Contact, payload: dict[str, Any]) -> OutboxEvent:
    """Queue a change for the CRMs; call it inside the transaction that makes the change."""
    if topic not in OutboxTopic.values:
        # the CRMs and the event feed know the topics of OutboxTopic only
        raise ValueError(f"Unknown outbox topic {topic!r}: add it to OutboxTopic first.")
    event = OutboxEvent.objects.create(
        topic=topic, contact_public_id=contact.public_id, payload=_with_origin(payload)
    )
    push_soon()
    return event


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
                "payload": _with_origin(payload),
                "created_at": start + timedelta(microseconds=index),
            }
            for index, (topic, contact, payload) in enumerate(events)
        ],
    )
    if events:
        push_soon()


def outbox_emit_select(
    *, topic: str, source: str, public_id: str, payload: str, order: str, start: datetime
) -> tuple[str, list[Any]]:
    """`outbox_emit_many` written by the database: the statement (and its parameters) queueing
    one event per row of `source` (a table, or rows a `WITH` statement returned), `public_id`
    and `payload` being SQL over it. Their `created_at` rises by a microsecond each from
    `start`, in `order`. Build it inside the transaction that runs it (the push is queued for
    its commit)."""
    if topic not in OutboxTopic.values:
        raise ValueError(f"Unknown outbox topic {topic!r}: add it to OutboxTopic first.")
    origin = _origin.get()
    if origin is not None:
        payload = f"({payload}) || jsonb_build_object('{ORIGIN_KEY}', {int(origin)})"
    statement = insert_select_sql(
        OutboxEvent,
        {
            "id": "gen_random_uuid()",
            "topic": ("%s", [topic]),
            "contact_public_id": public_id,
            "payload": payload,
            "created_at": (
                f"%s + (row_number() OVER (ORDER BY {order}) - 1) * interval '1 microsecond'",
                [start],
            ),
        },
        source,
    )
    push_soon()
    return statement


def push_soon() -> None:
    """Once the current transaction commits, queue a push of every enabled connection (once
    per transaction, however many events it wrote), so that a change reaches the CRMs in
    seconds rather than at the next safety-net run."""
    hooks = transaction.get_connection().run_on_commit
    if any(hook is push_after_commit for _savepoints, hook, _robust in hooks):
        return
    # robust: the change is committed whatever happens here; the safety net catches up
    transaction.on_commit(push_after_commit, robust=True)


def push_after_commit() -> None:
    """Queue a push of every enabled connection, unless one is queued and not yet started."""
    # here, not at the top: the tasks call these services
    from crmsync.tasks import push_connection

    debounce = settings.CRM_PUSH_DEBOUNCE
    for connection_id in enabled_connection_ids():
        # one queued push at a time per connection: the task deletes the key as it starts,
        # so a change committed after that queues the next one
        if debounce <= 0 or cache.add(PUSH_QUEUED_KEY.format(connection_id), 1, debounce):
            push_connection.delay(connection_id)


def enabled_connection_ids() -> list[int]:
    """The enabled connections, kept in the cache for a few seconds: a commit queues their
    pushes without a query of its own (`connections_changed` forgets them)."""
    ids = cache.get_or_set(
        ENABLED_CONNECTIONS_KEY,
        lambda: list(Connection.objects.filter(enabled=True).values_list("pk", flat=True)),
        ENABLED_CONNECTIONS_SECONDS,
    )
    return list(ids or [])


def connections_changed() -> None:
    """A connection was created, changed or deleted: the next commit reads them again."""
    cache.delete(ENABLED_CONNECTIONS_KEY)


def push_started(*, connection_id: int) -> None:
    """A push task of the connection started: the next commit queues another one."""
    cache.delete(PUSH_QUEUED_KEY.format(connection_id))


def outbox_sequence(*, limit: int = SEQUENCER_BATCH) -> int:
    """Number the committed events still without a sequence, in (created_at, id) order, after
    the highest number ever given: one statement, serialised (a PostgreSQL advisory lock held
    to the end of its own transaction; SQLite serialises writers anyway), then the mark of
    that highest number moved up (`OutboxSequenceMark`).

    Numbers are given after commit, never at insert: a transaction that commits late gets
    numbers after those already read, so no cursor can pass an event it has not seen. They
    follow the mark, not the events still in the table: the events holding the highest numbers
    may be deleted (an erasure), and a number given again would fall behind cursors already
    past it. Must not run inside a transaction (it would number that transaction's
    uncommitted events). Answers how many events were numbered."""
    table = database.ops.quote_name(OutboxEvent._meta.db_table)
    mark = database.ops.quote_name(OutboxSequenceMark._meta.db_table)
    with transaction.atomic(durable=True), database.cursor() as cursor:
        if database.vendor == "postgresql":
            # a caller's session may have turned it off (the push's bookkeeping): numbers
            # given, then lost in a crash, would be given again to other events
            cursor.execute("SET LOCAL synchronous_commit TO ON")
            # its own statement: the UPDATE below then reads what the previous holder committed
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEQUENCER_LOCK])
        cursor.execute(
            # the table names are ours, quoted; the one value is a parameter
            f"""
            UPDATE {table} SET sequence = numbered.number
            FROM (
                SELECT id, ({_HIGHEST_GIVEN.format(table=table, mark=mark)})
                    + ROW_NUMBER() OVER (ORDER BY created_at, id) AS number
                FROM {table}
                WHERE sequence IS NULL
                ORDER BY created_at, id
                LIMIT %s
            ) AS numbered
            WHERE {table}.id = numbered.id
            """,  # noqa: S608
            [limit],
        )
        numbered = cursor.rowcount
        if numbered:
            # the numbers just given are the highest in the table: the mark only goes up
            cursor.execute(
                f"""
                INSERT INTO {mark} (id, sequence) VALUES (1, (SELECT MAX(sequence) FROM {table}))
                ON CONFLICT (id) DO UPDATE SET sequence = excluded.sequence
                """  # noqa: S608 - our tables, quoted
            )
        return numbered


def outbox_head() -> int:
    """The highest sequence given so far (0 when none), whether or not its event remains."""
    table = database.ops.quote_name(OutboxEvent._meta.db_table)
    mark = database.ops.quote_name(OutboxSequenceMark._meta.db_table)
    with database.cursor() as cursor:
        cursor.execute(_HIGHEST_GIVEN.format(table=table, mark=mark))
        row = cursor.fetchone()
    return int(row[0]) if row else 0
