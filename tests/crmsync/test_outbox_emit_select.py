"""`outbox_emit_select`: outbox events the database writes itself (an import's new contacts on
PostgreSQL) are the events `outbox_emit_many` would queue: the topic, the contact, the
payload (with the connection a pulled change came from), in order a microsecond apart."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from contacts.models import Contact
from contacts.services import contact_payload, contact_payload_sql
from crmsync.models import OutboxEvent, OutboxTopic
from crmsync.services import ORIGIN_KEY, outbox_emit_select, outbox_origin
from tests.factories import ContactFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _emit(contacts: list[Contact]) -> None:
    start = timezone.now()
    statement, params = outbox_emit_select(
        topic=OutboxTopic.CONTACT_CREATED,
        source="picked",
        public_id="picked.public_id",
        payload=contact_payload_sql("picked"),
        order="picked.id",
        start=start,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH picked AS (SELECT * FROM {Contact._meta.db_table} "  # noqa: S608
            f"WHERE id = ANY(%s)) {statement}",
            [[c.pk for c in contacts], *params],
        )


def test_the_database_queues_one_event_per_row_in_order() -> None:
    contacts = [ContactFactory(city="Lyon") for _n in range(3)]

    _emit(contacts)

    events = list(OutboxEvent.objects.order_by("created_at"))
    assert [e.contact_public_id for e in events] == [c.public_id for c in contacts]
    assert {e.topic for e in events} == {OutboxTopic.CONTACT_CREATED}
    assert [e.payload for e in events] == [contact_payload(c) for c in contacts]
    steps = {b.created_at - a.created_at for a, b in zip(events, events[1:], strict=False)}
    assert steps == {timedelta(microseconds=1)}
    assert len({e.pk for e in events}) == 3 and all(e.sequence is None for e in events)


def test_a_pulled_change_names_its_connection_in_the_payload() -> None:
    contact = ContactFactory()

    with outbox_origin(7):
        _emit([contact])

    (event,) = OutboxEvent.objects.all()
    assert event.payload == {**contact_payload(contact), ORIGIN_KEY: 7}


def test_an_unknown_topic_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown outbox topic"):
        outbox_emit_select(
            topic="contact.teleported",
            source="c",
            public_id="c.public_id",
            payload="'{}'::jsonb",
            order="c.id",
            start=timezone.now(),
        )
