"""The beat jobs of contacts and consent (end pauses, expire pending double opt-ins), and
every lifecycle job's place in beat's schedule. The privacy jobs: tests/privacy/.

Every job must have the effect of one run when beat fires it twice, or when two workers run
it at the same time on PostgreSQL.
"""

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from freezegun import freeze_time

from config.celery import app
from consent.tasks import end_pauses, expire_pending_grants
from contacts.models import Contact, TimelineEvent
from contacts.services import contact_pause, pauses_end
from privacy.services import privacy_request_carry_out
from tests.consent.concurrency import run_concurrently
from tests.factories import ContactFactory, PrivacyRequestFactory, PurposeFactory, grant

PARIS = ZoneInfo("Europe/Paris")


def paused_at(moment: str, months: int = 1, **fields: Any) -> Contact:
    with freeze_time(moment):
        return contact_pause(contact=ContactFactory(**fields), months=months, source="center")


def resumed_events(contact: Contact) -> int:
    return TimelineEvent.objects.filter(contact=contact, kind="resumed").count()


# --- end pauses -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_only_pauses_that_are_over_are_ended() -> None:
    # given
    over = paused_at("2026-01-10T09:00:00+01:00")  # until 10 February
    running = paused_at("2026-01-20T09:00:00+01:00")  # until 20 February
    active = ContactFactory()

    # when
    with freeze_time("2026-02-15T09:00:00+01:00"):
        resumed = pauses_end()

    # then
    assert resumed == 1
    over.refresh_from_db()
    running.refresh_from_db()
    active.refresh_from_db()
    assert (over.status, over.paused_until) == ("active", None)
    assert (running.status, running.paused_until) == (
        "paused",
        datetime(2026, 2, 20, 9, tzinfo=PARIS),
    )
    assert active.status == "active"
    event = TimelineEvent.objects.get(contact=over, kind="resumed")
    assert event.data["source"] == "end_pauses"
    assert (resumed_events(running), resumed_events(active)) == (0, 0)


@pytest.mark.django_db
def test_a_pause_ends_at_its_last_minute_not_before() -> None:
    contact = paused_at("2026-01-10T09:00:00+01:00")

    with freeze_time("2026-02-10T08:59:00+01:00"):
        before = pauses_end()
    with freeze_time("2026-02-10T09:00:00+01:00"):
        at_the_end = pauses_end()

    assert (before, at_the_end) == (0, 1)
    contact.refresh_from_db()
    assert contact.status == "active"


@pytest.mark.django_db
def test_ending_pauses_twice_ends_each_once() -> None:
    # given
    contacts = [paused_at("2026-01-10T09:00:00+01:00") for _ in range(3)]

    # when
    with freeze_time("2026-02-15T09:00:00+01:00"):
        first, second = pauses_end(), pauses_end()

    # then
    assert (first, second) == (3, 0)
    assert [resumed_events(contact) for contact in contacts] == [1, 1, 1]


@pytest.mark.django_db
def test_ending_pauses_goes_through_every_batch() -> None:
    contacts = [paused_at("2026-01-10T09:00:00+01:00") for _ in range(5)]

    with freeze_time("2026-02-15T09:00:00+01:00"):
        resumed = pauses_end(batch_size=2)

    assert resumed == 5
    assert set(Contact.objects.filter(pk__in=[c.pk for c in contacts]).values_list("status")) == {
        ("active",)
    }


@pytest.mark.postgres
def test_two_runs_at_the_same_time_end_each_pause_once(transactional_db: None) -> None:
    # given
    until = datetime(2026, 2, 10, 9, tzinfo=PARIS)
    contacts = [ContactFactory(status="paused", paused_until=until) for _ in range(8)]

    # when
    counts = run_concurrently(lambda: pauses_end(now=until + timedelta(days=1)), times=2)

    # then
    assert sum(counts) == 8
    assert [resumed_events(contact) for contact in contacts] == [1] * 8
    assert set(Contact.objects.values_list("status", flat=True)) == {"active"}


# --- the beat schedule and the tasks ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("end-pauses", "consent.tasks.end_pauses"),
        ("expire-pending-double-opt-ins", "consent.tasks.expire_pending_grants"),
        ("privacy-deadline-reminders", "consent.tasks.send_deadline_reminders"),
        ("carry-out-pending-privacy-requests", "consent.tasks.carry_out_pending_privacy_requests"),
        ("purge-privacy-exports", "consent.tasks.purge_privacy_exports"),
        ("purge-idempotency-keys", "core.tasks.purge_idempotency_keys"),
    ],
)
def test_beat_runs_each_lifecycle_job(name: str, task: str) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE[name]
    app.loader.import_default_modules()  # what a starting worker does: autodiscover the tasks

    assert entry["task"] == task
    assert task in app.tasks


@pytest.mark.django_db
def test_the_end_pauses_task_resumes_contacts() -> None:
    contact = paused_at("2026-01-10T09:00:00+01:00")

    with freeze_time("2026-02-15T09:00:00+01:00"):
        result = end_pauses.apply()

    assert result.get() == 1
    contact.refresh_from_db()
    assert contact.status == "active"


@pytest.mark.django_db
def test_the_expiry_task_expires_pending_double_opt_ins() -> None:
    purpose = PurposeFactory(double_opt_in=True)
    with freeze_time("2026-03-01T10:00:00+01:00"):
        grant(ContactFactory(), purpose)

    with freeze_time(datetime(2026, 3, 1, 10, tzinfo=PARIS) + settings.DOUBLE_OPT_IN_TTL * 2):
        result = expire_pending_grants.apply()

    assert result.get() == 1


@pytest.mark.django_db
def test_an_erased_contact_is_not_resumed_by_end_pauses() -> None:
    # given a paused person erased before the end of their pause
    contact = paused_at("2026-01-10T09:00:00+01:00")
    request = PrivacyRequestFactory(contact=contact, type="erasure", verified=True)
    privacy_request_carry_out(request_id=str(request.id))

    # when
    with freeze_time("2026-02-15T09:00:00+01:00"):
        resumed = pauses_end()

    # then
    assert resumed == 0
    contact.refresh_from_db()
    assert (contact.status, contact.paused_until) == ("erased", None)
