"""ESP and SMS provider webhooks feeding deliverability (SPEC §3 feedback).

A Mailgun tracking webhook, signed as Mailgun signs it, reaches the domain function through
django-anymail; a bad signature changes nothing. A Twilio inbound STOP, signed with the auth
token, withdraws SMS.
"""

import base64
import hashlib
import hmac
import json
import time

import pytest

from consent.models import ConsentState
from contacts.models import EmailDeliverability, TimelineKind
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db

MAILGUN = "/anymail/mailgun/tracking/"
SIGNING_KEY = "key-test-signing-0123456789"
SECRET = "esp:s3cret-password"


@pytest.fixture
def mailgun(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}


def mailgun_body(event_data: dict, *, key: str = SIGNING_KEY, token: str = "tok-1") -> str:  # noqa: S107
    """A webhook body as Mailgun builds it: HMAC-SHA256 of timestamp + token, hex."""
    timestamp = str(int(time.time()))
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {
            "signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": {"timestamp": float(timestamp), **event_data},
        }
    )


def post_mailgun(client, body: str, *, secret: str = SECRET):
    auth = base64.b64encode(secret.encode()).decode()
    return client.post(
        MAILGUN, body, content_type="application/json", HTTP_AUTHORIZATION=f"Basic {auth}"
    )


def failed(email: str) -> dict:
    return {
        "event": "failed",
        "severity": "permanent",
        "reason": "bounce",
        "recipient": email,
        "delivery-status": {"description": "No such mailbox", "message": "550 5.1.1"},
        "user-variables": {"campaign": "cmp-7"},
    }


def test_a_signed_mailgun_bounce_makes_the_email_undeliverable(client, mailgun):
    contact = ContactFactory()

    response = post_mailgun(client, mailgun_body(failed(contact.email)))

    assert response.status_code == 200
    contact.refresh_from_db()
    assert contact.email_deliverability == EmailDeliverability.HARD_BOUNCE
    assert contact.email_undeliverable_reason == "No such mailbox"
    event = contact.timeline.get(kind=TimelineKind.EMAIL_BOUNCED)
    assert event.data["campaign"] == "cmp-7"
    assert event.data["event_id"] == "mailgun:tok-1"


def test_a_mailgun_webhook_with_a_bad_signature_is_refused_and_changes_nothing(client, mailgun):
    contact = ContactFactory()

    response = post_mailgun(client, mailgun_body(failed(contact.email), key="not-the-key"))

    assert response.status_code == 400
    contact.refresh_from_db()
    assert contact.email_deliverability == EmailDeliverability.DELIVERABLE
    assert not contact.timeline.filter(kind=TimelineKind.EMAIL_BOUNCED).exists()


def test_a_mailgun_webhook_without_the_basic_auth_secret_is_refused(client, mailgun):
    contact = ContactFactory()

    response = post_mailgun(client, mailgun_body(failed(contact.email)), secret="esp:wrong")

    assert response.status_code == 400
    contact.refresh_from_db()
    assert contact.email_deliverability == EmailDeliverability.DELIVERABLE


def test_a_mailgun_complaint_ends_email_marketing_and_a_retry_is_applied_once(client, mailgun):
    contact = ContactFactory()
    purpose = PurposeFactory()
    grant(contact, purpose)
    body = mailgun_body({"event": "complained", "recipient": contact.email}, token="tok-c")

    assert post_mailgun(client, body).status_code == 200
    assert post_mailgun(client, body).status_code == 200

    state = ConsentState.objects.get(contact=contact, purpose=purpose, channel="email")
    assert state.status == "withdrawn"
    assert contact.timeline.filter(kind=TimelineKind.COMPLAINT).count() == 1


def test_a_mailgun_temporary_failure_counts_as_a_soft_bounce(client, mailgun):
    contact = ContactFactory()
    for token in ("t1", "t2", "t3"):
        data = {**failed(contact.email), "severity": "temporary"}
        assert post_mailgun(client, mailgun_body(data, token=token)).status_code == 200

    contact.refresh_from_db()
    assert contact.email_soft_bounces == 3
    assert contact.email_deliverability == EmailDeliverability.SOFT_BOUNCES


def test_opens_and_clicks_change_nothing(client, mailgun):
    contact = ContactFactory()

    body = mailgun_body({"event": "opened", "recipient": contact.email})
    assert post_mailgun(client, body).status_code == 200

    assert not contact.timeline.exists()


# --- Twilio inbound STOP ------------------------------------------------------------------------

TWILIO_INBOUND = "/sms/twilio/inbound/"
AUTH_TOKEN = "twilio-auth-token-test"


def twilio_signed(settings, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    """`X-Twilio-Signature` computed as Twilio documents it (URL + sorted name/value pairs)."""
    payload = (
        settings.SITE_URL + TWILIO_INBOUND + "".join(f"{k}{params[k]}" for k in sorted(params))
    )
    return base64.b64encode(
        hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()
    ).decode()


@pytest.fixture
def twilio(settings):
    settings.SMS_URL = f"twilio://AC123:{AUTH_TOKEN}@api.twilio.com/?from=%2B33700000000"


def test_a_signed_twilio_stop_withdraws_sms(client, settings, twilio):
    contact = ContactFactory(phone="+33612345678")
    purpose = PurposeFactory()
    grant(contact, purpose, "sms")
    params = {"From": "+33612345678", "Body": " Stop ", "MessageSid": "SM1"}

    response = client.post(
        TWILIO_INBOUND, params, HTTP_X_TWILIO_SIGNATURE=twilio_signed(settings, params)
    )

    assert response.status_code == 200
    state = ConsentState.objects.get(contact=contact, purpose=purpose, channel="sms")
    assert state.status == "withdrawn"
    assert contact.timeline.filter(kind=TimelineKind.SMS_STOPPED).exists()


def test_a_twilio_message_with_a_bad_signature_is_refused(client, settings, twilio):
    contact = ContactFactory(phone="+33612345678")
    purpose = PurposeFactory()
    grant(contact, purpose, "sms")
    params = {"From": "+33612345678", "Body": "STOP", "MessageSid": "SM2"}

    response = client.post(
        TWILIO_INBOUND, params, HTTP_X_TWILIO_SIGNATURE=twilio_signed(settings, params, "bad")
    )

    assert response.status_code == 403
    state = ConsentState.objects.get(contact=contact, purpose=purpose, channel="sms")
    assert state.status == "granted"


def test_a_twilio_message_that_is_not_stop_changes_nothing(client, settings, twilio):
    contact = ContactFactory(phone="+33612345678")
    params = {"From": "+33612345678", "Body": "Bonjour, stop ou encore ?", "MessageSid": "SM3"}

    response = client.post(
        TWILIO_INBOUND, params, HTTP_X_TWILIO_SIGNATURE=twilio_signed(settings, params)
    )

    assert response.status_code == 200
    assert not contact.timeline.exists()
