"""Creating, changing and cancelling campaigns through their services."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from campaigns.models import Campaign, CampaignStatus, Recipient, RecipientStatus, Segment
from campaigns.services import (
    SegmentCriteria,
    campaign_cancel,
    campaign_create,
    campaign_update,
)
from core.errors import StructuredValidationError
from tests.factories import (
    ContactFactory,
    InterestFactory,
    PurposeFactory,
    UserFactory,
    campaign_make,
    email_step,
)

pytestmark = pytest.mark.django_db


def test_a_new_campaign_is_a_draft_with_its_steps_numbered_from_one() -> None:
    purpose = PurposeFactory(channels=["email", "sms"])

    campaign = campaign_make(
        purpose,
        steps=[
            email_step(),
            {
                "channel": "sms",
                "delay_hours": 48,
                "condition": "previous_not_delivered",
                "sms_text_fr": "Nos offres. STOP au 36111",
            },
        ],
    )

    assert campaign.status == CampaignStatus.DRAFT
    steps = list(campaign.steps.order_by("position"))
    assert [(step.position, step.channel, step.delay_hours) for step in steps] == [
        (1, "email", 0),
        (2, "sms", 48),
    ]
    assert steps[1].condition == "previous_not_delivered"


def test_english_content_falls_back_to_french() -> None:
    campaign = campaign_make(steps=[email_step(subject_en="")])
    step = campaign.steps.get()

    assert step.content("subject", "en") == "Nos nouveautés"
    step.subject_en = "Our news"
    assert step.content("subject", "en") == "Our news"
    assert step.content("subject", "fr") == "Nos nouveautés"


def test_a_step_on_a_channel_the_purpose_does_not_use_is_refused_and_nothing_is_written() -> None:
    purpose = PurposeFactory(channels=["email"])

    with pytest.raises(ValidationError) as error:
        campaign_make(purpose, steps=[email_step(), {"channel": "sms", "sms_text_fr": "x"}])

    assert "channel" in error.value.detail["steps"][1]
    assert error.value.detail["steps"][0] == {}
    assert not Campaign.objects.exists()


def test_each_channel_needs_its_content_and_the_first_step_no_delay() -> None:
    purpose = PurposeFactory(channels=["email", "sms", "postal"])

    with pytest.raises(ValidationError) as error:
        campaign_make(
            purpose,
            steps=[
                {"channel": "email", "delay_hours": 24, "condition": "previous_not_delivered"},
                {"channel": "sms"},
                {"channel": "postal"},
            ],
        )

    first, sms, postal = error.value.detail["steps"]
    assert set(first) == {"subject_fr", "body_text_fr", "delay_hours", "condition"}
    assert set(sms) == {"sms_text_fr"}
    assert set(postal) == {"body_text_fr"}


def test_a_campaign_needs_a_step() -> None:
    with pytest.raises(ValidationError) as error:
        campaign_make(steps=[])

    assert "steps" in error.value.detail


def test_inline_criteria_become_a_segment_of_the_campaign_not_saved_for_reuse() -> None:
    InterestFactory(slug="velo")

    campaign = campaign_make(
        criteria=SegmentCriteria(interests=["velo"], countries=["fr"], languages=["fr"])
    )

    segment = campaign.segment
    assert segment is not None and not segment.saved
    assert segment.countries == ["FR"]
    assert [interest.slug for interest in segment.interests.all()] == ["velo"]


def test_unknown_interests_in_the_criteria_are_a_segment_error() -> None:
    with pytest.raises(ValidationError) as error:
        campaign_make(criteria=SegmentCriteria(interests=["nope"], lifecycle_stages=["alien"]))

    assert set(error.value.detail["segment"]) == {"interests", "lifecycle_stages"}
    assert not Segment.objects.exists()


def test_a_draft_can_be_changed_a_scheduled_campaign_cannot() -> None:
    campaign = campaign_make()

    campaign_update(campaign=campaign, name="Lettre de décembre", steps=[email_step()] * 2)
    campaign.refresh_from_db()
    assert campaign.name == "Lettre de décembre"
    assert campaign.steps.count() == 2

    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.SCHEDULED)
    with pytest.raises(ValidationError):
        campaign_update(campaign=campaign, name="Trop tard")


def test_cancelling_keeps_what_was_sent_and_a_sent_campaign_cannot_be_cancelled() -> None:
    campaign = campaign_make()
    recipient = Recipient.objects.create(
        campaign=campaign,
        step=campaign.steps.get(),
        contact=ContactFactory(),
        status=RecipientStatus.SENT,
    )

    assert campaign_cancel(campaign=campaign).status == CampaignStatus.CANCELLED
    assert Recipient.objects.get(pk=recipient.pk).status == RecipientStatus.SENT
    with pytest.raises(ValidationError):
        campaign_cancel(campaign=campaign)


def test_a_contact_is_recipient_of_a_step_only_once() -> None:
    campaign = campaign_make()
    step, contact = campaign.steps.get(), ContactFactory()
    Recipient.objects.create(campaign=campaign, step=step, contact=contact)

    with pytest.raises(IntegrityError), transaction.atomic():
        Recipient.objects.create(campaign=campaign, step=step, contact=contact)


def test_the_campaign_remembers_who_created_it() -> None:
    user = UserFactory()
    campaign = campaign_create(
        name="x", purpose=PurposeFactory(), steps=[email_step()], created_by=user
    )
    assert campaign.created_by == user


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Bonjour {{ first_name }}, {{ interests|lower }}", ""),
        ("{% if first_name %}Bonjour {{ first_name }}{% else %}Bonjour{% endif %}", ""),
        ("{% if %}", "cannot be personalised"),
        ("{{ contact.email }}", "Unknown names: contact"),
        ("{% include 'base.html' %}", "Only variables"),
        ("{% debug %}", "Only variables"),
    ],
)
def test_content_that_cannot_be_personalised_is_refused_with_the_field(text, problem) -> None:
    purpose = PurposeFactory(channels=["email"])
    if not problem:
        campaign_make(purpose, steps=[email_step(body_text_fr=text)])
        return
    with pytest.raises(StructuredValidationError) as error:
        campaign_make(purpose, steps=[email_step(body_text_fr=text)])
    assert problem in str(error.value.detail["steps"][0]["body_text_fr"])
