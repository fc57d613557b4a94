"""Sending through the API (`POST /api/v1/campaigns/{id}/send/`) and the mail house's file
(`GET /api/v1/campaigns/{id}/postal-file/`), SPEC §4."""

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus, Recipient, RecipientStatus
from campaigns.postal import postal_line
from campaigns.sending import campaign_advance, step_batch_send
from campaigns.tasks import advance_campaign, send_step_batch
from contacts.deliverability import deliverability_event_apply
from tests.factories import ContactFactory, PurposeFactory, campaign_make, grant
from tests.queued import held_back

pytestmark = pytest.mark.django_db

READ, WRITE = "campaigns:read", "campaigns:write"


def postal_step(**content):
    return {"channel": "postal", "body_text_fr": "Lettre", **content}


def test_sending_now_answers_202_and_the_campaign_is_sending(
    api, django_capture_on_commit_callbacks
) -> None:
    campaign = campaign_make(PurposeFactory(channels=["email"]))
    with held_back(advance_campaign) as queued, django_capture_on_commit_callbacks(execute=True):
        response = api([WRITE, READ]).post(
            f"/api/v1/campaigns/{campaign.public_id}/send/", {}, format="json"
        )
    assert response.status_code == 202, response.json()
    assert response.json()["status"] == "sending"
    assert queued == [(campaign.pk,)]


def test_sending_at_a_future_time_schedules_it(api, django_capture_on_commit_callbacks) -> None:
    campaign = campaign_make(PurposeFactory(channels=["email"]))
    at = timezone.now() + timedelta(days=2)
    with held_back(advance_campaign) as queued, django_capture_on_commit_callbacks(execute=True):
        response = api([WRITE]).post(
            f"/api/v1/campaigns/{campaign.public_id}/send/", {"at": at.isoformat()}, format="json"
        )
    assert response.status_code == 202
    assert response.json()["status"] == "scheduled"
    assert queued == []
    campaign.refresh_from_db()
    assert campaign.scheduled_at == at


def test_sending_twice_is_refused_with_the_field_that_says_why(api) -> None:
    campaign = campaign_make(PurposeFactory(channels=["email"]))
    client = api([WRITE])
    with held_back(advance_campaign):
        client.post(f"/api/v1/campaigns/{campaign.public_id}/send/", {}, format="json")
        again = client.post(f"/api/v1/campaigns/{campaign.public_id}/send/", {}, format="json")
    assert again.status_code == 400
    assert again.json() == {"status": ["Only a draft or scheduled campaign can be sent."]}


def test_sending_needs_the_write_scope(api) -> None:
    campaign = campaign_make(PurposeFactory(channels=["email"]))
    response = api([READ]).post(f"/api/v1/campaigns/{campaign.public_id}/send/", {}, format="json")
    assert response.status_code == 403
    assert Campaign.objects.get().status == CampaignStatus.DRAFT


def send_postal(campaign: Campaign) -> None:
    from campaigns.sending import campaign_send

    with held_back(advance_campaign), held_back(send_step_batch):
        campaign_send(campaign=campaign)
        campaign_advance(campaign_id=campaign.pk)
        step_batch_send(step_id=campaign.steps.get().pk, batch="postal")


def test_the_postal_file_lists_each_letter_with_its_address_normalised(api) -> None:
    purpose = PurposeFactory(channels=["postal"])
    reached = ContactFactory(
        first_name="Hélène",
        last_name="Lefèvre-Dupré",
        address_line1="12, rue de l'Église",
        address_line2="Bâtiment B",
        postal_code="75004",
        city="Paris",
        country="FR",
    )
    grant(reached, purpose, "postal")
    no_address = ContactFactory(address_line1="", city="")
    grant(no_address, purpose, "postal")
    returned = ContactFactory(address_line1="1 rue X", city="Lyon", postal_code="69001")
    grant(returned, purpose, "postal")
    campaign = campaign_make(purpose, steps=[postal_step()])
    send_postal(campaign)
    # a letter that came back after the file was first made is left out of it
    deliverability_event_apply(
        type="returned_mail", email=returned.email, reason="unknown_at_address"
    )

    response = api([READ]).get(f"/api/v1/campaigns/{campaign.public_id}/postal-file/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows == [
        {
            "public_id": str(reached.public_id),
            "name": "HELENE LEFEVRE DUPRE",
            "address_line1": "12 RUE DE L EGLISE",
            "address_line2": "BATIMENT B",
            "postal_code": "75004",
            "city": "PARIS",
            "country": "FR",
        }
    ]
    skipped = Recipient.objects.get(contact=no_address)
    assert skipped.status == RecipientStatus.SKIPPED
    assert skipped.exclusion_reason == "undeliverable"


def test_an_address_line_keeps_38_characters_and_no_formula() -> None:
    assert postal_line('=HYPERLINK("x") résidence des Îles ' + "x" * 40).startswith("HYPERLINK")
    assert len(postal_line("a" * 80)) == 38
