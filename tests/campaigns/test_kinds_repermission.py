"""Re-permission requests: who lacks documented consent (one rule in SQL and per contact),
one request per person with a confirm link, the one-click confirmation through HTTP, and the
deadline job withdrawing the purpose from those who did not confirm."""

import re
import secrets
from datetime import timedelta

import pytest
from django.core import mail
from django.core.files.base import ContentFile
from django.utils import timezone
from django.utils.html import escape

from campaigns.kinds import SKIP_REASON, kind_rules
from campaigns.models import Campaign, CampaignStatus, Recipient, RecipientStatus
from campaigns.repermission import (
    record_undocumented,
    repermission_campaign_create,
    repermission_deadlines_apply,
    undocumented_record_condition,
)
from campaigns.selectors import campaign_audience
from campaigns.sending import campaign_advance, campaign_send, step_batch_send
from campaigns.tasks import apply_repermission_deadlines
from consent.models import ConsentRecord, ConsentState, MessageSent
from consent.services import Evidence, consent_confirm
from contacts.models import Contact
from contacts.services import suppression_add
from core.errors import StructuredValidationError
from tests.factories import ContactFactory, PrivacyNoticeFactory, PurposeFactory, grant
from tests.queued import held_back

pytestmark = pytest.mark.django_db

CONFIRM_LINK = re.compile(r"https?://[^/\s]+(/confirm/r-[^/\s\"]+/)")


def sent_now(campaign):
    """Start the campaign and run its first step's batches here, as the workers would."""
    from campaigns.tasks import advance_campaign, send_step_batch

    with held_back(advance_campaign), held_back(send_step_batch):
        campaign_send(campaign=campaign)
        campaign_advance(campaign_id=campaign.pk)
    step = campaign.steps.get(position=1)
    batch = 0
    while step_batch_send(step_id=step.pk, batch=f"b{batch}").more:
        batch += 1
    with held_back(advance_campaign), held_back(send_step_batch):
        campaign_advance(campaign_id=campaign.pk)
    campaign.refresh_from_db()


def request_make(purpose, **kwargs):
    return repermission_campaign_create(
        purpose=purpose,
        deadline=kwargs.pop("deadline", timezone.now() + timedelta(days=30)),
        **kwargs,
    )


def state(contact, purpose, channel="email"):
    return ConsentState.objects.select_related("record").get(
        contact=contact, purpose=purpose, channel=channel
    )


@pytest.fixture
def purpose():
    return PurposeFactory()


def legacy_grant(contact, purpose, **fields):
    """A grant as the ledger kept it before the write path checked its proof (a migrated
    record): a row of its own, with the contact's state for the pair pointing at it."""
    now = timezone.now()
    version = purpose.current_version
    record = ConsentRecord.objects.create(
        contact=contact,
        purpose=purpose,
        purpose_version=version,
        channel="email",
        action="grant",
        status="granted",
        given_at=now,
        recorded_at=now,
        contact_seq=1,
        hash_version=1,
        previous_hash="0" * 64,
        hash=secrets.token_hex(32),
        **fields,
    )
    ConsentState.objects.create(
        contact=contact,
        purpose=purpose,
        channel="email",
        status="granted",
        purpose_version=version,
        record=record,
        since=now,
    )
    return record


@pytest.fixture
def ledger(purpose, tmp_path, settings):
    """Contacts whose live email grant comes from each kind of record, named by it."""
    settings.MEDIA_ROOT = tmp_path
    wording = purpose.current_version.wording_fr
    contacts = {}

    def make(name, **kwargs):
        contact = ContactFactory()
        grant(contact, purpose, "email", **kwargs)
        contacts[name] = contact

    def document():
        return ContentFile(b"%PDF-1.4 signed", name="form.pdf")

    make("web_form")  # wording, unticked box, IP: documented
    make("preference_center", source_kind="preference_center", evidence=Evidence(wording=wording))
    make("admin_with_document", source_kind="admin", evidence=Evidence(document=document()))
    make("paper_form", source_kind="paper_form", evidence=Evidence(document=document()))
    make("admin_bare", source_kind="admin", evidence=Evidence(wording=wording))
    make("import", source_kind="import")
    make("crm", source_kind="crm")
    make("system", source_kind="system", evidence=Evidence())
    double = PurposeFactory(double_opt_in=True)
    confirmed = ContactFactory()
    pending = grant(confirmed, double, "email")
    consent_confirm(contact=confirmed, record_uuids=[str(pending.uuid)])
    contacts["confirmed"] = confirmed
    for name, fields in {
        "legacy_form": {"source_kind": "web_form", "wording": wording, "unticked_by_default": True},
        "legacy_no_wording": {"source_kind": "web_form", "unticked_by_default": True},
        "legacy_box_unstated": {"source_kind": "api", "wording": wording},
        "legacy_paper": {"source_kind": "paper_form", "evidence_digest": "f" * 64},
    }.items():
        contacts[name] = ContactFactory()
        legacy_grant(contacts[name], purpose, **fields)
    return contacts


DOCUMENTED = {
    "web_form",
    "preference_center",
    "admin_with_document",
    "paper_form",
    "legacy_form",
    "legacy_paper",
}
UNDOCUMENTED = {
    "admin_bare",
    "import",
    "crm",
    "system",
    "legacy_no_wording",
    "legacy_box_unstated",
}


def test_documented_consent_is_one_rule_in_sql_and_per_record(ledger):
    records = list(ConsentRecord.objects.all())
    in_sql = set(
        ConsentRecord.objects.filter(undocumented_record_condition()).values_list("pk", flat=True)
    )
    per_record = {record.pk for record in records if record_undocumented(record)}
    assert in_sql == per_record
    by_contact = {record.contact_id: record for record in records if record.action == "grant"}
    undocumented = {name for name, c in ledger.items() if by_contact[c.pk].pk in per_record}
    assert undocumented == UNDOCUMENTED
    confirmation = ConsentRecord.objects.get(contact=ledger["confirmed"], action="confirm")
    assert not record_undocumented(confirmation)


def test_the_request_reasons_agree_in_sql_and_per_contact(ledger, purpose):
    no_consent = ContactFactory()
    withdrawn = ContactFactory()
    grant(withdrawn, purpose, "email", source_kind="admin", evidence=Evidence())
    grant(withdrawn, purpose, "email", action="withdraw", evidence=None)
    suppressed = ContactFactory()
    grant(suppressed, purpose, "email", source_kind="import")
    suppression_add(reason="unsubscribed", email=suppressed.email)
    erased = ContactFactory()
    grant(erased, purpose, "email", source_kind="import")
    Contact.objects.filter(pk=erased.pk).update(status="erased")
    asked = ContactFactory()
    grant(asked, purpose, "email", source_kind="import")
    earlier = request_make(purpose)
    sent_now(earlier)
    campaign = request_make(purpose)
    step = campaign.steps.get()
    rules, now = kind_rules(campaign), timezone.now()
    annotated = rules.with_reason(campaign, step, Contact.objects.all(), now)
    in_sql = dict(annotated.values_list("pk", SKIP_REASON))
    for contact in Contact.objects.all():
        explained = rules.explain(campaign, step, contact, now)
        assert in_sql[contact.pk] == (explained[0] if explained else ""), contact
    eligible = rules.eligible_ids(campaign, step, list(in_sql), now)
    assert eligible == {pk for pk, reason in in_sql.items() if reason == ""}
    assert in_sql[ledger["web_form"].pk] == "consent_documented"
    assert in_sql[asked.pk] == "already_asked"
    assert in_sql[no_consent.pk] == "no_consent"
    assert in_sql[withdrawn.pk] == "no_consent"
    assert in_sql[suppressed.pk] == "suppressed"
    assert in_sql[erased.pk] == "erased"
    [audience] = campaign_audience(campaign)
    assert audience.eligible == len(eligible) == 0  # the earlier request asked them all
    assert audience.excluded["already_asked"] == len(UNDOCUMENTED) + 1


def test_only_undocumented_grants_get_one_request_with_their_confirm_link(ledger, purpose):
    english = ContactFactory(language="en")
    grant(english, purpose, "email", source_kind="import")
    campaign = request_make(purpose)
    mail.outbox.clear()
    sent_now(campaign)
    asked = {*(ledger[name].email for name in UNDOCUMENTED), english.email}
    assert {message.to[0] for message in mail.outbox} == asked
    links = {CONFIRM_LINK.search(message.body).group(1) for message in mail.outbox}
    assert len(links) == len(asked)  # one link per person
    [to_english] = [m for m in mail.outbox if m.to[0] == english.email]
    assert "confirm it in one click" in to_english.body
    assert "List-Unsubscribe" in to_english.extra_headers  # marketing: one-click unsubscribe
    html = to_english.alternatives[0][0]
    assert CONFIRM_LINK.search(html)
    rows = Recipient.objects.filter(campaign=campaign)
    for row in rows.filter(status=RecipientStatus.SENT):
        assert row.consent_record_id == state(row.contact, purpose).record_id
    skipped = dict(rows.filter(status="skipped").values_list("contact_id", "exclusion_reason"))
    assert {skipped[ledger[name].pk] for name in DOCUMENTED} == {"consent_documented"}
    assert MessageSent.objects.filter(purpose=purpose).count() == len(asked)

    second = request_make(purpose)
    mail.outbox.clear()
    sent_now(second)
    assert mail.outbox == []
    reasons = set(
        Recipient.objects.filter(campaign=second).values_list("exclusion_reason", flat=True)
    )
    assert reasons == {"already_asked", "consent_documented", "no_consent"}  # no_consent:
    # the contact whose only grant is for another purpose


def test_one_click_on_the_link_records_a_documented_grant(client, purpose):
    notice = PrivacyNoticeFactory()
    contact = ContactFactory(language="fr")
    grant(contact, purpose, "email", source_kind="import")
    campaign = request_make(purpose)
    mail.outbox.clear()
    sent_now(campaign)
    path = CONFIRM_LINK.search(mail.outbox[0].body).group(1)

    page = client.get(path)
    assert page.status_code == 200
    assert escape(purpose.current_version.wording_fr) in page.content.decode()
    assert state(contact, purpose).record.source_kind == "import"  # a GET changes nothing

    answer = client.post(path, HTTP_USER_AGENT="Mozilla/5.0 (clicked)", REMOTE_ADDR="198.51.100.4")
    assert answer.status_code == 200
    record = state(contact, purpose).record
    assert (record.action, record.status, record.source_kind) == (
        "grant",
        "granted",
        "email_confirmation",
    )
    assert record.source_reference == f"repermission:{campaign.public_id}"
    assert record.wording == purpose.current_version.wording_fr
    assert record.policy_version == notice.version
    assert record.personal_evidence.user_agent == "Mozilla/5.0 (clicked)"
    assert not record_undocumented(record)

    client.post(path)  # clicked twice: nothing more
    assert ConsentRecord.objects.filter(contact=contact).count() == 2
    assert client.get("/confirm/r-forged/").status_code == 404


def test_at_the_deadline_those_who_did_not_confirm_lose_the_purpose(client, purpose):
    silent, clicked, left = (ContactFactory() for _ in range(3))
    for contact in (silent, clicked, left):
        grant(contact, purpose, "email", source_kind="import")
    sms_grant = grant(silent, PurposeFactory(), "email", source_kind="import")
    campaign = request_make(purpose)
    mail.outbox.clear()
    sent_now(campaign)
    assert campaign.status == CampaignStatus.SENT
    links = {m.to[0]: CONFIRM_LINK.search(m.body).group(1) for m in mail.outbox}
    client.post(links[clicked.email])
    grant(left, purpose, "email", action="withdraw", evidence=None)

    assert apply_repermission_deadlines.apply().get() == 0  # the deadline is a month away
    Campaign.objects.filter(pk=campaign.pk).update(deadline=timezone.now() - timedelta(minutes=1))
    assert client.post(links[silent.email]).status_code == 200
    assert state(silent, purpose).record.source_kind == "import"  # the link has closed

    assert apply_repermission_deadlines.apply().get() == 1
    lapsed = state(silent, purpose)
    assert lapsed.status == "withdrawn"
    assert (lapsed.record.action, lapsed.record.source_kind, lapsed.record.actor) == (
        "withdraw",
        "system",
        "system",
    )
    assert lapsed.record.source_reference == f"repermission:{campaign.public_id}"
    assert state(clicked, purpose).status == "granted"
    assert state(left, purpose).record.source_kind != "system"  # withdrawn by the person
    assert state(silent, sms_grant.purpose).status == "granted"  # another purpose: untouched
    campaign.refresh_from_db()
    assert campaign.deadline_applied_at is not None
    records = ConsentRecord.objects.count()
    Campaign.objects.filter(pk=campaign.pk).update(deadline_applied_at=None)
    assert apply_repermission_deadlines.apply().get() == 0  # run again: nothing more
    assert ConsentRecord.objects.count() == records


def test_a_request_needs_a_deadline_ahead(purpose):
    with pytest.raises(StructuredValidationError) as error:
        request_make(purpose, deadline=timezone.now() - timedelta(days=1))
    assert "deadline" in error.value.detail


def test_a_request_whose_deadline_passed_before_it_left_sends_nothing(purpose):
    contact = ContactFactory()
    grant(contact, purpose, "email", source_kind="import")
    campaign = request_make(purpose)
    Campaign.objects.filter(pk=campaign.pk).update(deadline=timezone.now() - timedelta(hours=1))
    campaign.refresh_from_db()
    mail.outbox.clear()
    sent_now(campaign)
    assert mail.outbox == []
    assert Recipient.objects.get(campaign=campaign).exclusion_reason == "deadline_passed"


def test_the_deadline_goes_through_the_recipients_in_batches(purpose):
    silent = [ContactFactory() for _ in range(3)]
    for contact in silent:
        grant(contact, purpose, "email", source_kind="crm")
    campaign = request_make(purpose)
    sent_now(campaign)
    Campaign.objects.filter(pk=campaign.pk).update(deadline=timezone.now())

    assert repermission_deadlines_apply(batch_size=2) == 3
    assert {state(contact, purpose).status for contact in silent} == {"withdrawn"}
