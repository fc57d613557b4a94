"""Deliverability feedback through `POST /api/v1/deliverability-events/` (SPEC §3 feedback, §4).

Hard bounces and three soft bounces make the email undeliverable, a complaint ends email
marketing, returned mail stops postal mail until the address is corrected, STOP ends SMS;
each lands on the timeline, and a provider's event id is applied once.
"""

from datetime import timedelta

import pytest
from django.utils import timezone, translation

from consent.eligibility import Ineligible, contact_eligibility
from consent.models import ConsentState
from contacts.deliverability import returned_mail_reason
from contacts.models import (
    Contact,
    ContactStatus,
    DeliverabilityEvent,
    EmailDeliverability,
    PostalDeliverability,
    ReturnedMailReason,
    Suppression,
    SuppressionReason,
    TimelineKind,
)
from contacts.selectors import suppression_reason
from contacts.services import contact_update, suppression_add
from contacts.tasks import purge_deliverability_events
from core.models import Scope
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/deliverability-events/"


def post(client, **body):
    return client.post(EVENTS, body, format="json")


def status_of(contact: Contact, purpose, channel: str) -> str:
    return ConsentState.objects.get(contact=contact, purpose=purpose, channel=channel).status


def kinds(contact: Contact) -> list[str]:
    return list(contact.timeline.values_list("kind", flat=True))


def test_a_hard_bounce_makes_the_email_undeliverable_with_its_reason(api):
    contact = ContactFactory()
    purpose = PurposeFactory()
    grant(contact, purpose)

    response = post(
        api(), email=contact.email.upper(), type="hard_bounce", reason="550 mailbox unknown"
    )

    assert response.status_code == 201, response.json()
    assert response.json() == {"type": "hard_bounce", "status": "accepted"}
    contact.refresh_from_db()
    assert contact.email_deliverability == EmailDeliverability.HARD_BOUNCE
    assert contact.email_undeliverable_reason == "550 mailbox unknown"
    assert Ineligible.UNDELIVERABLE in contact_eligibility(contact, purpose, "email")
    assert TimelineKind.EMAIL_BOUNCED in kinds(contact)


def test_the_third_soft_bounce_makes_the_email_undeliverable_and_a_delivery_resets_the_count(
    api,
):
    contact = ContactFactory()
    client = api()

    post(client, email=contact.email, type="soft_bounce", event_id="a")
    post(client, email=contact.email, type="soft_bounce", event_id="b")
    post(client, email=contact.email, type="delivered", event_id="c")
    post(client, email=contact.email, type="soft_bounce", event_id="d")
    post(client, email=contact.email, type="soft_bounce", event_id="e")
    contact.refresh_from_db()
    assert contact.email_deliverability == EmailDeliverability.DELIVERABLE
    assert contact.email_soft_bounces == 2

    post(client, email=contact.email, type="soft_bounce", event_id="f", reason="mailbox full")

    contact.refresh_from_db()
    assert contact.email_soft_bounces == 3
    assert contact.email_deliverability == EmailDeliverability.SOFT_BOUNCES
    assert contact.email_undeliverable_reason == "mailbox full"
    assert kinds(contact).count(TimelineKind.EMAIL_DELIVERED) == 1


def test_the_same_provider_event_twice_counts_once(api):
    contact = ContactFactory()
    client = api()

    for _ in range(3):
        response = post(client, email=contact.email, type="soft_bounce", event_id="evt-1")
        assert response.status_code == 201

    contact.refresh_from_db()
    assert contact.email_soft_bounces == 1
    assert contact.email_deliverability == EmailDeliverability.DELIVERABLE


def test_a_complaint_ends_email_marketing_only_and_is_attributed_to_the_campaign(api):
    contact = ContactFactory(phone="+33612345678")
    newsletter = PurposeFactory()
    grant(contact, newsletter, "email")
    grant(contact, newsletter, "sms")

    response = post(api(), email=contact.email, type="complaint", campaign="cmp-42")

    assert response.status_code == 201
    assert status_of(contact, newsletter, "email") == "withdrawn"
    assert status_of(contact, newsletter, "sms") == "granted"
    state = ConsentState.objects.get(contact=contact, purpose=newsletter, channel="email")
    assert state.record.source_reference == "deliverability:complaint:campaign:cmp-42"
    assert suppression_reason(kind="email", value=contact.email) == SuppressionReason.COMPLAINT
    event = contact.timeline.get(kind=TimelineKind.COMPLAINT)
    assert event.data["campaign"] == "cmp-42"
    assert event.data["records"] == [str(state.record.uuid)]


def test_a_complaint_keeps_the_reason_of_an_address_listed_already(api):
    contact = ContactFactory()
    Suppression.objects.all().delete()
    suppression_add(reason=SuppressionReason.GLOBAL_UNSUBSCRIBE, email=contact.email)

    post(api(), email=contact.email, type="complaint")

    assert (
        suppression_reason(kind="email", value=contact.email)
        == SuppressionReason.GLOBAL_UNSUBSCRIBE
    )


def test_returned_mail_stops_postal_mail_until_the_address_is_corrected(api):
    contact = ContactFactory(address_line1="1 rue Haute", postal_code="75001", city="Paris")
    purpose = PurposeFactory(channels=["postal"])
    grant(contact, purpose, "postal")

    response = post(api(), email=contact.email, type="returned_mail", reason="Refusé")

    assert response.status_code == 201
    contact.refresh_from_db()
    assert contact.postal_deliverability == PostalDeliverability.RETURNED
    assert contact.postal_undeliverable_reason == "refused"
    assert Ineligible.UNDELIVERABLE in contact_eligibility(contact, purpose, "postal")

    contact_update(contact=contact, fields={"address_line1": "2 rue Basse"})

    contact.refresh_from_db()
    assert contact.postal_deliverability == PostalDeliverability.DELIVERABLE
    assert contact.postal_undeliverable_reason == ""
    assert TimelineKind.DELIVERABILITY_RESET in kinds(contact)


def test_a_new_email_address_is_deliverable_again(api):
    contact = ContactFactory()
    post(api(), email=contact.email, type="hard_bounce")

    contact_update(contact=contact, email="nouvelle@example.fr")

    contact.refresh_from_db()
    assert contact.email_deliverability == EmailDeliverability.DELIVERABLE
    assert contact.email_soft_bounces == 0


def test_returned_mail_needs_a_known_reason(api):
    contact = ContactFactory()

    response = post(api(), email=contact.email, type="returned_mail", reason="lost at sea")

    assert response.status_code == 400
    assert "reason" in response.json()
    contact.refresh_from_db()
    assert contact.postal_deliverability == PostalDeliverability.DELIVERABLE


def test_sms_stop_withdraws_sms_for_every_contact_with_that_number(api):
    first = ContactFactory(phone="+33612345678")
    second = ContactFactory(phone="+33612345678")
    other = ContactFactory(phone="+33698765432")
    purpose = PurposeFactory()
    for contact in (first, second, other):
        grant(contact, purpose, "sms")
    grant(first, purpose, "email")

    response = post(api(), phone="06 12 34 56 78", type="sms_stop")

    assert response.status_code == 201
    assert status_of(first, purpose, "sms") == "withdrawn"
    assert status_of(second, purpose, "sms") == "withdrawn"
    assert status_of(other, purpose, "sms") == "granted"
    assert status_of(first, purpose, "email") == "granted"
    assert TimelineKind.SMS_STOPPED in kinds(first)


def test_a_repeated_sms_stop_is_one_moment_in_the_timeline(api):
    contact = ContactFactory(phone="+33612345678")
    grant(contact, PurposeFactory(), "sms")
    client = api()

    assert post(client, phone="+33612345678", type="sms_stop").status_code == 201
    assert post(client, phone="+33612345678", type="sms_stop").status_code == 201

    assert kinds(contact).count(TimelineKind.SMS_STOPPED) == 1


def test_an_sms_stop_needs_a_phone_and_a_bad_phone_is_a_field_error(api):
    client = api()
    assert "phone" in post(client, email="a@example.fr", type="sms_stop").json()
    response = post(client, phone="not a number", type="sms_stop")
    assert response.status_code == 400
    assert "phone" in response.json()


def test_an_unknown_or_erased_address_is_accepted_and_nothing_is_created(api):
    erased = ContactFactory(status=ContactStatus.ERASED)
    before = Contact.objects.count()
    client = api()

    for email in ("nobody@example.fr", erased.email):
        response = post(client, email=email, type="complaint")
        assert response.status_code == 201
        assert response.json() == {"type": "complaint", "status": "accepted"}

    assert Contact.objects.count() == before
    assert not erased.timeline.exists()


def test_the_timeline_keeps_when_the_event_occurred(api):
    contact = ContactFactory()

    post(api(), email=contact.email, type="delivered", occurred_at="2026-03-01T10:00:00+01:00")

    event = contact.timeline.get(kind=TimelineKind.EMAIL_DELIVERED)
    assert event.occurred_at.isoformat() == "2026-03-01T09:00:00+00:00"


def test_deliverability_events_need_their_scope(api):
    response = post(api(scopes=[Scope.CONTACTS_WRITE]), email="a@example.fr", type="delivered")
    assert response.status_code == 403


def test_an_unknown_type_is_a_field_error(api):
    response = post(api(), email="a@example.fr", type="opened")
    assert response.status_code == 400
    assert "type" in response.json()


def test_event_ids_are_forgotten_after_their_ttl(api, settings):
    settings.DELIVERABILITY_EVENT_TTL = timedelta(days=30)
    contact = ContactFactory()
    client = api()
    post(client, email=contact.email, type="soft_bounce", event_id="old")
    DeliverabilityEvent.objects.update(created_at=timezone.now() - timedelta(days=31))
    post(client, email=contact.email, type="soft_bounce", event_id="recent")

    assert purge_deliverability_events.apply().get() == 1

    assert list(DeliverabilityEvent.objects.values_list("event_id", flat=True)) == ["recent"]


@pytest.mark.parametrize("language", ["fr", "en"])
def test_every_returned_mail_label_the_upload_page_shows_is_accepted_in_a_file(language):
    with translation.override(language):
        labels = {code: str(label) for code, label in ReturnedMailReason.choices}

    for code, label in labels.items():
        assert returned_mail_reason(label) == code
        assert returned_mail_reason(label.upper().replace("'", "\u2019")) == code
    assert returned_mail_reason("n'importe quoi") is None
