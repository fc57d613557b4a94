"""The privacy tasks: thin adapters over the services, under the names beat and the queues
knew before the privacy app."""

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from freezegun import freeze_time

from config.celery import app
from privacy.models import PrivacyRequest
from privacy.tasks import (
    carry_out_pending_privacy_requests,
    carry_out_privacy_request,
    purge_privacy_exports,
)
from tests.factories import PrivacyRequestFactory

NOW = datetime(2026, 3, 20, 8, 0, tzinfo=ZoneInfo("Europe/Paris"))

# What the periodic-task table of a database set up before the move holds (beat wrote these
# rows from the settings of that time, and never rewrites an existing row: core/beat.py).
ROWS_OF_AN_EXISTING_DATABASE = {
    "carry-out-pending-privacy-requests": "consent.tasks.carry_out_pending_privacy_requests",
    "privacy-deadline-reminders": "consent.tasks.send_deadline_reminders",
    "purge-privacy-exports": "consent.tasks.purge_privacy_exports",
    "apply-retention": "preferences.tasks.apply_retention",
}


@pytest.fixture
def registered() -> dict:
    app.loader.import_default_modules()  # what a starting worker does: autodiscover the tasks
    return app.tasks


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "task"), ROWS_OF_AN_EXISTING_DATABASE.items())
def test_a_periodic_task_saved_before_the_upgrade_runs_the_privacy_task(
    registered: dict, name: str, task: str
) -> None:
    # given the row an existing database holds
    every_hour, _created = IntervalSchedule.objects.get_or_create(every=1, period="hours")
    PeriodicTask.objects.create(name=name, task=task, interval=every_hour)

    # then the worker knows the task it names, and it is privacy's
    row = PeriodicTask.objects.get(name=name)
    assert registered[row.task].run.__module__ == "privacy.tasks"
    # and a new database gets the same name from the settings
    assert settings.CELERY_BEAT_SCHEDULE[name]["task"] == task


def test_every_job_of_the_schedule_names_a_registered_task(registered: dict) -> None:
    unknown = [
        entry["task"]
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
        if entry["task"] not in registered
    ]

    assert unknown == []


@pytest.fixture
def no_export_left_behind(db: None) -> Iterator[None]:
    yield
    for request in PrivacyRequest.objects.all():
        for export in (request.export_json, request.export_archive):
            if export:
                export.delete(save=False)


@pytest.mark.django_db
@pytest.mark.usefixtures("no_export_left_behind")
def test_the_carry_out_task_carries_out_a_request_once(registered: dict) -> None:
    # a message queued before the upgrade names the task by its consent.* name, as do new ones
    task = registered["consent.tasks.carry_out_privacy_request"]
    assert task.name == carry_out_privacy_request.name
    request = PrivacyRequestFactory(type="restriction", verified=True)

    first = task.apply(args=[str(request.id)])
    second = task.apply(args=[str(request.id)])

    assert (first.get(), second.get()) == (True, False)
    request.refresh_from_db()
    assert request.status == "completed"
    request.contact.refresh_from_db()
    assert request.contact.processing_restricted_at is not None


@pytest.mark.django_db
@pytest.mark.usefixtures("no_export_left_behind")
def test_the_pending_task_and_the_purge_task_call_their_services() -> None:
    # given
    with freeze_time(NOW):
        PrivacyRequestFactory.create_batch(2, verified=True)
        carried_out = carry_out_pending_privacy_requests.apply()

    # when the exports' availability is over
    with freeze_time(NOW + settings.PRIVACY_EXPORT_TTL + timedelta(minutes=1)):
        purged = purge_privacy_exports.apply()

    # then
    assert (carried_out.get(), purged.get()) == (2, 2)
    assert set(PrivacyRequest.objects.values_list("status", "export_json")) == {("completed", "")}
