"""When pushes are queued: once per committed transaction that wrote events (not per event,
nor for a rolled-back one), not again while one is queued and not started, by the safety net
for every enabled connection, and after a failure at the time the CRM asked for."""

from typing import Any
from unittest import mock

import pytest
from django.db import transaction

from crmsync.connections import connection_create
from crmsync.models import Connection
from crmsync.services import outbox_emit, push_started
from crmsync.tasks import push_connection, push_connections
from tests.crmsync.receiver import Receiver
from tests.factories import ContactFactory
from tests.queued import held_back

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_transaction_writing_many_events_queues_one_push_per_connection(
    hook: Connection,
) -> None:
    contact = ContactFactory()

    with held_back(push_connection) as queued, transaction.atomic():
        for number in range(3):
            outbox_emit(topic="contact.updated", contact=contact, payload={"n": number})
        assert queued == []  # nothing before the commit

    assert queued == [(hook.pk,)]


def test_a_rolled_back_transaction_queues_nothing(hook: Connection) -> None:
    contact = ContactFactory()

    with (
        held_back(push_connection) as queued,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        outbox_emit(topic="contact.updated", contact=contact, payload={})
        raise RuntimeError("the change failed")

    assert queued == []


def test_a_push_queued_and_not_started_stands_for_the_next_commits(
    hook: Connection, settings: Any
) -> None:
    settings.CRM_PUSH_DEBOUNCE = 2  # as with Redis, the cache the web and workers share
    contact = ContactFactory()

    with held_back(push_connection) as queued:
        outbox_emit(topic="contact.updated", contact=contact, payload={"n": 1})
        outbox_emit(topic="contact.updated", contact=contact, payload={"n": 2})
        assert queued == [(hook.pk,)]
        push_started(connection_id=hook.pk)  # the worker took it: the next commit queues again
        outbox_emit(topic="contact.updated", contact=contact, payload={"n": 3})

    assert queued == [(hook.pk,), (hook.pk,)]


def test_without_a_shared_cache_every_commit_queues_its_push(
    hook: Connection, settings: Any
) -> None:
    settings.CRM_PUSH_DEBOUNCE = 0  # the embedded default: each process has its own cache
    contact = ContactFactory()

    with held_back(push_connection) as queued:
        outbox_emit(topic="contact.updated", contact=contact, payload={"n": 1})
        outbox_emit(topic="contact.updated", contact=contact, payload={"n": 2})

    assert queued == [(hook.pk,), (hook.pk,)]


def test_the_safety_net_queues_a_push_of_every_enabled_connection(
    hook: Connection, receiver: Receiver
) -> None:
    connection_create(
        name="off",
        kind="webhook",
        base_url=receiver.url,
        credentials={"secret": receiver.secret},
        enabled=False,
    )

    with held_back(push_connection) as queued:
        assert push_connections() == 1

    assert queued == [(hook.pk,)]


def test_after_a_429_the_push_task_comes_back_when_the_crm_said(
    hook: Connection, receiver: Receiver
) -> None:
    with held_back(push_connection):
        outbox_emit(topic="contact.updated", contact=ContactFactory(), payload={})
    receiver.fail_next(1, status=429, retry_after="7")

    with mock.patch.object(push_connection, "apply_async") as later:
        push_connection(hook.pk)

    later.assert_called_once_with((hook.pk,), countdown=7.0)
