"""`/api/v1/campaigns/` (SPEC §4): create a draft, read it with its statistics, preview its
audience, list its recipients with the proof of each message."""

import uuid

import pytest
from django.utils import timezone
from rest_framework.pagination import PageNumberPagination

from campaigns.models import Campaign, Recipient, RecipientStatus
from consent.models import LegalBasis
from tests.factories import ContactFactory, InterestFactory, PurposeFactory, campaign_make, grant

pytestmark = pytest.mark.django_db

READ, WRITE = "campaigns:read", "campaigns:write"


def payload(**overrides):
    return {
        "name": "Lettre de novembre",
        "purpose": "offers",
        "segment": {"countries": ["FR"], "languages": ["fr"]},
        "steps": [
            {"channel": "email", "delay_hours": 0, "subject": "Nos offres", "body_text": "Bonjour"},
            {
                "channel": "sms",
                "delay_hours": 48,
                "condition": "previous_not_delivered",
                "text": "Nos offres. STOP 36111",
            },
        ],
        **overrides,
    }


@pytest.fixture
def offers():
    return PurposeFactory(slug="offers", channels=["email", "sms", "postal"])


def test_creating_a_campaign_answers_the_draft_with_its_public_id(api, offers) -> None:
    response = api([WRITE, READ]).post("/api/v1/campaigns/", payload(), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    campaign = Campaign.objects.get()
    assert body["id"] == str(campaign.public_id)
    assert body["status"] == "draft"
    assert body["purpose"] == "offers"
    assert body["segment"]["countries"] == ["FR"]
    assert [step["channel"] for step in body["steps"]] == ["email", "sms"]
    assert body["steps"][1]["condition"] == "previous_not_delivered"
    assert body["steps"][1]["text"] == "Nos offres. STOP 36111"
    assert body["stats"]["targeted"] == 0


def test_validation_errors_name_the_field_and_nothing_is_written(api, offers) -> None:
    client = api([WRITE])
    bad = payload(
        purpose="unknown",
        steps=[{"channel": "fax"}],
        segment={"lifecycle_stages": ["alien"]},
    )

    response = client.post("/api/v1/campaigns/", bad, format="json")

    assert response.status_code == 400
    errors = response.json()
    assert "purpose" in errors
    assert "channel" in errors["steps"][0]
    assert "lifecycle_stages" in errors["segment"]
    assert not Campaign.objects.exists()


def test_a_step_the_purpose_does_not_use_is_a_step_error(api) -> None:
    PurposeFactory(slug="offers", channels=["email"])

    response = api([WRITE]).post("/api/v1/campaigns/", payload(), format="json")

    assert response.status_code == 400
    errors = response.json()["steps"]
    assert errors[0] == {}
    assert "channel" in errors[1]


def test_an_email_step_without_subject_is_refused(api, offers) -> None:
    steps = [{"channel": "email", "body_text": "Bonjour"}]

    response = api([WRITE]).post("/api/v1/campaigns/", payload(steps=steps), format="json")

    assert response.status_code == 400
    assert "subject_fr" in response.json()["steps"][0]


def test_unknown_interests_are_a_segment_error(api, offers) -> None:
    InterestFactory(slug="velo")
    segment = {"interests": ["velo", "nope"]}

    response = api([WRITE]).post("/api/v1/campaigns/", payload(segment=segment), format="json")

    assert response.status_code == 400
    assert "nope" in response.json()["segment"]["interests"][0]


def test_scopes_are_checked_on_every_endpoint(api, offers) -> None:
    campaign = campaign_make(offers)
    reader, writer = api([READ]), api([WRITE])

    assert reader.post("/api/v1/campaigns/", payload(), format="json").status_code == 403
    for suffix in ("", "audience/", "recipients/"):
        url = f"/api/v1/campaigns/{campaign.public_id}/{suffix}"
        assert writer.get(url).status_code == 403
        assert reader.get(url).status_code == 200


def test_an_idempotent_replay_creates_one_campaign(api, offers) -> None:
    client = api([WRITE])
    headers = {"HTTP_IDEMPOTENCY_KEY": "campaign-1"}

    first = client.post("/api/v1/campaigns/", payload(), format="json", **headers)
    second = client.post("/api/v1/campaigns/", payload(), format="json", **headers)

    assert second.json()["id"] == first.json()["id"]
    assert Campaign.objects.count() == 1


def test_an_unknown_campaign_is_404(api) -> None:
    response = api([READ]).get(f"/api/v1/campaigns/{uuid.uuid4()}/")

    assert response.status_code == 404


def test_a_draft_has_zero_statistics(api, offers) -> None:
    campaign = campaign_make(offers)

    stats = api([READ]).get(f"/api/v1/campaigns/{campaign.public_id}/").json()["stats"]

    zeros = {
        "targeted": 0,
        "sent": 0,
        "delivered": 0,
        "bounced": 0,
        "complained": 0,
        "unsubscribed": 0,
        "excluded": {},
    }
    assert stats == {**zeros, "steps": [{"position": 1, "channel": "email", **zeros}]}


def recipients_of(campaign, offers):
    """Four recipients: sent and delivered on a consent, bounced, complained and unsubscribed,
    and one skipped as suppressed."""
    step, now = campaign.steps.get(), timezone.now()
    made = []
    for status, extra in [
        (RecipientStatus.SENT, {"delivered_at": now}),
        (RecipientStatus.BOUNCED, {}),
        (RecipientStatus.COMPLAINED, {"delivered_at": now, "unsubscribed_at": now}),
    ]:
        contact = ContactFactory()
        record = grant(contact, offers)
        made.append(
            Recipient.objects.create(
                campaign=campaign,
                step=step,
                contact=contact,
                status=status,
                sent_at=now,
                consent_record=record,
                legal_basis=LegalBasis.CONSENT,
                **extra,
            )
        )
    made.append(
        Recipient.objects.create(
            campaign=campaign,
            step=step,
            contact=ContactFactory(),
            status=RecipientStatus.SKIPPED,
            exclusion_reason="suppressed",
        )
    )
    return made


def test_statistics_are_counted_from_the_recipients(api, offers) -> None:
    campaign = campaign_make(offers)
    recipients_of(campaign, offers)

    stats = api([READ]).get(f"/api/v1/campaigns/{campaign.public_id}/").json()["stats"]

    counts = {
        "targeted": 4,
        "sent": 3,
        "delivered": 2,
        "bounced": 1,
        "complained": 1,
        "unsubscribed": 1,
        "excluded": {"suppressed": 1},
    }
    assert stats == {**counts, "steps": [{"position": 1, "channel": "email", **counts}]}


def test_the_audience_endpoint_gives_each_step_s_counts(api, offers) -> None:
    for _ in range(2):
        grant(ContactFactory(), offers)
    ContactFactory()
    campaign = campaign_make(offers)

    body = api([READ]).get(f"/api/v1/campaigns/{campaign.public_id}/audience/").json()

    assert body == {
        "steps": [{"position": 1, "channel": "email", "eligible": 2, "excluded": {"no_consent": 1}}]
    }


def test_recipients_name_the_contact_and_the_consent_record_by_their_public_ids(
    api, offers
) -> None:
    campaign = campaign_make(offers)
    sent, *_rest, skipped = recipients_of(campaign, offers)

    body = api([READ]).get(f"/api/v1/campaigns/{campaign.public_id}/recipients/").json()

    assert body["count"] == 4
    first = body["results"][0]
    assert first["contact"] == str(sent.contact.public_id)
    assert first["consent_record"] == str(sent.consent_record.uuid)
    assert first["legal_basis"] == "consent"
    assert first["step"] == 1
    assert first["channel"] == "email"
    assert first["status"] == "sent"
    assert body["results"][-1]["consent_record"] is None
    assert body["results"][-1]["status"] == "skipped"


def test_recipients_are_paginated_and_found_by_email(api, offers, monkeypatch) -> None:
    monkeypatch.setattr(PageNumberPagination, "page_size", 2)  # 50 in production
    campaign = campaign_make(offers)
    sent, *_ = recipients_of(campaign, offers)
    client = api([READ])
    url = f"/api/v1/campaigns/{campaign.public_id}/recipients/"

    page = client.get(url).json()
    assert len(page["results"]) == 2
    assert page["count"] == 4 and page["previous"] is None
    assert len(client.get(page["next"]).json()["results"]) == 2

    found = client.get(url, {"email": sent.contact.email.upper()}).json()
    assert [row["contact"] for row in found["results"]] == [str(sent.contact.public_id)]
    assert client.get(url, {"email": "nobody@example.fr"}).json()["count"] == 0
