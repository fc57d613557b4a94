"""Celery tasks for contacts: thin adapters over the services, safe to run twice."""

from celery import shared_task

from contacts.imports import BATCH_SIZE, contact_import_run


@shared_task
def run_contact_import(contact_import_id: int, batch_size: int = BATCH_SIZE) -> int:
    """Load an import in batches from where it stopped (a redelivered message resumes it)."""
    return contact_import_run(contact_import_id=contact_import_id, batch_size=batch_size).processed
