"""Sending SMS: a small backend interface chosen by the `SMS_URL` setting (SPEC §4).

- `console://` (default): the message goes to the log (and standard output).
- `file:///folder`: one JSON file per message, `{to, body, campaign, contact}`.
- `twilio://ACCOUNT_SID:AUTH_TOKEN@api.twilio.com/?from=+33...`: Twilio's Messages API over
  HTTPS (`&insecure=1` speaks plain HTTP, for a local emulator in tests only).

`sms_backend().send(message)` sends one `SmsMessage` and answers the provider's message id.
Numbers are sent in E.164; `sms_body_with_stop` appends the opt-out instruction the law asks
of every marketing SMS (CPCE L34-5; CNIL: "STOP au 36xxx").
"""

import base64
import json
import logging
import sys
import urllib.parse
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

import phonenumbers
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils import translation
from django.utils.translation import gettext as _

logger = logging.getLogger(__name__)

# Twilio's answer to a send must come within this many seconds.
HTTP_TIMEOUT = 15


@dataclass(frozen=True)
class SmsMessage:
    """One SMS to one person: `to` in E.164, `campaign` and `contact` (public id) for proof."""

    to: str
    body: str
    campaign: str = ""
    contact: str = ""


def e164(number: str, *, country: str = "FR") -> str:
    """The number in E.164 (national numbers read in `country`); ValidationError if invalid."""
    try:
        parsed = phonenumbers.parse((number or "").strip(), (country or "FR").upper())
    except phonenumbers.NumberParseException as error:
        raise ValidationError({"to": [_("Enter a valid phone number.")]}) from error
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationError({"to": [_("Enter a valid phone number.")]})
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def sms_message_build(
    *, to: str, body: str, campaign: str = "", contact: str = "", country: str = "FR"
) -> SmsMessage:
    """A message with its number in E.164 and a non-empty body."""
    if not body.strip():
        raise ValidationError({"body": [_("An SMS needs a text.")]})
    return SmsMessage(to=e164(to, country=country), body=body, campaign=campaign, contact=contact)


def sms_stop_instruction(language: str) -> str:
    """How to opt out, in the person's language: `SMS_STOP_INSTRUCTION` when set (as is),
    else "STOP to <SMS_STOP_NUMBER>" or, without a number, "Reply STOP to opt out"."""
    if settings.SMS_STOP_INSTRUCTION:
        return str(settings.SMS_STOP_INSTRUCTION)
    with translation.override(language or "fr"):
        if settings.SMS_STOP_NUMBER:
            return _("STOP to %(number)s") % {"number": settings.SMS_STOP_NUMBER}
        return _("Reply STOP to opt out")


def sms_body_with_stop(text: str, language: str) -> str:
    """The marketing text followed by the opt-out instruction (once)."""
    instruction = sms_stop_instruction(language)
    text = text.rstrip()
    if text.endswith(instruction):
        return text
    return f"{text}\n{instruction}"


class SmsBackend(Protocol):
    def send(self, message: SmsMessage) -> str:
        """Send one message; answer the provider's id for it."""
        ...


class ConsoleSmsBackend:
    """Writes each message to standard output and the log (development)."""

    def send(self, message: SmsMessage) -> str:
        message_id = str(uuid.uuid4())
        sys.stdout.write(f"SMS to {message.to}: {message.body}\n")
        logger.info("sms sent", extra={"sms_id": message_id, "campaign": message.campaign})
        return message_id


class FileSmsBackend:
    """One JSON file per message in a folder: `{to, body, campaign, contact}`."""

    def __init__(self, folder: str) -> None:
        if not folder:
            raise ImproperlyConfigured("SMS_URL file:// needs a folder: file:///var/sms")
        self.folder = Path(folder)

    def send(self, message: SmsMessage) -> str:
        message_id = str(uuid.uuid4())
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{message_id}.json"
        path.write_text(json.dumps(asdict(message), ensure_ascii=False), encoding="utf-8")
        return message_id


class SmsSendError(Exception):
    """The provider refused the message (its answer is in the text)."""


class TwilioSmsBackend:
    """Twilio's Messages API: a form POST with HTTP basic authentication."""

    def __init__(self, *, account_sid: str, auth_token: str, host: str, sender: str, scheme: str):
        if not (account_sid and auth_token and sender):
            raise ImproperlyConfigured(
                "SMS_URL twilio:// needs ACCOUNT_SID:AUTH_TOKEN@host/?from=+33..."
            )
        self.account_sid, self.auth_token, self.sender = account_sid, auth_token, sender
        self.endpoint = f"{scheme}://{host}/2010-04-01/Accounts/{account_sid}/Messages.json"

    def send(self, message: SmsMessage) -> str:
        form = urllib.parse.urlencode({"To": message.to, "From": self.sender, "Body": message.body})
        # the endpoint is http(s) only, built in __init__
        request = urllib.request.Request(  # noqa: S310
            self.endpoint, data=form.encode(), method="POST"
        )
        credentials = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        request.add_header("Authorization", f"Basic {credentials}")
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:  # noqa: S310
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise SmsSendError(f"Twilio {error.code}: {error.read()[:500]!r}") from error
        return str(answer.get("sid", ""))


def sms_backend_from_url(url: str) -> SmsBackend:
    """The backend an `SMS_URL` names."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "console":
        return ConsoleSmsBackend()
    if parts.scheme == "file":
        return FileSmsBackend(urllib.parse.unquote(parts.path))
    if parts.scheme == "twilio":
        query = urllib.parse.parse_qs(parts.query)
        host = parts.hostname or "api.twilio.com"
        if parts.port:
            host = f"{host}:{parts.port}"
        return TwilioSmsBackend(
            account_sid=urllib.parse.unquote(parts.username or ""),
            auth_token=urllib.parse.unquote(parts.password or ""),
            host=host,
            sender=query.get("from", [""])[0],
            scheme="http" if query.get("insecure", ["0"])[0] == "1" else "https",
        )
    raise ImproperlyConfigured(f"SMS_URL: unknown scheme {parts.scheme!r}")


@cache
def _backend(url: str) -> SmsBackend:
    return sms_backend_from_url(url)


def sms_backend() -> SmsBackend:
    """The backend of the `SMS_URL` setting."""
    return _backend(settings.SMS_URL)


def twilio_auth_token() -> str:
    """The auth token of a `twilio://` SMS_URL (it signs Twilio's webhooks), or ""."""
    parts = urllib.parse.urlsplit(settings.SMS_URL)
    return urllib.parse.unquote(parts.password or "") if parts.scheme == "twilio" else ""
