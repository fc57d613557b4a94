"""Adapters from providers' webhooks to `contacts.deliverability.deliverability_event_apply`.

- django-anymail's tracking webhooks (`/anymail/<esp>/tracking/`, mounted in config/urls.py)
  check the ESP's signature (and the `ANYMAIL_WEBHOOK_SECRET` basic auth), then send
  anymail's `tracking` signal: that signal is the library's public interface, so it is the
  one signal receiver of the project, connected in `ContactsConfig.ready`, and does nothing
  but translate the event and call the domain function.
- Twilio's inbound SMS webhook (`/sms/twilio/inbound/`), signed with the account's auth token
  (`X-Twilio-Signature`): a STOP keyword withdraws SMS for that number.
"""

import base64
import contextlib
import hashlib
import hmac
from typing import Any

from anymail.signals import AnymailTrackingEvent, EventType, RejectReason
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from consent.models import SourceKind
from contacts.deliverability import deliverability_event_apply
from contacts.models import DeliverabilityEventType
from core.sms import twilio_auth_token

# anymail's normalised event types, as our feedback types (the others are not feedback).
ANYMAIL_EVENT_TYPES = {
    EventType.BOUNCED: DeliverabilityEventType.HARD_BOUNCE,
    EventType.DEFERRED: DeliverabilityEventType.SOFT_BOUNCE,
    EventType.COMPLAINED: DeliverabilityEventType.COMPLAINT,
    # an unsubscribe handled by the ESP ends email marketing, as a complaint does
    EventType.UNSUBSCRIBED: DeliverabilityEventType.COMPLAINT,
    EventType.DELIVERED: DeliverabilityEventType.DELIVERED,
}
# A message the ESP refused to send, by its reason: an address known not to work, or one
# that complained; other refusals (policy, a timeout) say nothing about the address.
ANYMAIL_REJECT_REASONS = {
    RejectReason.INVALID: DeliverabilityEventType.HARD_BOUNCE,
    RejectReason.BOUNCED: DeliverabilityEventType.HARD_BOUNCE,
    RejectReason.SPAM: DeliverabilityEventType.COMPLAINT,
    RejectReason.UNSUBSCRIBED: DeliverabilityEventType.COMPLAINT,
}
# The metadata keys the campaign senders set on each message (anymail `metadata`, as
# `campaigns.sending` names them): the campaign's public id and the recipient row's id.
CAMPAIGN_METADATA_KEY = "campaign"
RECIPIENT_METADATA_KEY = "recipient"


def anymail_event_type(event: AnymailTrackingEvent) -> str | None:
    """Our feedback type for an anymail tracking event, or None when it is not feedback."""
    if event.event_type == EventType.REJECTED:
        return ANYMAIL_REJECT_REASONS.get(event.reject_reason or "")
    return ANYMAIL_EVENT_TYPES.get(event.event_type)


def anymail_tracking_received(
    sender: object, event: AnymailTrackingEvent, esp_name: str, **kwargs: Any
) -> None:
    """anymail's `tracking` receiver: the event applied through the one domain function."""
    feedback_type = anymail_event_type(event)
    if feedback_type is None or not event.recipient:
        return
    reason = event.description or event.mta_response or ""
    if event.event_type == EventType.UNSUBSCRIBED:
        reason = reason or "unsubscribed at the ESP"
    metadata = event.metadata or {}
    deliverability_event_apply(
        type=feedback_type,
        email=event.recipient,
        reason=str(reason),
        campaign=str(metadata.get(CAMPAIGN_METADATA_KEY, "")),
        recipient=str(metadata.get(RECIPIENT_METADATA_KEY, "")),
        occurred_at=event.timestamp,
        event_id=f"{esp_name.lower()}:{event.event_id}" if event.event_id else "",
        source_kind=SourceKind.SYSTEM,
    )


# --- Twilio inbound SMS -------------------------------------------------------------------------

# The opt-out keywords Twilio and French operators honour (CNIL, SMS "STOP").
STOP_KEYWORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "arret", "arrêt"}
)


def twilio_signature(*, url: str, params: dict[str, str], auth_token: str) -> str:
    """Twilio's `X-Twilio-Signature`: base64 HMAC-SHA1 of the URL followed by each POST
    parameter's name and value, sorted by name."""
    payload = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@csrf_exempt
@require_POST
def twilio_inbound(request: HttpRequest) -> HttpResponse:
    """An SMS sent to our number: a STOP withdraws SMS marketing for the sender's number."""
    auth_token = twilio_auth_token()
    params = {name: request.POST.get(name, "") for name in request.POST}
    expected = twilio_signature(
        url=settings.SITE_URL + request.get_full_path(), params=params, auth_token=auth_token
    )
    given = request.headers.get("X-Twilio-Signature", "")
    if not auth_token or not hmac.compare_digest(expected, given):
        return HttpResponseForbidden()
    words = params.get("Body", "").strip().lower().split()
    if (words and words[0] in STOP_KEYWORDS) or params.get("OptOutType", "").upper() == "STOP":
        # a sender that is no phone number (a short code) is none of our contacts
        with contextlib.suppress(ValidationError):
            deliverability_event_apply(
                type=DeliverabilityEventType.SMS_STOP,
                phone=params.get("From", ""),
                reason="STOP",
                event_id=f"twilio:{params['MessageSid']}" if params.get("MessageSid") else "",
                source_kind=SourceKind.SYSTEM,
            )
    # an empty TwiML answer: no reply from us (Twilio confirms the opt-out itself)
    return HttpResponse("<Response/>", content_type="text/xml")
