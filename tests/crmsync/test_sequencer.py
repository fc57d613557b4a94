"""The outbox's order: events are numbered after their transaction commits, in the order they
were written, so that no cursor (a connection's, or the feed's) can pass an event it has not
seen, even when the transaction that wrote it first commits last."""

import random
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection as database
from django.db import transaction
from django.utils import timezone

from crmsync.models import Connection, OutboxEvent
from crmsync.push import connection_push
from crmsync.services import outbox_emit, outbox_sequence
from crmsync.tasks import push_connection
from tests.crmsync.receiver import Receiver
from tests.factories import ContactFactory, OutboxEventFactory
from tests.queued import held_back


@pytest.mark.django_db
def test_committed_events_are_numbered_in_the_order_they_were_written() -> None:
    now = timezone.now()
    written = [
        OutboxEventFactory(created_at=now + timedelta(seconds=offset)) for offset in (3, 1, 2)
    ]

    numbered = outbox_sequence()

    assert numbered == 3
    order = list(OutboxEvent.objects.order_by("sequence").values_list("pk", flat=True))
    assert order == [written[1].pk, written[2].pk, written[0].pk]
    assert list(OutboxEvent.objects.values_list("sequence", flat=True).order_by("sequence")) == [
        1,
        2,
        3,
    ]


@pytest.mark.django_db
def test_numbering_goes_on_after_the_highest_number_a_bounded_batch_at_a_time() -> None:
    OutboxEventFactory.create_batch(3)
    outbox_sequence()
    later = OutboxEventFactory.create_batch(5)

    assert outbox_sequence(limit=2) == 2
    assert outbox_sequence(limit=2) == 2
    assert outbox_sequence(limit=2) == 1
    assert outbox_sequence(limit=2) == 0
    numbers = sorted(
        OutboxEvent.objects.filter(pk__in=[e.pk for e in later]).values_list("sequence", flat=True)
    )
    assert numbers == [4, 5, 6, 7, 8]


@pytest.mark.django_db(transaction=True)
def test_the_sequencer_refuses_to_run_inside_a_transaction() -> None:
    # it would number that transaction's own events before they are committed
    with pytest.raises(RuntimeError), transaction.atomic():
        outbox_sequence()


@pytest.fixture
def no_push_queued() -> Any:
    """Commits queue no push: the test runs the pushes itself."""
    with held_back(push_connection):
        yield


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_event_committed_late_is_pushed_after_the_cursor_passed_its_successors(
    hook: Connection, receiver: Receiver, no_push_queued: None
) -> None:
    # given: one transaction writes an event and stays open while another commits a later one
    contact = ContactFactory()
    written, release, done = threading.Event(), threading.Event(), threading.Event()
    late: dict[str, Any] = {}

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                late["event"] = outbox_emit(
                    topic="contact.updated", contact=contact, payload={"late": True}
                )
                written.set()
                release.wait(10)
        finally:
            database.close()
            done.set()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert written.wait(10)
    early = outbox_emit(topic="contact.updated", contact=contact, payload={"late": False})

    # when: the push runs before and after the slow transaction commits
    connection_push(connection_id=hook.pk)
    assert receiver.received_ids() == [str(early.pk)]
    release.set()
    assert done.wait(10)
    thread.join()
    connection_push(connection_id=hook.pk)

    # then: both delivered, the late one after the cursor had passed the other
    assert receiver.received_ids() == [str(early.pk), str(late["event"].pk)]
    assert late["event"].created_at < early.created_at


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_reader_following_the_cursor_under_concurrent_writers_sees_each_event_once(
    no_push_queued: None,
) -> None:
    # given: writers committing events in transactions of varied length, while a reader
    # numbers and reads on from its cursor, as the feed and the push do
    contacts = ContactFactory.create_batch(4)
    stop = threading.Event()
    written: list[str] = []
    lock = threading.Lock()

    def writer(number: int) -> None:
        try:
            for round_number in range(25):
                with transaction.atomic():
                    events = [
                        outbox_emit(
                            topic="contact.updated",
                            contact=contacts[number],
                            payload={"round": round_number, "n": n},
                        )
                        for n in range(2)
                    ]
                    time.sleep(random.uniform(0, 0.01))  # noqa: S311 - timing, not a secret
                with lock:
                    written.extend(str(event.pk) for event in events)
        finally:
            database.close()

    seen: list[str] = []

    def reader() -> None:
        cursor = 0
        try:
            while True:
                finished = stop.is_set()
                outbox_sequence()
                batch = list(
                    OutboxEvent.objects.filter(sequence__gt=cursor)
                    .order_by("sequence")
                    .values_list("pk", "sequence")[:7]
                )
                seen.extend(str(pk) for pk, _sequence in batch)
                if batch:
                    cursor = batch[-1][1]
                elif finished:
                    return
        finally:
            database.close()

    writers = [threading.Thread(target=writer, args=(number,)) for number in range(4)]
    following = threading.Thread(target=reader)
    following.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(60)
    stop.set()
    following.join(60)

    # then: every event once, none lost, none repeated
    assert len(written) == 200
    assert sorted(seen) == sorted(written)
    assert len(set(seen)) == len(seen)
