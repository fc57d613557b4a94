"""The outbox speaks a closed vocabulary: every topic written is an OutboxTopic, and every
OutboxTopic is written by some path (the CRMs and the event feed are built on that list)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from contacts.services import contact_update, contact_upsert
from crmsync.models import OutboxEvent, OutboxTopic
from crmsync.services import outbox_emit
from preferences.services import Visit, preferences_unsubscribe_all
from privacy.merge import contact_merge
from privacy.services import contact_erase
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db


def topics_written() -> set[str]:
    return set(OutboxEvent.objects.values_list("topic", flat=True))


def test_every_topic_is_written_by_a_path_of_the_code_base() -> None:
    newsletter = PurposeFactory(slug="newsletter", channels=["email", "sms"])
    # contact.created, then contact.updated
    contact, _created = contact_upsert(email="camille@example.fr")
    contact_update(contact=contact, fields={"city": "Lyon"})
    # consent.recorded, then consent.superseded: a grant older than the withdrawal behind the
    # state is kept but changes nothing
    grant(contact, newsletter, action="withdraw")
    grant(contact, newsletter, given_at=timezone.now() - timedelta(days=1))
    # contact.unsubscribed
    preferences_unsubscribe_all(contact=contact, visit=Visit())
    # contact.erased (erasure drops the person's queued events: someone else)
    contact_erase(contact=ContactFactory(), reason="request")
    # contact.merged
    contact_merge(survivor=contact, merged=ContactFactory(), actor="dpo")

    assert topics_written() == set(OutboxTopic.values)


def test_the_topic_column_offers_every_topic() -> None:
    field = OutboxEvent._meta.get_field("topic")

    assert [value for value, _label in field.choices] == OutboxTopic.values
    assert max(len(topic) for topic in OutboxTopic.values) <= field.max_length


def test_an_unknown_topic_is_refused_and_writes_nothing() -> None:
    contact = ContactFactory()

    with pytest.raises(ValueError, match="contact.deleted"):
        outbox_emit(topic="contact.deleted", contact=contact, payload={})  # type: ignore[arg-type]

    assert not OutboxEvent.objects.exists()


def test_a_topic_given_as_its_value_is_accepted_and_stored_as_the_topic() -> None:
    contact = ContactFactory()

    event = outbox_emit(topic=OutboxTopic.CONTACT_UPDATED, contact=contact, payload={})

    event.refresh_from_db()
    assert event.topic == OutboxTopic.CONTACT_UPDATED == "contact.updated"
