"""The push machinery, over real HTTP to a local webhook receiver: order, cursor, signatures,
Retry-After, backoff, dead letters and their replay, claims, and what an erasure leaves."""

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from contacts.models import Contact
from contacts.services import contact_update
from crmsync import adapters
from crmsync.adapters.base import Change, ConnectionConfig, PushResult
from crmsync.adapters.webhook import WebhookAdapter
from crmsync.connections import connection_create
from crmsync.models import Connection, ConnectionState, ContactLink, DeadLetter, OutboxEvent
from crmsync.push import (
    _claim,
    connection_push,
    dead_letters_replay,
    links_store,
    outbox_mark_processed,
    retry_delay,
)
from crmsync.services import outbox_emit, outbox_head, outbox_sequence
from privacy.services import contact_erase
from tests.crmsync.receiver import Receiver, bodies
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def changes(count: int, contact: Contact | None = None) -> list[OutboxEvent]:
    contact = contact or ContactFactory()
    return [
        outbox_emit(topic="contact.updated", contact=contact, payload={"n": number})
        for number in range(count)
    ]


def state(connection: Connection) -> ConnectionState:
    return ConnectionState.objects.get(pk=connection.pk)


def test_each_event_is_posted_once_in_order_signed_and_the_cursor_follows(
    hook: Connection, receiver: Receiver
) -> None:
    events = changes(3)

    outcome = connection_push(connection_id=hook.pk)

    assert outcome.delivered == 3
    assert receiver.received_ids() == [str(event.pk) for event in events]
    assert receiver.refused_signatures == 0  # every one verified by standardwebhooks
    first = bodies(receiver)[0]
    assert set(first) == {"id", "cursor", "topic", "contact", "occurred_at", "data"}
    assert (first["topic"], first["data"], first["contact"]) == (
        "contact.updated",
        {"n": 0},
        str(events[0].contact_public_id),
    )
    assert [int(body["cursor"]) for body in bodies(receiver)] == sorted(
        int(body["cursor"]) for body in bodies(receiver)
    )
    assert state(hook).push_cursor == outbox_head() == int(bodies(receiver)[-1]["cursor"])
    assert state(hook).last_push_at is not None and state(hook).lease_token is None


def test_a_second_push_sends_nothing_again(hook: Connection, receiver: Receiver) -> None:
    changes(2)
    connection_push(connection_id=hook.pk)

    again = connection_push(connection_id=hook.pk)

    assert again.delivered == 0 and len(receiver.received_ids()) == 2


def test_a_new_connection_starts_at_the_end_of_the_outbox(receiver: Receiver) -> None:
    changes(2)
    outbox_sequence()
    late = connection_create(
        name="late", kind="webhook", base_url=receiver.url, credentials={"secret": receiver.secret}
    )
    [fresh] = changes(1)

    connection_push(connection_id=late.pk)

    assert receiver.received_ids() == [str(fresh.pk)]


def test_a_signature_made_with_another_secret_is_refused_by_the_receiver(
    hook: Connection, receiver: Receiver
) -> None:
    receiver.secret = "whsec_" + "QUJD" * 8  # the integrator holds another secret
    changes(1)

    outcome = connection_push(connection_id=hook.pk)

    assert receiver.refused_signatures == 1 and receiver.deliveries == []
    assert outcome.delivered == 0 and outcome.retry_in is not None
    assert (state(hook).push_cursor, state(hook).failures) == (0, 1)


def test_a_429_keeps_the_cursor_and_waits_for_retry_after(
    hook: Connection, receiver: Receiver
) -> None:
    changes(2)
    receiver.fail_next(1, status=429, retry_after="7")
    before = timezone.now()

    outcome = connection_push(connection_id=hook.pk)

    current = state(hook)
    assert outcome.delivered == 0 and outcome.retry_in == 7
    assert current.push_cursor == 0 and current.failures == 1
    assert "429" in current.last_error
    waited = (current.next_attempt_at - before).total_seconds()
    assert 7 <= waited < 9
    # not due yet: nothing is sent
    assert connection_push(connection_id=hook.pk).delivered == 0
    assert receiver.received_ids() == []


def test_once_retry_after_has_passed_the_batch_goes_and_the_failures_are_forgotten(
    hook: Connection, receiver: Receiver
) -> None:
    changes(2)
    receiver.fail_next(1, status=429, retry_after="7")
    connection_push(connection_id=hook.pk)
    ConnectionState.objects.filter(pk=hook.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )

    outcome = connection_push(connection_id=hook.pk)

    assert outcome.delivered == 2 and state(hook).failures == 0
    assert state(hook).next_attempt_at is None


def test_a_5xx_backs_off_doubling_with_jitter_up_to_the_cap(settings: Any) -> None:
    settings.CRM_PUSH_BACKOFF_BASE, settings.CRM_PUSH_BACKOFF_CAP = 2.0, 600.0
    delays = {
        failures: [retry_delay(failures, None) for _ in range(200)] for failures in (1, 4, 12)
    }

    assert all(1 <= delay <= 2 for delay in delays[1])
    assert all(8 <= delay <= 16 for delay in delays[4])
    assert all(300 <= delay <= 600 for delay in delays[12])  # capped at 10 minutes
    assert len(set(delays[4])) > 100  # jitter: workers do not come back together


def test_a_server_error_waits_a_backoff_then_a_network_error_too(
    hook: Connection, receiver: Receiver, settings: Any
) -> None:
    settings.CRM_PUSH_BACKOFF_BASE = 4.0
    changes(1)
    receiver.fail_next(1, status=503)

    first = connection_push(connection_id=hook.pk)

    assert first.retry_in is not None and 2 <= first.retry_in <= 4
    Connection.objects.filter(pk=hook.pk).update(base_url="http://127.0.0.1:9/nothing-listens")
    ConnectionState.objects.filter(pk=hook.pk).update(next_attempt_at=None)
    second = connection_push(connection_id=hook.pk)
    assert second.retry_in is not None and 4 <= second.retry_in <= 8
    assert state(hook).failures == 2 and "ConnectionError" in state(hook).last_error


def test_after_the_last_failure_the_batch_is_parked_and_the_cursor_moves_on(
    hook: Connection, receiver: Receiver, settings: Any
) -> None:
    settings.CRM_PUSH_MAX_FAILURES = 3
    parked = changes(2)
    receiver.fail_next(3, status=500)
    for _attempt in range(3):
        ConnectionState.objects.filter(pk=hook.pk).update(next_attempt_at=None)
        connection_push(connection_id=hook.pk)

    letters = DeadLetter.objects.filter(connection=hook).order_by("event__sequence")
    assert [letter.event_id for letter in letters] == [event.pk for event in parked]
    assert {letter.attempts for letter in letters} == {3}
    assert all("HTTP 500" in letter.error for letter in letters)
    assert state(hook).push_cursor == outbox_head() and state(hook).failures == 0
    # the next change goes at once
    [later] = changes(1)
    connection_push(connection_id=hook.pk)
    assert receiver.received_ids() == [str(later.pk)]
    outbox_mark_processed()
    # parked events are not "delivered everywhere"
    assert OutboxEvent.objects.get(pk=parked[0].pk).processed_at is None
    assert OutboxEvent.objects.get(pk=later.pk).processed_at is not None


def test_replaying_dead_letters_delivers_them_and_resolves_them(
    hook: Connection, receiver: Receiver, settings: Any
) -> None:
    settings.CRM_PUSH_MAX_FAILURES = 1
    parked = changes(2)
    receiver.fail_next(1, status=500)
    connection_push(connection_id=hook.pk)
    ids = list(DeadLetter.objects.values_list("pk", flat=True))

    outcome = dead_letters_replay(dead_letter_ids=ids)

    assert (outcome.resolved, outcome.failed) == (2, 0)
    assert receiver.received_ids() == [str(event.pk) for event in parked]
    assert not DeadLetter.objects.filter(resolved_at__isnull=True).exists()
    assert all(OutboxEvent.objects.get(pk=event.pk).processed_at is not None for event in parked)


def test_a_replay_that_fails_again_keeps_the_dead_letter_and_counts_the_attempt(
    hook: Connection, receiver: Receiver, settings: Any
) -> None:
    settings.CRM_PUSH_MAX_FAILURES = 1
    changes(1)
    receiver.fail_next(2, status=502)
    connection_push(connection_id=hook.pk)
    [letter] = DeadLetter.objects.all()

    outcome = dead_letters_replay(dead_letter_ids=[letter.pk])

    letter.refresh_from_db()
    assert (outcome.resolved, outcome.failed) == (0, 1)
    assert letter.resolved_at is None and letter.attempts == 2 and "502" in letter.error


def test_a_replay_waits_while_a_push_holds_the_connection(
    hook: Connection, receiver: Receiver, settings: Any
) -> None:
    settings.CRM_PUSH_MAX_FAILURES = 1
    changes(1)
    receiver.fail_next(1)
    connection_push(connection_id=hook.pk)
    assert _claim(hook.pk) is not None  # a push is running

    outcome = dead_letters_replay(
        dead_letter_ids=list(DeadLetter.objects.values_list("pk", flat=True))
    )

    assert outcome.busy == 1 and receiver.received_ids() == []


def test_a_claimed_connection_is_not_pushed_by_another_worker(
    hook: Connection, receiver: Receiver
) -> None:
    changes(1)
    assert _claim(hook.pk) is not None

    assert _claim(hook.pk) is None
    assert connection_push(connection_id=hook.pk).delivered == 0
    assert receiver.received_ids() == []


def test_an_expired_claim_is_taken_over(hook: Connection, receiver: Receiver) -> None:
    changes(1)
    _claim(hook.pk)
    ConnectionState.objects.filter(pk=hook.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )

    assert connection_push(connection_id=hook.pk).delivered == 1


def test_a_push_that_lost_its_claim_does_not_move_the_cursor(
    hook: Connection, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    changes(1)

    def claim_taken(self: WebhookAdapter, batch: Sequence[Change]) -> None:
        # while the batch is being sent, the claim expires and another worker takes it
        # (here just before the call: `push` itself runs where it may not use the database)
        ConnectionState.objects.filter(pk=hook.pk).update(lease_token=uuid.uuid4())

    monkeypatch.setattr(WebhookAdapter, "prepare", claim_taken, raising=False)

    connection_push(connection_id=hook.pk)

    assert receiver.received_ids()  # it was sent
    assert state(hook).push_cursor == 0  # the other worker sends it again: at least once


class RejectingAdapter:
    """An adapter whose CRM refuses the changes with odd payload numbers for good, and names
    the contacts of the others."""

    batch_size = 10

    def __init__(self, config: ConnectionConfig) -> None:
        self.config = config

    def push(self, batch: Sequence[Change]) -> PushResult:
        result = PushResult()
        for change in batch:
            if change.data.get("n", 0) % 2:
                result.rejected[change.id] = f"INVALID_EMAIL for change {change.data['n']}"
            else:
                result.remote_ids[change.contact] = f"crm-{change.contact_data['email']}"
        return result


@pytest.fixture
def rejecting(monkeypatch: pytest.MonkeyPatch) -> Connection:
    monkeypatch.setitem(adapters.ADAPTERS, "hubspot", f"{__name__}.RejectingAdapter")
    return connection_create(
        name="crm", kind="hubspot", base_url="http://127.0.0.1:9/", credentials={"token": "t"}
    )


def test_changes_the_crm_refuses_become_dead_letters_and_the_rest_goes_on(
    rejecting: Connection,
) -> None:
    contact = ContactFactory(email="lea@example.fr")
    events = changes(4, contact)

    outcome = connection_push(connection_id=rejecting.pk)

    assert (outcome.delivered, outcome.rejected) == (2, 2)
    letters = DeadLetter.objects.order_by("event__sequence")
    assert [letter.event_id for letter in letters] == [events[1].pk, events[3].pk]
    assert letters[0].error == "INVALID_EMAIL for change 1"
    assert state(rejecting).push_cursor == outbox_head()
    link = ContactLink.objects.get(connection=rejecting)
    assert (link.contact, link.remote_id) == (contact, "crm-lea@example.fr")


def test_the_crm_s_id_of_a_contact_reaches_the_adapter_with_the_contact_as_it_is_now(
    rejecting: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    contact = ContactFactory(email="lea@example.fr")
    changes(1, contact)
    connection_push(connection_id=rejecting.pk)
    contact_update(contact=contact, fields={"first_name": "Léa"})
    seen: list[Change] = []
    monkeypatch.setattr(
        RejectingAdapter, "push", lambda self, batch: seen.extend(batch) or PushResult()
    )

    connection_push(connection_id=rejecting.pk)

    assert seen[-1].remote_id == "crm-lea@example.fr"
    assert seen[-1].contact_data is not None and seen[-1].contact_data["first_name"] == "Léa"


def test_a_connection_whose_adapter_is_missing_fails_clearly_and_sends_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(adapters.ADAPTERS, "salesforce", "crmsync.adapters.nowhere.Adapter")
    connection = connection_create(
        name="sf", kind="salesforce", base_url="https://127.0.0.1:9/", credentials={"token": "t"}
    )
    changes(1)

    assert connection_push(connection_id=connection.pk).delivered == 0
    current = state(connection)
    assert "salesforce adapter" in current.last_error and "not available" in current.last_error
    assert current.push_cursor == 0


def test_an_erased_person_s_delivered_events_are_not_sent_again_and_the_erasure_is(
    hook: Connection, receiver: Receiver, settings: Any
) -> None:
    contact = ContactFactory()
    delivered = changes(1, contact)
    connection_push(connection_id=hook.pk)
    # a second connection, behind: it meets the scrubbed event on its way
    ConnectionState.objects.filter(pk=hook.pk).update(push_cursor=0)
    OutboxEvent.objects.filter(pk=delivered[0].pk).update(processed_at=timezone.now())

    contact_erase(contact=contact, reason="request")
    connection_push(connection_id=hook.pk)

    topics = [body["topic"] for body in bodies(receiver)]
    assert topics == ["contact.updated", "contact.erased"]  # the scrubbed one not again
    assert OutboxEvent.objects.get(pk=delivered[0].pk).payload == {"erased": True}


def test_an_erasure_removes_the_person_s_undelivered_events_and_their_dead_letters(
    hook: Connection, receiver: Receiver, settings: Any
) -> None:
    settings.CRM_PUSH_MAX_FAILURES = 1
    contact = ContactFactory()
    changes(2, contact)
    receiver.fail_next(1)
    connection_push(connection_id=hook.pk)
    assert DeadLetter.objects.count() == 2

    contact_erase(contact=contact, reason="request")

    assert not DeadLetter.objects.exists()
    assert list(
        OutboxEvent.objects.filter(contact_public_id=contact.public_id).values_list(
            "topic", flat=True
        )
    ) == ["contact.erased"]


def test_events_are_processed_only_once_every_enabled_connection_has_them(
    hook: Connection, receiver: Receiver
) -> None:
    other = connection_create(
        name="second",
        kind="webhook",
        base_url=receiver.url,
        credentials={"secret": receiver.secret},
    )
    [event] = changes(1)

    connection_push(connection_id=hook.pk)
    outbox_mark_processed()
    assert OutboxEvent.objects.get(pk=event.pk).processed_at is None
    connection_push(connection_id=other.pk)
    outbox_mark_processed()

    assert OutboxEvent.objects.get(pk=event.pk).processed_at is not None


def test_a_disabled_connection_is_not_pushed_and_does_not_hold_back_the_others(
    hook: Connection, receiver: Receiver
) -> None:
    paused = connection_create(
        name="paused",
        kind="webhook",
        base_url=receiver.url,
        credentials={"secret": receiver.secret},
        enabled=False,
    )
    [event] = changes(1)

    assert connection_push(connection_id=paused.pk).delivered == 0
    connection_push(connection_id=hook.pk)
    outbox_mark_processed()

    assert receiver.received_ids() == [str(event.pk)]
    assert OutboxEvent.objects.get(pk=event.pk).processed_at is not None


def test_the_crm_s_latest_answer_wins_for_each_contact_and_each_remote_id(
    rejecting: Connection,
) -> None:
    lea, paul = ContactFactory(), ContactFactory()
    links_store(connection_id=rejecting.pk, remote_ids={lea.public_id: "42"}, now=timezone.now())

    # the CRM now calls Paul 42 (it merged them) and Léa 43
    links_store(
        connection_id=rejecting.pk,
        remote_ids={paul.public_id: "42", lea.public_id: "43"},
        now=timezone.now(),
    )

    links = dict(ContactLink.objects.values_list("contact_id", "remote_id"))
    assert links == {paul.pk: "42", lea.pk: "43"}


def test_a_connection_made_without_its_push_state_gets_one_at_the_end_of_the_outbox(
    receiver: Receiver,
) -> None:
    changes(1)
    outbox_sequence()
    bare = Connection.objects.create(
        name="bare", kind="webhook", base_url=receiver.url, credentials_token=""
    )
    ConnectionState.objects.filter(pk=bare.pk).delete()

    connection_push(connection_id=bare.pk)

    state_made = ConnectionState.objects.get(pk=bare.pk)
    assert state_made.push_cursor == outbox_head()
    # and without its secret, it says so instead of failing the worker
    assert "cannot be set up" in state_made.last_error and "secret" in state_made.last_error


class NamingAdapter:
    """An adapter whose CRM accepts everything and names each contact after its email."""

    batch_size = 50

    def __init__(self, config: ConnectionConfig) -> None:
        self.config = config

    def push(self, batch: Sequence[Change]) -> PushResult:
        return PushResult(
            remote_ids={
                change.contact: f"crm-{(change.contact_data or {}).get('email')}"
                for change in batch
            }
        )


def test_a_batch_costs_the_same_few_statements_whatever_the_number_of_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    monkeypatch.setitem(adapters.ADAPTERS, "hubspot", f"{__name__}.NamingAdapter")
    naming = connection_create(
        name="crm", kind="hubspot", base_url="http://127.0.0.1:9/", credentials={"token": "t"}
    )

    def statements_to_push(count: int) -> int:
        for _ in range(count):
            changes(1)
        outbox_sequence()
        with CaptureQueriesContext(connection) as queries:
            assert connection_push(connection_id=naming.pk).delivered == count
        return len(queries)

    two_batches, six_batches = statements_to_push(100), statements_to_push(300)

    # per batch: the events with their contacts and links read, then a transaction (its
    # savepoint here) moving the cursor and storing the new links; nothing per event
    assert (six_batches - two_batches) / 4 <= 6
    assert ContactLink.objects.filter(connection=naming).count() == 400


def test_links_learned_in_a_push_are_kept_and_a_changed_one_replaces_the_old(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(adapters.ADAPTERS, "hubspot", f"{__name__}.NamingAdapter")
    naming = connection_create(
        name="crm", kind="hubspot", base_url="http://127.0.0.1:9/", credentials={"token": "t"}
    )
    lea = ContactFactory(email="lea@example.fr")
    changes(1, lea)
    connection_push(connection_id=naming.pk)
    assert ContactLink.objects.get(contact=lea).remote_id == "crm-lea@example.fr"

    contact_update(contact=lea, email="lea.martin@example.fr", fields={})
    connection_push(connection_id=naming.pk)

    assert list(ContactLink.objects.filter(contact=lea).values_list("remote_id", flat=True)) == [
        "crm-lea.martin@example.fr"
    ]


def test_a_push_task_that_delivered_queues_the_processed_marks(
    hook: Connection, receiver: Receiver, settings: Any
) -> None:
    from unittest import mock

    from crmsync.tasks import mark_outbox_processed, push_connection

    settings.CRM_PROCESSED_DEBOUNCE = 60
    changes(2)
    with mock.patch.object(mark_outbox_processed, "delay") as queued:
        push_connection(hook.pk)
        push_connection(hook.pk)  # nothing left: nothing to mark
        changes(1)
        push_connection(hook.pk)  # the marks queued before stand for this one too

    queued.assert_called_once_with()
    assert mark_outbox_processed() == 3  # the beat's run, or the queued one
