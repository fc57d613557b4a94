"""Beat's schedules are defaults from the settings; what the admin changes stays."""

import pytest
from django.conf import settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.celery import app
from core.beat import Scheduler

# django-celery-beat closes the database connection as it starts (close_old_connections),
# which only a test outside a wrapping transaction survives.
pytestmark = pytest.mark.django_db(transaction=True)


def start_beat() -> Scheduler:
    """What `celery beat --scheduler core.beat:Scheduler` does first: set up the schedule."""
    return Scheduler(app=app, lazy=False)


def test_beat_creates_every_job_of_the_settings_on_first_start() -> None:
    start_beat()

    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert set(settings.CELERY_BEAT_SCHEDULE) <= names


def test_a_schedule_changed_in_the_admin_survives_a_restart_of_beat() -> None:
    # given beat started once, then the DPO made end-pauses run every 10 minutes and disabled
    # the reminders
    start_beat()
    every_ten, _created = IntervalSchedule.objects.get_or_create(every=10, period="minutes")
    PeriodicTask.objects.filter(name="end-pauses").update(interval=every_ten, crontab=None)
    PeriodicTask.objects.filter(name="privacy-deadline-reminders").update(enabled=False)

    # when beat restarts
    start_beat()

    # then the admin's schedules stand
    end_pauses = PeriodicTask.objects.get(name="end-pauses")
    assert (end_pauses.interval.every, end_pauses.interval.period) == (10, "minutes")
    assert PeriodicTask.objects.get(name="privacy-deadline-reminders").enabled is False


def test_a_job_deleted_in_the_admin_comes_back_on_restart() -> None:
    # a job the product needs cannot be lost for good: disabling it is how to stop it
    start_beat()
    PeriodicTask.objects.filter(name="apply-retention").delete()

    start_beat()

    assert PeriodicTask.objects.filter(name="apply-retention", enabled=True).exists()


def test_each_pass_of_beat_touches_the_heartbeat_file(settings, tmp_path) -> None:
    settings.BEAT_HEARTBEAT_FILE = str(tmp_path / "beat-heartbeat")
    beat = start_beat()
    PeriodicTask.objects.update(enabled=False)  # nothing is sent anywhere by this pass

    beat.tick()

    assert (tmp_path / "beat-heartbeat").is_file()


def test_no_heartbeat_file_unless_asked(settings, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    beat = start_beat()
    PeriodicTask.objects.update(enabled=False)

    beat.tick()

    assert list(tmp_path.iterdir()) == []
