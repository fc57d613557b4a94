"""Writes shared by every app: the staff audit log, once-per-key job markers and the expiry
of stored Idempotency-Key answers."""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from core.http import client_ip
from core.models import AuditEvent, IdempotencyRecord, JobRun


def audit_record(
    *,
    request: HttpRequest,
    action: str,
    contact: Any = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Log an action of a staff user on personal data (who, what, whose, when, from where)."""
    user = request.user if request.user.is_authenticated else None
    return AuditEvent.objects.create(
        user=user,
        username=user.get_username() if user else "",
        action=action,
        contact=contact,
        contact_public_id=getattr(contact, "public_id", None),
        details=details or {},
        ip=client_ip(request) or None,
    )


def job_run_claim(*, job: str, key: str) -> bool:
    """Claim `job` for `key` (a day, say): True for the first caller only, even concurrently.

    Call it inside the transaction doing the job, so that a failure releases the claim.
    """
    try:
        with transaction.atomic():
            JobRun.objects.create(job=job, key=key)
    except IntegrityError:
        return False
    return True


def idempotency_records_expired(*, now: datetime | None = None) -> Any:
    """The stored answers older than `IDEMPOTENCY_KEY_TTL`: their keys are free again."""
    cutoff = (now or timezone.now()) - settings.IDEMPOTENCY_KEY_TTL
    return IdempotencyRecord.objects.filter(created_at__lt=cutoff)


def idempotency_records_purge(*, now: datetime | None = None) -> int:
    """Delete the expired stored answers (beat job); running it twice deletes nothing more."""
    deleted, _by_model = idempotency_records_expired(now=now).delete()
    return deleted
