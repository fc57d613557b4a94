"""Change notifications from the CRMs: HubSpot's webhooks (signature v3) and Salesforce's
outbound messages, received at one URL per connection (`/crm/notify/<id>/`), so that a change
made in the CRM arrives within seconds instead of at the next periodic pull.

A verified notification only says "something changed": nothing in its body is trusted or
applied. It queues a pull of the connection (`crmsync.pull`), which reads the changes through
the CRM's API from its own cursor, exactly as the periodic pull does, with every rule of the
pull (dedupe, conflict rules, consent times, no re-created erased person). A notification that
is lost or refused therefore loses nothing either: the periodic pull stays the safety net.

- HubSpot signs with the app's client secret (the connection's credential `secret`):
  `X-HubSpot-Signature-v3` is base64(HMAC-SHA256(secret, method + URI + body + timestamp)),
  the URI being the full URL HubSpot called with the characters its documentation lists
  decoded, and `X-HubSpot-Request-Timestamp` (milliseconds) no older than five minutes.
- Salesforce's outbound messages carry no signature: the URL holds a secret token (the
  connection's credential `secret`, `/crm/notify/<id>/<token>/`) and the message names the
  organisation, which must be the connection's (`options["organization_id"]`). Salesforce
  resends a message until it gets the SOAP acknowledgement.
"""

import base64
import hashlib
import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from xml.etree import ElementTree
from xml.parsers import expat

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from crmsync.connections import connection_credentials
from crmsync.models import Connection, ConnectionKind, ConnectionState
from crmsync.tasks import pull_connection

logger = logging.getLogger(__name__)

NOTIFIED_KINDS = (ConnectionKind.HUBSPOT, ConnectionKind.SALESFORCE)
# Far above what either CRM sends (HubSpot: up to 100 small JSON events; Salesforce: up to 100
# notifications of a few fields): a bigger body is refused before it is read.
MAX_BODY_BYTES = 1_000_000
# HubSpot's replay window for signature v3.
HUBSPOT_MAX_AGE_SECONDS = 300
HUBSPOT_SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
HUBSPOT_TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
# The percent-escapes HubSpot decodes in the URI before signing it (v3), and only those.
HUBSPOT_DECODED_ESCAPES = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)
# A Salesforce URL token shorter than this is not accepted as one: it could be guessed.
MIN_URL_TOKEN_LENGTH = 20
# The cache key standing for "a pull of this connection is queued and has not started yet".
PULL_QUEUED_KEY = "crmsync:notified-pull-queued:{}"
# How long after a notification its pull starts: the notifications of that window share the
# pull, which starts after the last of them, so it reads every change they announced.
NOTIFIED_PULL_DELAY_SECONDS = 2

SOAP_ENVELOPE = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_MESSAGES = "http://soap.sforce.com/2005/09/outbound"
# The acknowledgement of Salesforce's outbound messaging WSDL (`notificationsResponse`).
SALESFORCE_ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENVELOPE}">'
    "<soapenv:Body>"
    f'<notificationsResponse xmlns="{OUTBOUND_MESSAGES}"><Ack>true</Ack></notificationsResponse>'
    "</soapenv:Body>"
    "</soapenv:Envelope>"
)


class NotificationRefused(Exception):
    """A notification not accepted: the HTTP status to answer, and why (for the log only)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class NotificationRequest:
    """A notification as it reached us: `uri` is the full URL the CRM called."""

    method: str
    uri: str
    headers: Mapping[str, str]
    body: bytes
    token: str = ""


@dataclass(frozen=True)
class NotificationAnswer:
    """What the CRM is answered when its notification is accepted."""

    status: int
    body: str = ""
    content_type: str = "text/plain"


def notification_receive(
    *, connection_id: int, request: NotificationRequest, now: datetime | None = None
) -> NotificationAnswer:
    """Verify a CRM's change notification, record its time and queue a pull of the connection
    (one for a burst of notifications). Raises `NotificationRefused` for anything unverified,
    which records and queues nothing."""
    now = now or timezone.now()
    try:
        connection = _notified_connection(connection_id)
        if len(request.body) > MAX_BODY_BYTES:
            raise NotificationRefused(413, "body too large")
        if connection.kind == ConnectionKind.HUBSPOT:
            hubspot_notification_verify(connection=connection, request=request, now=now)
            answer = NotificationAnswer(status=204)
        else:
            salesforce_notification_verify(connection=connection, request=request)
            answer = NotificationAnswer(200, SALESFORCE_ACK, "text/xml; charset=utf-8")
    except NotificationRefused as refusal:
        logger.warning(
            "CRM connection %s: change notification refused (%s)", connection_id, refusal.reason
        )
        raise
    notification_record(connection_id=connection.pk, at=now)
    transaction.on_commit(lambda: pull_soon(connection_id=connection.pk))
    return answer


def _notified_connection(connection_id: int) -> Connection:
    """The enabled HubSpot or Salesforce connection, with what verifies its notifications;
    any other is unknown here (404)."""
    connection = Connection.objects.filter(
        pk=connection_id, enabled=True, kind__in=NOTIFIED_KINDS
    ).first()
    if connection is None:
        raise NotificationRefused(404, "no enabled CRM connection with this id")
    problem = notifications_setup_problem(connection)
    if problem:
        raise NotificationRefused(404, problem)
    return connection


def notifications_setup_problem(connection: Connection) -> str:
    """Why the connection cannot verify change notifications yet ("" when it can)."""
    secret = connection_credentials(connection).get("secret", "")
    if connection.kind == ConnectionKind.HUBSPOT:
        return "" if secret else _("give the HubSpot app's client secret as its signing secret")
    if connection.kind == ConnectionKind.SALESFORCE:
        if len(secret) < MIN_URL_TOKEN_LENGTH:
            return _("give a signing secret of %(count)d characters or more, the URL's token") % {
                "count": MIN_URL_TOKEN_LENGTH
            }
        if not str(connection.options.get("organization_id") or "").strip():
            return _("give the Salesforce organization id as the option organization_id")
        return ""
    return _("this kind of connection receives no change notifications")


def hubspot_signature_v3(*, secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot's `X-HubSpot-Signature-v3` of a request: base64 of the HMAC-SHA256, under the
    app's client secret, of method + URI (its listed escapes decoded) + body + timestamp."""
    decoded_uri = HUBSPOT_DECODED_ESCAPES.sub(lambda match: chr(int(match[1], 16)), uri)
    source = method.encode() + decoded_uri.encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), source, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def hubspot_notification_verify(
    *, connection: Connection, request: NotificationRequest, now: datetime
) -> None:
    """Check a HubSpot webhook's v3 signature and its age (a replay after five minutes is
    refused); raises `NotificationRefused` (401)."""
    signature = request.headers.get(HUBSPOT_SIGNATURE_HEADER, "")
    timestamp = request.headers.get(HUBSPOT_TIMESTAMP_HEADER, "")
    if not signature or not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) < 16):
        raise NotificationRefused(401, "no HubSpot v3 signature or timestamp")
    age = now.timestamp() - int(timestamp) / 1000
    if abs(age) > HUBSPOT_MAX_AGE_SECONDS:
        raise NotificationRefused(401, f"HubSpot timestamp {int(age)} s away from now")
    expected = hubspot_signature_v3(
        secret=connection_credentials(connection)["secret"],
        method=request.method,
        uri=request.uri,
        body=request.body,
        timestamp=timestamp,
    )
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise NotificationRefused(401, "wrong HubSpot signature")


def salesforce_notification_verify(*, connection: Connection, request: NotificationRequest) -> None:
    """Check a Salesforce outbound message: the URL's token (403), a well-formed SOAP
    `notifications` message (400) from the connection's organisation (403)."""
    token = connection_credentials(connection)["secret"]
    if not hmac.compare_digest(request.token.encode(), token.encode()):
        raise NotificationRefused(403, "wrong URL token")
    organization_id = salesforce_organization_id(request.body)
    expected = str(connection.options["organization_id"]).strip()
    # Setup shows the 15-character id; the messages carry the 18-character one (a suffix added)
    given = organization_id[:15] if len(expected) == 15 else organization_id
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise NotificationRefused(403, f"message from another organisation {organization_id!r}")


def salesforce_organization_id(body: bytes) -> str:
    """The `OrganizationId` of an outbound message with at least one `Notification`; raises
    `NotificationRefused` (400) for anything else, a document type declaration included (SOAP
    has none: refusing it refuses every entity expansion and external entity)."""
    root = _xml_parsed(body)
    message = root.find(f"{{{SOAP_ENVELOPE}}}Body/{{{OUTBOUND_MESSAGES}}}notifications")
    if root.tag != f"{{{SOAP_ENVELOPE}}}Envelope" or message is None:
        raise NotificationRefused(400, "not a SOAP outbound message")
    organization_id = (message.findtext(f"{{{OUTBOUND_MESSAGES}}}OrganizationId") or "").strip()
    if not organization_id or message.find(f"{{{OUTBOUND_MESSAGES}}}Notification") is None:
        raise NotificationRefused(400, "an outbound message without organisation or notification")
    return organization_id


def _xml_parsed(body: bytes) -> ElementTree.Element:
    scanner = expat.ParserCreate()
    scanner.StartDoctypeDeclHandler = _doctype_refused
    try:
        scanner.Parse(body, True)
        # no document type: nothing can declare an entity, internal or external
        return ElementTree.fromstring(body)  # noqa: S314
    except (expat.ExpatError, ElementTree.ParseError, ValueError) as error:
        raise NotificationRefused(400, f"malformed XML: {error}") from error


def _doctype_refused(*args: object) -> None:
    raise ValueError("a document type declaration")


def notification_record(*, connection_id: int, at: datetime) -> None:
    """Record when the connection's CRM last notified a change (shown in the admin). Skipped
    while a pull holds the connection's state row: a notification never waits for a page."""
    with transaction.atomic():
        free = (
            ConnectionState.objects.select_for_update(skip_locked=True)
            .filter(pk=connection_id)
            .values_list("pk", flat=True)
        )
        if free.first() is not None:
            ConnectionState.objects.filter(pk=connection_id).update(last_notification_at=at)


def pull_soon(*, connection_id: int) -> bool:
    """Queue a pull of the connection, to start in a moment, unless one is queued and not
    started: that one starts after this notification, so it reads its change too. Answers
    whether a pull was queued."""
    delay = NOTIFIED_PULL_DELAY_SECONDS
    if not cache.add(PULL_QUEUED_KEY.format(connection_id), 1, delay):
        return False
    pull_connection.apply_async((connection_id,), kwargs={"again_if_busy": True}, countdown=delay)
    return True


def notification_url(connection: Connection) -> str:
    """The URL to give the CRM for its change notifications ("" for a kind without them);
    a Salesforce URL ends with the connection's token, shown as a placeholder."""
    if connection.pk is None or connection.kind not in NOTIFIED_KINDS:
        return ""
    url = settings.SITE_URL + reverse("crmsync:notify", args=[connection.pk])
    if connection.kind == ConnectionKind.SALESFORCE:
        return url + "<secret>/"
    return url
