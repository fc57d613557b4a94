"""`/health/`: is the database reachable, the broker up, a worker answering."""

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.celery import app as celery_app


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


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """JSON for load balancers and operators; 503 when anything is degraded."""
    checks = {}
    for name, check in (
        ("database", _check_database),
        ("broker", _check_broker),
        ("worker", _check_worker),
    ):
        try:
            checks[name] = check()
        except Exception as error:  # noqa: BLE001 - any failure is a degraded check
            checks[name] = f"error: {type(error).__name__}: {error}"[:300]
    healthy = all(value.startswith("ok") for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "degraded", "checks": checks},
        status=200 if healthy else 503,
    )
