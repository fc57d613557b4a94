"""Celery tasks of the core app: they call one service."""

from celery import shared_task

from core.dashboard import dashboard_figures_refresh
from core.services import idempotency_records_purge

# Tasks that send email or reach another server: a network error (OSError, which SMTP and
# socket errors are) is retried with a growing delay, five times at the most.
RETRY_ON_NETWORK_ERRORS = {"autoretry_for": (OSError,), "retry_backoff": True, "max_retries": 5}


@shared_task
def purge_idempotency_keys() -> int:
    """Forget the stored answers of expired Idempotency-Keys (beat job)."""
    return idempotency_records_purge()


@shared_task
def refresh_dashboards() -> list[str]:
    """Count the admin home's dashboard figures and keep them for its requests (beat job,
    every few minutes): answers the dashboards counted."""
    return dashboard_figures_refresh()
