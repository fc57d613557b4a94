"""Celery beat's scheduler: django-celery-beat's, with the schedules in settings as defaults.

django-celery-beat writes every entry of `CELERY_BEAT_SCHEDULE` over the database rows each
time beat starts, undoing what was changed under *Periodic tasks* in the admin. Here an entry
is only created when no row of that name exists: after that, the admin's row is the schedule.
"""

from typing import Any

from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler


class Scheduler(DatabaseScheduler):
    def update_from_dict(self, mapping: dict[str, Any]) -> None:
        existing = set(
            PeriodicTask.objects.filter(name__in=list(mapping)).values_list("name", flat=True)
        )
        missing = {name: entry for name, entry in mapping.items() if name not in existing}
        super().update_from_dict(missing)
