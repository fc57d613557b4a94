"""The generic webhook: each change POSTed as JSON to the connection's URL, in outbox order,
signed after the Standard Webhooks convention (https://www.standardwebhooks.com/).

The body is the event feed's item (`GET /api/v1/events/`): `{id, cursor, topic, contact,
occurred_at, data}`. Headers: `webhook-id` (the event's id: stable across retries, so the
receiver can drop a second delivery), `webhook-timestamp` and `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under `credentials["secret"]`, a `whsec_`
base64 secret), by the `standardwebhooks` package. Any answer but a 2xx, a timeout or a network
error fails the batch for now (`TransientError`, with the receiver's `Retry-After`): the
machinery sends it again, from the first change not acknowledged... and the ones before it,
which the receiver recognises by their `webhook-id`.
"""

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from django.utils.translation import gettext as _
from standardwebhooks.webhooks import Webhook

from crmsync.adapters.base import (
    Change,
    ConnectionConfig,
    ErasureTarget,
    PushResult,
    TransientError,
)

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
# Standard Webhooks: secrets of 24 to 64 random bytes
SECRET_BYTES = (24, 64)
DEFAULT_TIMEOUT = 10.0


def change_item(change: Change) -> dict[str, Any]:
    """A change as the webhook POSTs it and the event feed serves it."""
    return {
        "id": str(change.id),
        "cursor": str(change.sequence),
        "topic": change.topic,
        "contact": str(change.contact),
        "occurred_at": change.occurred_at.astimezone(UTC).isoformat(),
        "data": change.data,
    }


def secret_problem(secret: str) -> str:
    """Why `secret` cannot sign webhooks ("" when it can)."""
    if not secret.startswith(SECRET_PREFIX):
        return _("The secret must start with %(prefix)s, then base64.") % {"prefix": SECRET_PREFIX}
    try:
        raw = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return _("The secret after %(prefix)s is not base64.") % {"prefix": SECRET_PREFIX}
    low, high = SECRET_BYTES
    if not low <= len(raw) <= high:
        return _("The secret must hold %(low)d to %(high)d bytes.") % {"low": low, "high": high}
    return ""


def retry_after(response: requests.Response) -> float | None:
    """The answer's `Retry-After` in seconds (a number or an HTTP date), or None."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


class WebhookAdapter:
    """POSTs each change, signed, one request per change and in order."""

    batch_size = 50

    def __init__(self, config: ConnectionConfig) -> None:
        self.url = config.base_url
        self.signer = Webhook(config.credentials.get("secret", ""))
        self.timeout = float(config.options.get("timeout", DEFAULT_TIMEOUT))
        self.session = requests.Session()

    def push(self, changes: Sequence[Change]) -> PushResult:
        """POST each change in order; the first failure fails the batch (TransientError)."""
        for change in changes:
            self._post(change)
        return PushResult()

    def erase(self, target: ErasureTarget) -> None:
        """POST the `contact.erased` event: its 2xx is the receiver's acknowledgement. The
        push delivers the same event, with the same `webhook-id`: the receiver drops the
        second one as a redelivery."""
        if target.event is not None:
            self._post(target.event)

    def _post(self, change: Change) -> None:
        body = json.dumps(change_item(change), separators=(",", ":"), ensure_ascii=False)
        now = datetime.now(UTC)
        message_id = str(change.id)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.signer.sign(message_id, now, body),
        }
        try:
            response = self.session.post(
                self.url,
                data=body.encode("utf-8"),
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            raise TransientError(f"POST {self.url}: {type(error).__name__}: {error}") from error
        with response:
            if not 200 <= response.status_code < 300:
                # the status only: a receiver's body may quote the payload back
                raise TransientError(
                    f"POST {self.url}: HTTP {response.status_code} for event {message_id}",
                    retry_after=retry_after(response),
                )
