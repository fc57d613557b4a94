"""Erasure anonymises campaign recipients and keeps the campaign's counts (SPEC §3): a
recipient row holds no copy of the person, only the (anonymised) contact and the proof."""

import pytest
from django.utils import timezone

from campaigns.models import Recipient, RecipientStatus
from campaigns.selectors import campaign_recipients, campaign_stats
from consent.models import LegalBasis
from privacy.services import contact_erase
from tests.factories import ContactFactory, PurposeFactory, campaign_make, grant

pytestmark = pytest.mark.django_db

# What a recipient row may hold: none of it says who the person is once the contact row is
# anonymised. A new field holding personal data (an email, a phone, a name) fails this test
# until erasure clears it.
NOT_PERSONAL = {
    "id",
    "campaign",
    "step",
    "contact",
    "status",
    "exclusion_reason",
    "consent_record",
    "legal_basis",
    "sent_at",
    "delivered_at",
    "unsubscribed_at",
    "created_at",
    # sending's bookkeeping: the batch, its times, the message's id (campaign and row ids),
    # the preference link (deleted by erasure)
    "batch",
    "claimed_at",
    "send_after",
    "message_id",
    "preference_token",
    # the provider's refusal, with the address and number taken out when it is written
    "error",
}


def test_a_recipient_keeps_no_copy_of_the_person() -> None:
    assert {field.name for field in Recipient._meta.concrete_fields} == NOT_PERSONAL


def test_erasure_anonymises_recipients_and_keeps_the_counts() -> None:
    purpose = PurposeFactory(channels=["email"])
    campaign = campaign_make(purpose)
    contact = ContactFactory(email="camille@example.fr", first_name="Camille")
    Recipient.objects.create(
        campaign=campaign,
        step=campaign.steps.get(),
        contact=contact,
        status=RecipientStatus.SENT,
        sent_at=timezone.now(),
        consent_record=grant(contact, purpose),
        legal_basis=LegalBasis.CONSENT,
    )
    before = campaign_stats(campaign)

    contact_erase(contact=contact, reason="request")

    assert campaign_stats(campaign) == before == {**before, "targeted": 1, "sent": 1}
    recipient = Recipient.objects.select_related("contact").get()
    assert recipient.contact.status == "erased"
    assert recipient.contact.first_name == ""
    assert "camille" not in recipient.contact.email
    assert not campaign_recipients(campaign, email="camille@example.fr").exists()
