"""Sending from the campaign's admin page: send now or schedule (marketers with the send
permission), a test send to oneself, cancelling, the mail house's file."""

from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign, CampaignStatus, Recipient
from campaigns.tasks import advance_campaign
from tests.factories import PurposeFactory, campaign_make, email_step
from tests.queued import held_back

pytestmark = pytest.mark.django_db


def url(name: str, campaign: Campaign) -> str:
    return reverse(f"admin:campaigns_campaign_{name}", args=[campaign.pk])


def test_the_campaign_page_offers_sending_a_test_and_the_send_page(as_marketer: Client) -> None:
    campaign = campaign_make(PurposeFactory(channels=["email"]))
    page = as_marketer.get(url("change", campaign)).content.decode()
    assert url("send", campaign) in page
    assert url("test_send", campaign) in page
    assert url("cancel", campaign) in page
    assert url("postal_file", campaign) not in page  # no postal step


def test_a_marketer_sends_now_after_seeing_the_audience(
    as_marketer: Client, django_capture_on_commit_callbacks
) -> None:
    campaign = campaign_make(PurposeFactory(channels=["email"]))
    page = as_marketer.get(url("send", campaign))
    assert page.status_code == 200
    assert "audience-preview" in page.content.decode()
    with held_back(advance_campaign) as queued, django_capture_on_commit_callbacks(execute=True):
        response = as_marketer.post(url("send", campaign), {"at_0": "", "at_1": ""})
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING
    assert queued == [(campaign.pk,)]


def test_a_marketer_schedules_a_campaign(as_marketer: Client) -> None:
    campaign = campaign_make(PurposeFactory(channels=["email"]))
    at = timezone.localtime() + timedelta(days=3)
    response = as_marketer.post(
        url("send", campaign), {"at_0": at.strftime("%Y-%m-%d"), "at_1": "10:00:00"}
    )
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SCHEDULED
    assert timezone.localtime(campaign.scheduled_at).hour == 10


def test_the_dpo_may_look_but_not_send(as_dpo: Client) -> None:
    campaign = campaign_make(PurposeFactory(channels=["email"]))
    assert url("send", campaign) not in as_dpo.get(url("change", campaign)).content.decode()
    assert as_dpo.post(url("send", campaign), {}).status_code == 403
    assert as_dpo.post(url("cancel", campaign)).status_code == 403
    assert Campaign.objects.get().status == CampaignStatus.DRAFT


def test_a_test_send_reaches_the_marketer_personalised_and_counts_for_nobody(
    as_marketer: Client, marketer
) -> None:
    marketer.email, marketer.first_name = "marketer@example.fr", "Inès"
    marketer.save()
    campaign = campaign_make(
        PurposeFactory(channels=["email"]),
        steps=[email_step(subject_en="News", body_text_en="Hello {{ first_name }}")],
    )
    step = campaign.steps.get()
    mail.outbox.clear()
    response = as_marketer.post(url("test_send", campaign), {"step": step.pk, "language": "en"})
    assert response.status_code == 302
    (message,) = mail.outbox
    assert message.to == ["marketer@example.fr"]
    assert message.subject == "[TEST] News"
    assert "Hello Inès" in message.body
    assert not Recipient.objects.exists()


def test_cancelling_from_the_page_stops_the_campaign(as_marketer: Client) -> None:
    campaign = campaign_make(PurposeFactory(channels=["email"]))
    assert as_marketer.get(url("cancel", campaign)).status_code == 200
    response = as_marketer.post(url("cancel", campaign))
    assert response.status_code == 302
    assert Campaign.objects.get().status == CampaignStatus.CANCELLED


def test_the_mail_house_file_downloads_from_the_page(as_marketer: Client) -> None:
    campaign = campaign_make(
        PurposeFactory(channels=["postal"]), steps=[{"channel": "postal", "body_text_fr": "L"}]
    )
    assert url("postal_file", campaign) in as_marketer.get(url("change", campaign)).content.decode()
    response = as_marketer.get(url("postal_file", campaign))
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"public_id,name,address_line1")
