"""Celery tasks of CRM sync: thin adapters over `crmsync.push` and `crmsync.pull`."""

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from core.tasks import RETRY_ON_NETWORK_ERRORS
from crmsync.alerts import sales_alerts_scan, sales_alerts_send
from crmsync.models import Connection
from crmsync.pull import connection_pull, connections_due_for_pull
from crmsync.push import connection_push, outbox_mark_processed
from crmsync.services import push_started

# The cache key that stands for "the processed marks are queued and have not started".
PROCESSED_QUEUED_KEY = "crmsync:processed-queued"


@shared_task(**RETRY_ON_NETWORK_ERRORS)
def push_connection(connection_id: int) -> int:
    """Push one connection's waiting outbox events (queued after each commit that wrote some,
    and by the safety net); queues itself again for the next attempt after a failure, or at
    once when it stopped at its time budget. Answers how many events were delivered."""
    push_started(connection_id=connection_id)
    outcome = connection_push(connection_id=connection_id)
    if outcome.delivered or outcome.rejected or outcome.parked:
        processed_soon()
    if outcome.more:
        push_connection.delay(connection_id)
    elif outcome.retry_in is not None:
        # a longer Retry-After is kept by the claim's backoff: the safety net comes back then
        countdown = min(outcome.retry_in, settings.CRM_PUSH_BACKOFF_CAP)
        push_connection.apply_async((connection_id,), countdown=countdown)
    return outcome.delivered


def processed_soon() -> None:
    """Queue the processed marks, unless they are queued and not started yet."""
    debounce = settings.CRM_PROCESSED_DEBOUNCE
    if debounce <= 0 or cache.add(PROCESSED_QUEUED_KEY, 1, debounce):
        mark_outbox_processed.delay()


@shared_task
def mark_outbox_processed() -> int:
    """Mark processed the events every enabled connection has received (after the pushes
    that moved a cursor, and every minute by beat). Answers how many were marked."""
    cache.delete(PROCESSED_QUEUED_KEY)
    return outbox_mark_processed()


@shared_task
def push_connections() -> int:
    """Queue a push of every enabled connection (beat, every minute): the safety net behind
    the push each commit queues. Answers how many were queued."""
    connection_ids = list(Connection.objects.filter(enabled=True).values_list("pk", flat=True))
    for connection_id in connection_ids:
        push_connection.delay(connection_id)
    return len(connection_ids)


@shared_task
def pull_connection(connection_id: int, again_if_busy: bool = False) -> int:
    """Pull one connection's CRM changes since its cursor (a second pull at once does
    nothing). `again_if_busy`: a change notification's pull, which comes back a little later
    when another pull was at work (that one may have read before the change). Answers how
    many records were fetched."""
    outcome = connection_pull(connection_id=connection_id)
    # (not when tasks run in the caller: it would come back at once, again and again)
    if outcome.busy and again_if_busy and not pull_connection.app.conf.task_always_eager:
        pull_connection.apply_async(
            (connection_id,), kwargs={"again_if_busy": True}, countdown=settings.CRM_PULL_BUSY_RETRY
        )
    return outcome.fetched


@shared_task
def pull_connections() -> int:
    """Queue a pull of every enabled CRM connection whose pull interval has passed (beat,
    every minute). Answers how many were queued."""
    connection_ids = connections_due_for_pull()
    for connection_id in connection_ids:
        pull_connection.delay(connection_id)
    return len(connection_ids)


@shared_task
def scan_sales_alerts() -> int:
    """Record the sales alerts due for the stages reached since the last scan and queue
    their emails (beat job, every minute). Answers how many were recorded."""
    return len(sales_alerts_scan())


@shared_task(**RETRY_ON_NETWORK_ERRORS)
def send_sales_alerts(delivery_ids: list[int]) -> int:
    """Email these sales alerts, each once (queued after the scan that recorded them)."""
    return sales_alerts_send(delivery_ids=delivery_ids)
