"""The privacy tasks answer to the names beat and the queues knew before the privacy app."""

import pytest
from django.conf import settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.celery import app
from privacy.services import privacy_request_file
from tests.factories import ContactFactory

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


@pytest.mark.django_db
def test_a_carry_out_message_queued_before_the_upgrade_is_carried_out(registered: dict) -> None:
    # given a request whose carry-out was queued by the previous version, under its task name
    contact = ContactFactory()
    request = privacy_request_file(
        contact=contact, type="restriction", source_kind="api", verified=True
    )

    # when a worker of this version takes the message
    result = registered["consent.tasks.carry_out_privacy_request"].apply(args=[str(request.pk)])

    # then the request is carried out
    assert result.get() is True
    request.refresh_from_db()
    contact.refresh_from_db()
    assert request.status == "completed"
    assert contact.processing_restricted_at is not None
