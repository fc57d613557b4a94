"""The CRMs' change notifications (`/crm/notify/<id>/`): machine endpoints, authenticated by
the CRM's signature or URL token instead of a session, an API token or a CSRF token
(`crmsync.notifications`)."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from crmsync.notifications import (
    MAX_BODY_BYTES,
    NotificationRefused,
    NotificationRequest,
    notification_receive,
)


@csrf_exempt
@require_POST
def change_notification(request: HttpRequest, connection_id: int, token: str = "") -> HttpResponse:
    """A HubSpot webhook or a Salesforce outbound message: verified, then a pull is queued."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return HttpResponse(status=400)
    if declared > MAX_BODY_BYTES:  # refused before the body is read
        return HttpResponse(status=413)
    notification = NotificationRequest(
        method=request.method or "POST",
        # the URL as the CRM called it: the public address, as the Twilio webhook signs it
        uri=settings.SITE_URL + request.get_full_path(),
        headers=request.headers,
        body=request.body,
        token=token,
    )
    try:
        answer = notification_receive(connection_id=connection_id, request=notification)
    except NotificationRefused as refusal:
        return HttpResponse(status=refusal.status)
    return HttpResponse(answer.body, status=answer.status, content_type=answer.content_type)
