"""Pausing, resuming, interests and the objection to profiling: timeline and CRM events."""

import pytest
from dateutil.relativedelta import relativedelta
from django.core.exceptions import ValidationError
from django.utils import timezone
from freezegun import freeze_time

from contacts.models import Contact, ContactStatus
from contacts.services import (
    contact_pause,
    contact_profiling_objection_set,
    contact_resume,
    contact_update,
)
from crmsync.models import OutboxEvent
from tests.factories import ContactFactory, InterestFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def camille(db: None) -> Contact:
    return ContactFactory(email="camille.durand@example.fr")


def outbox_for(contact: Contact) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(contact_public_id=contact.public_id))


@pytest.mark.parametrize("months", [1, 3, 6])
@freeze_time("2026-01-31 08:00:00")
def test_pause_sets_the_end_date_and_is_on_the_timeline_and_the_outbox(
    camille: Contact, months: int
) -> None:
    paused = contact_pause(contact=camille, months=months, source="preference_center")

    end = timezone.now() + relativedelta(months=months)
    assert (paused.status, paused.paused_until) == (ContactStatus.PAUSED, end)
    camille.refresh_from_db()
    assert camille.paused_until == end
    entry = camille.timeline.get(kind="paused")
    assert entry.data == {"paused_until": end.isoformat(), "source": "preference_center"}
    [event] = outbox_for(camille)
    assert event.topic == "contact.updated"
    assert event.payload["changed"] == ["status"]
    assert event.payload["status"] == "paused"
    assert event.payload["paused_until"] == end.isoformat()


@pytest.mark.parametrize("months", [0, 2, 12, -1])
def test_pause_of_another_length_is_refused(camille: Contact, months: int) -> None:
    with pytest.raises(ValidationError) as error:
        contact_pause(contact=camille, months=months)

    assert "months" in error.value.message_dict
    camille.refresh_from_db()
    assert camille.status == ContactStatus.ACTIVE
    assert not camille.timeline.exists() and not outbox_for(camille)


def test_pausing_again_moves_the_end_date(camille: Contact) -> None:
    with freeze_time("2026-01-10"):
        contact_pause(contact=camille, months=1)
    with freeze_time("2026-01-20"):
        contact_pause(contact=camille, months=3)

    camille.refresh_from_db()
    assert camille.paused_until.date().isoformat() == "2026-04-20"


def test_resume_ends_the_pause_with_a_timeline_entry_and_an_outbox_event(
    camille: Contact,
) -> None:
    contact_pause(contact=camille, months=3)

    resumed = contact_resume(contact=camille, source="preference_center")

    assert (resumed.status, resumed.paused_until) == (ContactStatus.ACTIVE, None)
    entry = camille.timeline.get(kind="resumed")
    assert entry.data == {"paused_until": None, "source": "preference_center"}
    assert [e.payload["status"] for e in outbox_for(camille)] == ["paused", "active"]


def test_resume_when_not_paused_does_nothing(camille: Contact) -> None:
    contact_resume(contact=camille)

    camille.refresh_from_db()
    assert camille.status == ContactStatus.ACTIVE
    assert not camille.timeline.exists() and not outbox_for(camille)


def test_an_erased_contact_cannot_be_paused_or_resumed(camille: Contact) -> None:
    Contact.objects.filter(pk=camille.pk).update(status=ContactStatus.ERASED)

    with pytest.raises(ValidationError):
        contact_pause(contact=camille, months=1)
    with pytest.raises(ValidationError):
        contact_resume(contact=camille)


def test_changing_interests_writes_a_timeline_entry_and_an_outbox_event(
    camille: Contact,
) -> None:
    InterestFactory(slug="cycling")
    InterestFactory(slug="hiking")
    camille.interests.add(InterestFactory(slug="sailing"))

    contact_update(contact=camille, interests=["hiking", "cycling"])

    assert sorted(camille.interests.values_list("slug", flat=True)) == ["cycling", "hiking"]
    entry = camille.timeline.get(kind="interests_changed")
    assert entry.summary == "cycling, hiking"
    assert entry.data == {"added": ["cycling", "hiking"], "removed": ["sailing"]}
    [event] = outbox_for(camille)
    assert event.payload["changed"] == ["interests"]
    assert event.payload["interests"] == ["cycling", "hiking"]


def test_clearing_every_interest_is_recorded_too(camille: Contact) -> None:
    camille.interests.add(InterestFactory(slug="sailing"))

    contact_update(contact=camille, interests=[])

    assert not camille.interests.exists()
    entry = camille.timeline.get(kind="interests_changed")
    assert (entry.summary, entry.data["removed"]) == ("-", ["sailing"])


def test_same_interests_again_write_nothing(camille: Contact) -> None:
    camille.interests.add(InterestFactory(slug="sailing"))

    contact_update(contact=camille, interests=["sailing"])

    assert not camille.timeline.exists() and not outbox_for(camille)


def test_unknown_interest_is_refused_and_nothing_changes(camille: Contact) -> None:
    camille.interests.add(InterestFactory(slug="sailing"))

    with pytest.raises(ValidationError) as error:
        contact_update(contact=camille, interests=["sailing", "gambling"])

    assert "gambling" in error.value.message_dict["interests"][0]
    assert list(camille.interests.values_list("slug", flat=True)) == ["sailing"]
    assert not camille.timeline.exists()


def test_profiling_objection_is_recorded_once_and_can_be_lifted(camille: Contact) -> None:
    assert contact_profiling_objection_set(contact=camille, objected=True, source="center")
    assert not contact_profiling_objection_set(contact=camille, objected=True, source="center")

    camille.refresh_from_db()
    assert camille.profiling_objected_at is not None
    assert contact_profiling_objection_set(contact=camille, objected=False)
    camille.refresh_from_db()
    assert camille.profiling_objected_at is None
    entries = camille.timeline.filter(kind="profiling_objection").order_by("id")
    assert [e.data["objected"] for e in entries] == [True, False]
    assert [e.payload["objected_to_profiling"] for e in outbox_for(camille)] == [True, False]
