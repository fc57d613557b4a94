"""A privacy request's status change and its history entry: one home, for the request
services and the CRM acknowledgements that complete an erasure."""

from django.utils import timezone

from privacy.models import PrivacyRequest, PrivacyRequestEvent, PrivacyRequestStatus


def request_status_set(
    request: PrivacyRequest, status: str, *, by: str, note: str = ""
) -> PrivacyRequestEvent:
    """Set the request's status, in the caller's transaction, with its history entry."""
    now = timezone.now()
    request.status = status
    request.handled_by = by or request.handled_by
    fields = ["status", "handled_by"]
    if status == PrivacyRequestStatus.COMPLETED:
        request.completed_at = now
        fields.append("completed_at")
    request.save(update_fields=fields)
    return PrivacyRequestEvent.objects.create(
        request=request, status=status, at=now, by=by, note=note
    )
