"""Writes shared by every app: the staff audit log and once-per-key job markers."""

from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest

from core.models import AuditEvent, JobRun


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
        ip=request.META.get("REMOTE_ADDR") or None,
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
