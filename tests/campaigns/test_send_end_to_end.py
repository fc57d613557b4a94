"""End to end through a real Celery worker: a campaign sent from the API reaches each
eligible person once, and the one-click link in the message unsubscribes them."""

import re

import pytest
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus, Recipient, RecipientStatus
from consent.models import ConsentState, ConsentStatus
from tests.conftest import message_text, wait_for
from tests.factories import ContactFactory, PurposeFactory, campaign_make, email_step, grant

pytestmark = [
    pytest.mark.worker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

UNSUBSCRIBE = re.compile(r"<https?://[^/>]+(/u/[^/>]+/)>")


def test_a_campaign_sent_from_the_api_reaches_each_eligible_person_once(
    celery_worker, mailbox, api, client
) -> None:
    purpose = PurposeFactory(channels=["email"])
    people = [ContactFactory(first_name=f"Léa{index}") for index in range(5)]
    for person in people:
        grant(person, purpose, "email")
    ContactFactory()  # never agreed
    campaign = campaign_make(purpose, steps=[email_step(body_text_fr="Bonjour {{ first_name }}")])

    response = api(["campaigns:write"]).post(
        f"/api/v1/campaigns/{campaign.public_id}/send/", {}, format="json"
    )

    assert response.status_code == 202
    messages = mailbox.wait(5)
    assert sorted(message["To"] for message in messages) == sorted(p.email for p in people)
    assert all("Bonjour Léa" in message_text(message) for message in messages)
    wait_for(lambda: Campaign.objects.get().status == CampaignStatus.SENT, timeout=90)
    assert Recipient.objects.filter(status=RecipientStatus.SENT).count() == 5
    assert Recipient.objects.get(status=RecipientStatus.SKIPPED).exclusion_reason == "no_consent"

    # the mailbox's one-click button: a POST to the List-Unsubscribe link
    first = messages[0]
    path = UNSUBSCRIBE.search(first["List-Unsubscribe"]).group(1)
    assert client.post(path, {"List-Unsubscribe": "One-Click"}).status_code == 200
    person = next(p for p in people if p.email == first["To"])
    state = ConsentState.objects.get(contact=person, purpose=purpose, channel="email")
    assert state.status == ConsentStatus.WITHDRAWN
    assert state.since <= timezone.now()
