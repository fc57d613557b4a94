"""The campaigns admin: marketers build a campaign with its steps, see the audience preview
per step on its page, and the recipients with the proof of each message."""

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign, Recipient, RecipientStatus, Segment
from consent.models import LegalBasis
from tests.admin.forms import submitted_form
from tests.factories import ContactFactory, PurposeFactory, campaign_make, grant

pytestmark = pytest.mark.django_db

ADD = reverse("admin:campaigns_campaign_add")


def test_a_marketer_builds_a_campaign_with_its_steps(as_marketer: Client) -> None:
    purpose = PurposeFactory(channels=["email", "sms"])
    page = as_marketer.get(ADD)
    assert page.status_code == 200
    data = submitted_form(
        page,
        name="Lettre de novembre",
        purpose=purpose.pk,
        kind="regular",
        **{
            "steps-TOTAL_FORMS": "2",
            "steps-0-position": "1",
            "steps-0-channel": "email",
            "steps-0-delay_hours": "0",
            "steps-0-subject_fr": "Nos offres",
            "steps-0-body_text_fr": "Bonjour",
            "steps-1-position": "2",
            "steps-1-channel": "sms",
            "steps-1-delay_hours": "48",
            "steps-1-condition": "previous_not_delivered",
            "steps-1-sms_text_fr": "Offres. STOP 36111",
        },
    )

    response = as_marketer.post(ADD, data)

    assert response.status_code == 302, response.context["errors"] if response.context else ""
    campaign = Campaign.objects.get()
    assert campaign.status == "draft"
    assert campaign.created_by is not None
    assert list(campaign.steps.values_list("channel", flat=True)) == ["email", "sms"]


def test_a_step_missing_its_content_is_shown_as_an_error(as_marketer: Client) -> None:
    purpose = PurposeFactory(channels=["email"])
    data = submitted_form(
        as_marketer.get(ADD),
        name="Sans objet",
        purpose=purpose.pk,
        kind="regular",
        **{
            "steps-TOTAL_FORMS": "1",
            "steps-0-position": "1",
            "steps-0-channel": "email",
            "steps-0-delay_hours": "0",
        },
    )

    response = as_marketer.post(ADD, data)

    assert response.status_code == 200
    assert "This channel needs it." in response.content.decode()
    assert not Campaign.objects.exists()


def test_the_change_page_previews_each_step_s_audience_in_words(as_marketer: Client) -> None:
    purpose = PurposeFactory(channels=["email"])
    grant(ContactFactory(), purpose)
    ContactFactory()
    campaign = campaign_make(purpose)

    page = as_marketer.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))

    assert page.status_code == 200
    text = page.content.decode()
    assert "1 eligible" in text
    assert "no consent: 1" in text


def recipient_with_proof(campaign, purpose):
    contact = ContactFactory()
    record = grant(contact, purpose)
    return Recipient.objects.create(
        campaign=campaign,
        step=campaign.steps.get(),
        contact=contact,
        status=RecipientStatus.SENT,
        sent_at=timezone.now(),
        consent_record=record,
        legal_basis=LegalBasis.CONSENT,
    )


def test_recipients_link_to_the_consent_record_and_its_receipt(as_dpo: Client) -> None:
    purpose = PurposeFactory(channels=["email"])
    campaign = campaign_make(purpose)
    recipient = recipient_with_proof(campaign, purpose)

    listing = as_dpo.get(reverse("admin:campaigns_recipient_changelist"))
    receipt_url = reverse("admin:campaigns_recipient_receipt", args=[recipient.pk])

    assert listing.status_code == 200
    text = listing.content.decode()
    assert str(recipient.consent_record.uuid) in text
    assert receipt_url in text
    receipt = as_dpo.get(receipt_url)
    assert receipt.status_code == 200
    assert str(recipient.consent_record.uuid) in receipt.content.decode()


def test_recipients_are_read_only_for_marketers(as_marketer: Client) -> None:
    purpose = PurposeFactory(channels=["email"])
    recipient = recipient_with_proof(campaign_make(purpose), purpose)

    assert as_marketer.get(reverse("admin:campaigns_recipient_changelist")).status_code == 200
    assert as_marketer.get(reverse("admin:campaigns_recipient_add")).status_code == 403
    change = reverse("admin:campaigns_recipient_change", args=[recipient.pk])
    assert as_marketer.post(change, {"status": "failed"}).status_code == 403


def test_the_campaign_page_shows_its_statistics(as_dpo: Client) -> None:
    purpose = PurposeFactory(channels=["email"])
    campaign = campaign_make(purpose)
    recipient_with_proof(campaign, purpose)

    page = as_dpo.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))

    assert page.status_code == 200
    assert "targeted" in page.content.decode()


def test_cancelling_from_the_list(as_marketer: Client) -> None:
    campaign = campaign_make()

    as_marketer.post(
        reverse("admin:campaigns_campaign_changelist"),
        {"action": "cancel_campaigns", "_selected_action": [campaign.pk]},
    )

    campaign.refresh_from_db()
    assert campaign.status == "cancelled"


def test_a_marketer_saves_a_segment_and_only_saved_ones_are_offered(as_marketer: Client) -> None:
    add = reverse("admin:campaigns_segment_add")
    data = submitted_form(
        as_marketer.get(add),
        name="Clients français",
        saved="on",
        lifecycle_stages=["customer"],
        languages=["fr"],
        countries="fr, be",
        sources="salon",
    )

    assert as_marketer.post(add, data).status_code == 302

    segment = Segment.objects.get()
    assert segment.countries == ["FR", "BE"]
    assert segment.lifecycle_stages == ["customer"]
    assert segment.sources == ["salon"]
    Segment.objects.create(name="Critères d'une campagne", saved=False)
    page = as_marketer.get(ADD)
    offered = list(page.context["adminform"].form.fields["segment"].queryset)
    assert offered == [segment]


def test_a_bad_country_code_is_a_field_error(as_marketer: Client) -> None:
    add = reverse("admin:campaigns_segment_add")
    data = submitted_form(as_marketer.get(add), name="X", countries="France")

    response = as_marketer.post(add, data)

    assert response.status_code == 200
    assert not Segment.objects.exists()


def test_the_dpo_reads_campaigns_but_does_not_change_them(as_dpo: Client) -> None:
    campaign = campaign_make()
    change = reverse("admin:campaigns_campaign_change", args=[campaign.pk])

    assert as_dpo.get(change).status_code == 200
    assert as_dpo.get(ADD).status_code == 403
    as_dpo.post(change, {"name": "Renamed"})
    campaign.refresh_from_db()
    assert campaign.name == "Lettre de novembre"


def test_a_campaign_no_longer_a_draft_keeps_its_steps(as_marketer: Client) -> None:
    campaign = campaign_make()
    Campaign.objects.filter(pk=campaign.pk).update(status="scheduled")

    page = as_marketer.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))

    assert page.status_code == 200
    (steps,) = page.context["inline_admin_formsets"]
    assert not steps.has_change_permission
    assert "purpose" in page.context["adminform"].readonly_fields
