"""The notices the law requires: a privacy policy update to every contact the channel can
reach, a breach notification to the persons concerned, both whatever the marketing choices,
without unsubscribe header, caps or purpose; created by their services and from the admin."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns.kinds import SKIP_REASON, kind_rules
from campaigns.models import Campaign, CampaignKind, Recipient, RecipientStatus
from campaigns.notices import breach_notice_campaign_create, policy_update_campaign_create
from campaigns.selectors import campaign_audience
from consent.models import MessageSent
from contacts.models import Contact
from contacts.services import suppression_add
from core.errors import StructuredValidationError
from tests.admin.conftest import otp_verified_login
from tests.campaigns.test_kinds_repermission import sent_now
from tests.factories import ContactFactory, PrivacyNoticeFactory, PurposeFactory, UserFactory, grant

pytestmark = pytest.mark.django_db

BREACH = {
    "nature": {
        "fr": "Un fichier de {{ clients }} a été exposé.",
        "en": "A file of {{ customers }} was exposed.",
    },
    "consequences": {"fr": "Risque d'hameçonnage.", "en": "A risk of phishing."},
    "measures": {"fr": "Mots de passe réinitialisés.", "en": "Passwords were reset."},
}


@pytest.fixture
def people():
    """Contacts of every marketing situation, and those no notice can reach."""
    purpose = PurposeFactory()
    granted = ContactFactory(language="en")
    grant(granted, purpose, "email")
    withdrawn = ContactFactory()
    grant(withdrawn, purpose, "email")
    grant(withdrawn, purpose, "email", action="withdraw", evidence=None)
    suppressed = ContactFactory()
    suppression_add(reason="unsubscribed", email=suppressed.email)
    paused = ContactFactory(paused_until="2999-01-01T00:00:00Z")
    bounced = ContactFactory(email_deliverability="hard_bounce")
    erased = ContactFactory()
    Contact.objects.filter(pk=erased.pk).update(status="erased")
    merged = ContactFactory()
    Contact.objects.filter(pk=merged.pk).update(status="merged")
    return {
        "reached": [granted, withdrawn, suppressed, paused, ContactFactory()],
        "skipped": {bounced.pk: "undeliverable", erased.pk: "erased", merged.pk: "merged"},
    }


def test_a_policy_update_reaches_everyone_reachable_whatever_their_choices(people):
    notice = PrivacyNoticeFactory(url="https://www.example.fr/confidentialite/2026-07")
    campaign = policy_update_campaign_create(summary={"fr": "Durées de conservation réduites."})
    assert campaign.purpose is None and campaign.kind == CampaignKind.POLICY_UPDATE
    mail.outbox.clear()
    sent_now(campaign)

    reached = {contact.email for contact in people["reached"]}
    assert {message.to[0] for message in mail.outbox} == reached
    for message in mail.outbox:
        assert "List-Unsubscribe" not in message.extra_headers
        assert notice.url in message.body and notice.version in message.body
        assert "under the choices you made" not in message.body  # no purpose line
    [english] = [m for m in mail.outbox if m.to[0] == people["reached"][0].email]
    assert english.subject == "An update to our privacy notice"
    assert "Durées de conservation réduites." in english.body  # English falls back to French
    [french] = [m for m in mail.outbox if m.to[0] == people["reached"][1].email]
    assert "politique de confidentialité" in french.body
    rows = Recipient.objects.filter(campaign=campaign)
    skipped = dict(rows.filter(status="skipped").values_list("contact_id", "exclusion_reason"))
    assert skipped == people["skipped"]
    assert set(rows.filter(status="sent").values_list("legal_basis", flat=True)) == {
        "legal_obligation"
    }
    assert not rows.filter(consent_record__isnull=False).exists()
    assert not MessageSent.objects.exists()  # exempt from the caps


def test_the_notice_rule_agrees_in_sql_and_per_contact(people):
    PrivacyNoticeFactory()
    campaign = policy_update_campaign_create()
    step = campaign.steps.get()
    rules = kind_rules(campaign)
    in_sql = dict(
        rules.with_reason(campaign, step, Contact.objects.all(), None).values_list(
            "pk", SKIP_REASON
        )
    )
    for contact in Contact.objects.all():
        explained = rules.explain(campaign, step, contact, None)
        assert in_sql[contact.pk] == (explained[0] if explained else "")
    assert rules.eligible_ids(campaign, step, list(in_sql), None) == {
        contact.pk for contact in people["reached"]
    }
    [audience] = campaign_audience(campaign)
    assert audience.eligible == len(people["reached"])
    assert audience.excluded == {"undeliverable": 1, "erased": 1, "merged": 1}


def test_a_breach_notification_reaches_only_the_persons_concerned(people, settings):
    concerned = [people["reached"][0], people["reached"][2], ContactFactory(language="fr")]
    bounced = next(pk for pk, reason in people["skipped"].items() if reason == "undeliverable")
    campaign = breach_notice_campaign_create(
        contacts=[contact.pk for contact in concerned] + [bounced], **BREACH
    )
    mail.outbox.clear()
    sent_now(campaign)

    assert {message.to[0] for message in mail.outbox} == {c.email for c in concerned}
    [english] = [m for m in mail.outbox if m.to[0] == concerned[0].email]
    assert "A file of {{ customers }} was exposed." in english.body  # literal, not a template
    assert "A risk of phishing." in english.body and "Passwords were reset." in english.body
    assert settings.DPO_CONTACT in english.body
    assert "List-Unsubscribe" not in english.extra_headers
    [french] = [m for m in mail.outbox if m.to[0] == concerned[2].email]
    assert "Un fichier de {{ clients }} a été exposé." in french.body
    assert "violation de données" in french.body
    rows = Recipient.objects.filter(campaign=campaign)
    assert rows.count() == 4
    assert rows.get(contact_id=bounced).exclusion_reason == "undeliverable"
    assert rows.filter(status=RecipientStatus.SENT).count() == 3


def test_a_breach_notification_names_its_persons_one_way():
    for targets in ({}, {"contacts": [1], "segment": object()}):
        with pytest.raises(StructuredValidationError) as error:
            breach_notice_campaign_create(**targets, **BREACH)  # type: ignore[arg-type]
        assert "contacts" in error.value.detail
    with pytest.raises(StructuredValidationError) as error:
        breach_notice_campaign_create(contacts=[], **{**BREACH, "measures": ""})
    assert "measures" in error.value.detail


def test_a_policy_update_needs_a_published_notice():
    with pytest.raises(StructuredValidationError) as error:
        policy_update_campaign_create()
    assert "notice" in error.value.detail


def test_a_notice_has_no_purpose_and_other_kinds_have_one():
    notice = Campaign(name="n", kind=CampaignKind.BREACH_NOTICE, purpose=PurposeFactory())
    with pytest.raises(ValidationError) as error:
        notice.full_clean()
    assert "purpose" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        Campaign(name="r", kind=CampaignKind.REGULAR).full_clean()
    assert "purpose" in error.value.message_dict


def test_staff_create_each_built_in_kind_from_the_admin(client, settings):
    PrivacyNoticeFactory()
    purpose = PurposeFactory()
    staff = UserFactory(is_superuser=True, is_staff=True)
    otp_verified_login(client, staff)
    url = "/admin/campaigns/builtincampaign/add/"
    assert client.get(url).status_code == 200

    answer = client.post(url, {"kind": "repermission", "purpose": purpose.pk})
    assert answer.status_code == 200 and not Campaign.objects.exists()  # no deadline
    deadline = timezone.localtime() + timedelta(days=60)
    answer = client.post(
        url,
        {"kind": "repermission", "purpose": purpose.pk, "deadline": f"{deadline:%Y-%m-%d} 12:00"},
    )
    campaign = Campaign.objects.get(kind="repermission")
    assert answer.status_code == 302
    assert answer["Location"] == f"/admin/campaigns/campaign/{campaign.pk}/change/"
    assert campaign.created_by == staff and campaign.deadline.date() == deadline.date()
    assert "{{ confirm_url }}" in campaign.steps.get().body_text_fr

    client.post(url, {"kind": "policy_update", "summary_en": "Shorter retention."})
    assert (
        "Shorter retention." in Campaign.objects.get(kind="policy_update").steps.get().body_text_en
    )
    answer = client.post(
        url, {"kind": "breach_notice", **{f"{k}_fr": v["fr"] for k, v in BREACH.items()}}
    )
    assert answer.status_code == 200  # the persons concerned: a segment
    assert not Campaign.objects.filter(kind="breach_notice").exists()
    listing = client.get("/admin/campaigns/builtincampaign/")
    assert listing.status_code == 200 and campaign.name in listing.content.decode()


def test_a_notice_reads_through_the_api_and_the_admin_without_a_purpose(api, client):
    PrivacyNoticeFactory()
    ContactFactory()
    ContactFactory(email_deliverability="hard_bounce")
    campaign = policy_update_campaign_create()
    reader = api(["campaigns:read"])

    body = reader.get(f"/api/v1/campaigns/{campaign.public_id}/").json()
    assert body["purpose"] is None and body["kind"] == "policy_update"
    audience = reader.get(f"/api/v1/campaigns/{campaign.public_id}/audience/").json()
    assert audience["steps"][0]["eligible"] == 1
    assert audience["steps"][0]["excluded"] == {"undeliverable": 1}

    otp_verified_login(client, UserFactory(is_superuser=True))
    page = client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert "1 eligible" in page.content.decode()
    assert client.get(f"/admin/campaigns/builtincampaign/{campaign.pk}/change/")["Location"] == (
        f"/admin/campaigns/campaign/{campaign.pk}/change/"
    )


def test_the_campaign_form_offers_no_built_in_kind(client):
    """A re-permission request (its deadline) and the notices are made with their own form."""
    otp_verified_login(client, UserFactory(is_superuser=True))
    purpose = PurposeFactory()
    answer = client.post(
        "/admin/campaigns/campaign/add/",
        {
            "name": "Redemande",
            "kind": "repermission",
            "purpose": purpose.pk,
            "steps-TOTAL_FORMS": "1",
            "steps-INITIAL_FORMS": "0",
            "steps-0-position": "1",
            "steps-0-channel": "email",
            "steps-0-delay_hours": "0",
            "steps-0-subject_fr": "Sujet",
            "steps-0-body_text_fr": "Texte",
        },
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert answer.status_code == 200
    assert answer.context["adminform"].form.errors["kind"]
    assert not Campaign.objects.exists()
