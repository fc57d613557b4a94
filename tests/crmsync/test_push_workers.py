"""The push with real Celery workers and concurrent pushers: a change reaches the receiver
within seconds of its commit, two pushes at once never send one event twice, and a worker
SIGKILLed in the middle of a batch loses nothing (the batch in flight is sent again, the
same deliveries under the same `webhook-id`, which the receiver recognises)."""

import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection as database
from django.db import transaction

from contacts.services import contact_update
from crmsync.models import Connection, ConnectionState, DeadLetter, OutboxEvent
from crmsync.push import connection_push
from crmsync.services import outbox_emit, outbox_head, outbox_sequence
from crmsync.tasks import push_connection, push_connections
from tests.conftest import wait_for
from tests.consent.workers import Workers
from tests.crmsync.receiver import Receiver, bodies, receiver_running
from tests.factories import ContactFactory
from tests.queued import held_back

# the Redis database of the killed workers (one no other crash test uses: tests/consent/workers.py)
REDIS_DATABASE = 13
VISIBILITY_TIMEOUT = 5
# a dead worker's claim on the connection expires after this: then another push takes over
LEASE_SECONDS = 3
EVENTS = 120
BATCH = 50  # the webhook adapter's


def emitted(count: int) -> list[OutboxEvent]:
    """`count` changes of several people, committed, no push queued by their commit."""
    people = ContactFactory.create_batch(4)
    with held_back(push_connection), transaction.atomic():
        return [
            outbox_emit(topic="contact.updated", contact=people[n % 4], payload={"n": n})
            for n in range(count)
        ]


@pytest.mark.django_db(transaction=True)
def test_a_committed_change_reaches_the_receiver_within_seconds(
    hook: Connection, receiver: Receiver, celery_worker: Any
) -> None:
    contact = ContactFactory()

    with transaction.atomic():
        contact_update(contact=contact, fields={"city": "Lyon"})
    committed_at = time.monotonic()

    wait_for(lambda: receiver.deliveries, timeout=10)
    assert time.monotonic() - committed_at < 10
    [body] = bodies(receiver)
    assert (body["topic"], body["contact"]) == ("contact.updated", str(contact.public_id))


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_pushes_at_once_never_send_the_same_event(hook: Connection) -> None:
    with receiver_running(Receiver(delay=0.005)) as slow:
        Connection.objects.filter(pk=hook.pk).update(base_url=slow.url)
        events = emitted(EVENTS)
        start = threading.Barrier(2)

        def pusher() -> None:
            try:
                start.wait(5)
                connection_push(connection_id=hook.pk)
            finally:
                database.close()

        threads = [threading.Thread(target=pusher) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

        assert slow.received_ids() == [str(event.pk) for event in events]
        assert max(slow.copies().values()) == 1
        assert ConnectionState.objects.get(pk=hook.pk).push_cursor == outbox_head()


@pytest.fixture
def workers(transactional_db: None) -> Iterator[Workers]:
    pool = Workers(
        queue=f"crm-push-crash-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        redis_database=REDIS_DATABASE,
        visibility_timeout=VISIBILITY_TIMEOUT,
        environment={"CRM_PUSH_LEASE_SECONDS": str(LEASE_SECONDS)},
    )
    try:
        yield pool
    finally:
        pool.close()


@pytest.mark.slow
@pytest.mark.worker
@pytest.mark.postgres
def test_a_worker_killed_mid_batch_loses_nothing_and_the_resent_batch_changes_nothing(
    workers: Workers, hook: Connection
) -> None:
    with receiver_running(Receiver(delay=0.05)) as slow:
        Connection.objects.filter(pk=hook.pk).update(base_url=slow.url)
        events = emitted(EVENTS)
        outbox_sequence()
        order = [str(event.pk) for event in OutboxEvent.objects.order_by("sequence")]
        assert sorted(order) == sorted(str(event.pk) for event in events)

        # when: the worker pushing is killed in the middle of its second batch
        first = workers.start()
        workers.send(push_connections)
        wait_for(lambda: len(slow.received_ids()) >= BATCH + 10, timeout=60, interval=0.01)
        workers.kill(first)

        # then: the first batch is delivered and recorded, the second one in flight is not
        state = ConnectionState.objects.get(pk=hook.pk)
        received_before = slow.received_ids()
        assert BATCH + 10 <= len(received_before) < EVENTS
        assert state.push_cursor < outbox_head()
        assert state.lease_token is not None  # the dead worker's claim, until it expires

        # when: another worker runs the safety net until everything is through
        workers.start()
        deadline = time.monotonic() + 60
        while ConnectionState.objects.get(pk=hook.pk).push_cursor < outbox_head():
            assert time.monotonic() < deadline, "the push never caught up"
            workers.send(push_connections)
            time.sleep(2)
        wait_for(lambda: ConnectionState.objects.get(pk=hook.pk).lease_token is None)

        # then: every event arrived, first seen in outbox order; only the batch in flight at
        # the kill came twice, each copy the same delivery
        copies = slow.copies()
        first_seen = list(dict.fromkeys(slow.received_ids()))
        assert first_seen == order
        again = [event_id for event_id, count in copies.items() if count > 1]
        assert max(copies.values()) <= 2
        assert 0 < len(again) <= BATCH
        in_flight = OutboxEvent.objects.filter(
            sequence__gt=state.push_cursor, sequence__lte=state.push_cursor + BATCH
        )
        assert set(again) <= {str(pk) for pk in in_flight.values_list("pk", flat=True)}
        by_id: dict[str, list[dict[str, Any]]] = {}
        for body in bodies(slow):
            by_id.setdefault(body["id"], []).append(body)
        assert all(len({str(copy) for copy in by_id[event_id]}) == 1 for event_id in again)
        assert slow.refused_signatures == 0
        assert not DeadLetter.objects.exists()
        assert not OutboxEvent.objects.filter(processed_at__isnull=True).exists()
