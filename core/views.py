"""`/health/`: is the database reachable, the broker up, a worker answering."""

import math
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.celery import app as celery_app

CACHE_PREFIX = "health:"
# How long the last answer of a check is kept to answer while another process re-checks.
LAST_ANSWER_SECONDS = 3600
CHECKING = "unknown: being checked, no answer yet"


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _check_broker() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "ok (tasks run in-process)"
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=settings.HEALTH_WORKER_TIMEOUT)
    return "ok"


def _check_worker() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "ok (tasks run in-process)"
    replies = celery_app.control.ping(timeout=settings.HEALTH_WORKER_TIMEOUT)
    if not replies:
        raise RuntimeError("no worker answered")
    return f"ok ({len(replies)} worker{'s' if len(replies) > 1 else ''})"


def _run(check: Callable[[], str]) -> str:
    try:
        return check()
    except Exception as error:  # noqa: BLE001 - any failure is a degraded check
        return f"error: {type(error).__name__}: {error}"[:300]


def _check_celery() -> dict[str, str]:
    return {"broker": _run(_check_broker), "worker": _run(_check_worker)}


def _shared(name: str, check: Callable[[], dict[str, str]]) -> dict[str, str]:
    """The checks' answer of the last few seconds; only one process at a time runs them.

    Pinging the workers waits up to `HEALTH_WORKER_TIMEOUT`: run on every call, a burst of
    probes would hold every web worker. The others answer the last known result meanwhile.
    """
    fresh_key, last_key, lock_key = (
        f"{CACHE_PREFIX}{name}{suffix}" for suffix in ("", ":last", ":lock")
    )
    answer = cache.get(fresh_key)
    if answer is not None:
        return answer
    # the lock outlives a check that hangs past its timeouts, never for long
    if not cache.add(lock_key, True, timeout=math.ceil(2 * settings.HEALTH_WORKER_TIMEOUT) + 5):
        return cache.get(last_key) or {"broker": CHECKING, "worker": CHECKING}
    try:
        answer = check()
        cache.set(fresh_key, answer, timeout=settings.HEALTH_CACHE_SECONDS)
        cache.set(last_key, answer, timeout=LAST_ANSWER_SECONDS)
    finally:
        cache.delete(lock_key)
    return answer


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """JSON for load balancers and operators; 503 when anything is degraded."""
    checks = {"database": _run(_check_database), **_shared("celery", _check_celery)}
    healthy = all(value.startswith("ok") for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "degraded", "checks": checks},
        status=200 if healthy else 503,
    )
