"""Celery tasks for contacts: thin adapters over the services, safe to run twice."""

from celery import Task, shared_task
from django.db import OperationalError

from contacts.deliverability import deliverability_events_purge
from contacts.imports import (
    BATCH_SIZE,
    contact_import_fail,
    contact_import_run,
    import_uploads_purge,
)


@shared_task(bind=True, max_retries=8)
def run_contact_import(self: Task, contact_import_id: int, batch_size: int = BATCH_SIZE) -> int:
    """Load an import in batches from where it stopped (a redelivered message resumes it).
    A transient database error (deadlock, lost connection) is retried with a growing delay,
    the import resuming at its position; after the last try it is marked failed."""
    try:
        return contact_import_run(
            contact_import_id=contact_import_id, batch_size=batch_size
        ).processed
    except OperationalError as error:
        if self.request.retries >= self.max_retries:
            contact_import_fail(contact_import_id=contact_import_id, error=error)
            raise
        raise self.retry(exc=error, countdown=min(300, 5 * 2**self.request.retries)) from error


@shared_task
def purge_import_uploads() -> int:
    """Delete the admin uploads whose mapping was never chosen (`IMPORT_UPLOAD_TTL`)."""
    return import_uploads_purge()


@shared_task
def purge_deliverability_events() -> int:
    """Forget old provider event ids (`DELIVERABILITY_EVENT_TTL`)."""
    return deliverability_events_purge()
