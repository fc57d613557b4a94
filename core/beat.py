"""Celery beat's scheduler: django-celery-beat's, with the schedules in settings as defaults.

django-celery-beat writes every entry of `CELERY_BEAT_SCHEDULE` over the database rows each
time beat starts, undoing what was changed under *Periodic tasks* in the admin. Here an entry
is only created when no row of that name exists: after that, the admin's row is the schedule.
With `BEAT_HEARTBEAT_FILE` set, each pass of beat's loop touches that file: a stale file means
beat is stuck or gone (docker-compose.yml's health check reads its age).
"""

from pathlib import Path
from typing import Any

from django.conf import settings
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler


class Scheduler(DatabaseScheduler):
    def update_from_dict(self, mapping: dict[str, Any]) -> None:
        existing = set(
            PeriodicTask.objects.filter(name__in=list(mapping)).values_list("name", flat=True)
        )
        missing = {name: entry for name, entry in mapping.items() if name not in existing}
        super().update_from_dict(missing)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Run due jobs, then touch the heartbeat file (docker-compose's health check of beat)."""
        delay = super().tick(*args, **kwargs)
        if settings.BEAT_HEARTBEAT_FILE:
            Path(settings.BEAT_HEARTBEAT_FILE).touch()
        return delay
