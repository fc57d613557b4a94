"""Sending a campaign: each step's audience claimed once, batches re-checking eligibility at
the moment of sending, one message per person with its proof, cancelling and resuming."""

import pytest
from django.core import mail

from campaigns.models import CampaignStatus, Recipient, RecipientStatus
from campaigns.sending import campaign_advance, campaign_send, step_batch_send
from consent.models import MessageSent
from contacts.services import suppression_add
from tests.factories import ContactFactory, PurposeFactory, campaign_make, email_step, grant
from tests.queued import held_back

pytestmark = pytest.mark.django_db


def sent_now(campaign):
    """Start the campaign and run its first step's batches here, as the workers would."""
    from campaigns.tasks import advance_campaign, send_step_batch

    with held_back(advance_campaign), held_back(send_step_batch):
        campaign_send(campaign=campaign)
        campaign_advance(campaign_id=campaign.pk)
    step = campaign.steps.get(position=1)
    results = []
    while True:
        result = step_batch_send(step_id=step.pk, batch=f"b{len(results)}")
        results.append(result)
        if not result.more:
            break
    return results


def test_a_campaign_reaches_each_eligible_person_once_with_the_record_that_allowed_it():
    purpose = PurposeFactory()
    granted = [ContactFactory(first_name=f"Anne{i}") for i in range(3)]
    records = {contact.pk: grant(contact, purpose, "email") for contact in granted}
    ContactFactory()  # no consent
    campaign = campaign_make(purpose, steps=[email_step(body_text_fr="Bonjour {{ first_name }}")])
    mail.outbox.clear()
    sent_now(campaign)
    assert len(mail.outbox) == 3
    assert {m.to[0] for m in mail.outbox} == {c.email for c in granted}
    message = mail.outbox[0]
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/u/" in message.extra_headers["List-Unsubscribe"]
    assert "Bonjour Anne" in message.body
    rows = Recipient.objects.filter(campaign=campaign, status=RecipientStatus.SENT)
    assert rows.count() == 3
    for row in rows:
        assert row.consent_record_id == records[row.contact_id].pk
    assert (
        Recipient.objects.get(campaign=campaign, status="skipped").exclusion_reason == "no_consent"
    )
    assert MessageSent.objects.filter(purpose=purpose).count() == 3
    campaign_advance(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENT


def test_someone_who_unsubscribed_after_the_audience_was_claimed_gets_nothing():
    purpose = PurposeFactory()
    contacts = [ContactFactory() for _ in range(2)]
    for contact in contacts:
        grant(contact, purpose, "email")
    campaign = campaign_make(purpose)
    from campaigns.tasks import advance_campaign, send_step_batch

    with held_back(advance_campaign), held_back(send_step_batch):
        campaign_send(campaign=campaign)
        campaign_advance(campaign_id=campaign.pk)
    suppression_add(reason="unsubscribed", email=contacts[0].email)
    mail.outbox.clear()
    step_batch_send(step_id=campaign.steps.get().pk, batch="b")
    assert [m.to[0] for m in mail.outbox] == [contacts[1].email]
    assert Recipient.objects.get(contact=contacts[0]).exclusion_reason == "suppressed"
