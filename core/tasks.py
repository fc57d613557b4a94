"""Celery tasks of the core app: they call one service."""

from celery import shared_task

from core.services import idempotency_records_purge


@shared_task
def purge_idempotency_keys() -> int:
    """Forget the stored answers of expired Idempotency-Keys (beat job)."""
    return idempotency_records_purge()
