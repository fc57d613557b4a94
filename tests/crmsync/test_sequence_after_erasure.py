"""A sequence number is never given twice: an erasure deletes the person's undelivered events,
which may hold the highest numbers, and the events numbered next must still come after every
cursor (a connection's, the feed's) already past those numbers, or they would be skipped."""

from collections.abc import Callable

import pytest
from django.db import connection as database
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from contacts.models import Contact
from contacts.services import contact_update
from crmsync.connections import connection_create
from crmsync.models import Connection, ConnectionState, OutboxEvent
from crmsync.push import connection_push
from crmsync.services import outbox_emit, outbox_head, outbox_sequence
from privacy.services import contact_erase
from tests.crmsync.receiver import Receiver
from tests.factories import ContactFactory, OutboxEventFactory

FEED = "/api/v1/events/"


def feed_after(reader: APIClient, after: int) -> tuple[list[dict], int]:
    page = reader.get(FEED, {"after": after, "limit": 100}).json()
    return page["results"], int(page["next_cursor"])


@pytest.mark.django_db
def test_events_after_an_erasure_of_the_newest_are_numbered_past_every_cursor(
    hook: Connection, receiver: Receiver, api: Callable[..., APIClient]
) -> None:
    # given: a CRM that is down keeps the events undelivered (so not processed) ...
    connection_create(
        name="down",
        kind="webhook",
        base_url="http://127.0.0.1:9/",
        credentials={"secret": receiver.secret},
    )
    lea, paul = ContactFactory(email="lea@example.fr"), ContactFactory(email="paul@example.fr")
    assert isinstance(lea, Contact) and isinstance(paul, Contact)
    outbox_emit(topic="contact.updated", contact=lea, payload={"city": "Lyon"})
    outbox_emit(topic="contact.updated", contact=paul, payload={"city": "Lille"})
    outbox_emit(topic="contact.updated", contact=paul, payload={"city": "Nantes"})
    # ... while the webhook and a feed reader both read past the three of them
    reader = api(scopes=["events:read"])
    items, feed_cursor = feed_after(reader, 0)
    assert len(items) == 3 and feed_cursor == 3
    assert connection_push(connection_id=hook.pk).delivered == 3
    assert ConnectionState.objects.get(pk=hook.pk).push_cursor == 3

    # when: Paul, whose events hold the two highest numbers, is erased, and Léa changes
    contact_erase(contact=paul, reason="request")
    assert not OutboxEvent.objects.filter(sequence__in=[2, 3]).exists()
    changed = contact_update(contact=lea, fields={"job_title": "Buyer"})
    outbox_sequence()

    # then: the new events come after every number given, and both readers get them
    new = list(OutboxEvent.objects.filter(sequence__isnull=False, sequence__gt=1))
    assert new and min(event.sequence or 0 for event in new) > 3
    items, _cursor = feed_after(reader, feed_cursor)
    topics = [(item["topic"], item["contact"]) for item in items]
    assert ("contact.erased", str(paul.public_id)) in topics
    assert ("contact.updated", str(changed.public_id)) in topics
    before = len(receiver.received_ids())
    assert connection_push(connection_id=hook.pk).delivered == len(items)
    assert receiver.received_ids()[before:] == [item["id"] for item in items]


@pytest.mark.django_db
def test_the_highest_number_given_outlives_the_events_that_held_it() -> None:
    OutboxEventFactory.create_batch(3)
    outbox_sequence()
    OutboxEvent.objects.all().delete()

    # a connection made now starts after the numbers given, not at 0
    assert outbox_head() == 3
    later = OutboxEventFactory()
    assert isinstance(later, OutboxEvent)
    assert outbox_sequence() == 1
    assert OutboxEvent.objects.get(pk=later.pk).sequence == 4


@pytest.mark.django_db
def test_events_numbered_before_the_mark_existed_are_counted() -> None:
    # events numbered by an earlier version, which kept no mark
    OutboxEventFactory(sequence=7)
    assert outbox_head() == 7

    later = OutboxEventFactory()
    assert isinstance(later, OutboxEvent)
    outbox_sequence()

    assert OutboxEvent.objects.get(pk=later.pk).sequence == 8


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_numbering_commits_durably_whatever_the_callers_session_says() -> None:
    OutboxEventFactory()
    with database.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO OFF")
    try:
        with CaptureQueriesContext(database) as queries:
            assert outbox_sequence() == 1
        with database.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            session = cursor.fetchone()[0]
    finally:
        with database.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")

    statements = [query["sql"] for query in queries.captured_queries]
    # on inside the numbering's transaction, before anything else it does ...
    assert statements[:2] == ["BEGIN", "SET LOCAL synchronous_commit TO ON"], statements
    # ... and the caller's choice back once it committed
    assert session == "off"
