"""The outbox events written before the outbox was numbered get their sequence from the
migration, in the order they were written; a connection created afterwards starts after them.

The test migrates crmsync back to before the change, writes events through the model of that
time, then migrates forward to the latest migrations."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.apps.registry import Apps
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from crmsync.connections import connection_create
from crmsync.models import ConnectionState, OutboxEvent

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("crmsync", "0004_outbox_topic_contact_merged")]
WRITTEN_AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def migrate_to_latest() -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    ContentType.objects.clear_cache()


@pytest.fixture
def legacy() -> Iterator[Apps]:
    """The outbox's model before the sequence; the database ends at the latest migrations."""
    state = MigrationExecutor(connection).migrate(BEFORE)
    ContentType.objects.clear_cache()
    try:
        yield state.apps
    finally:
        columns = [
            column.name
            for column in connection.introspection.get_table_description(
                connection.cursor(), "crmsync_outboxevent"
            )
        ]
        if "sequence" not in columns:
            migrate_to_latest()  # a failed test must not leave the next ones on old tables


def test_events_written_before_the_sequence_are_numbered_in_the_order_written(
    legacy: Apps,
) -> None:
    # given: events written in an order their ids do not follow
    old_event = legacy.get_model("crmsync", "OutboxEvent")
    ids = [uuid.UUID(int=n) for n in (9, 3, 7)]
    for minutes, event_id in enumerate(ids):
        old_event.objects.create(
            id=event_id,
            topic="contact.updated",
            contact_public_id=uuid.uuid4(),
            payload={"n": minutes},
            created_at=WRITTEN_AT + timedelta(minutes=minutes),
        )

    # when
    migrate_to_latest()

    # then
    numbered = list(OutboxEvent.objects.order_by("sequence").values_list("id", "sequence"))
    assert numbered == [(ids[0], 1), (ids[1], 2), (ids[2], 3)]
    connection_made = connection_create(
        name="late",
        kind="webhook",
        base_url="https://hooks.example",
        credentials={"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
    )
    assert ConnectionState.objects.get(pk=connection_made.pk).push_cursor == 3
