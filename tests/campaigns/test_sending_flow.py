"""A campaign's flow over time and over the workers: scheduled campaigns start at their time,
later steps after their delay (for everyone, or for those the previous step did not reach,
once it is over), cancelling stops the batches, each batch re-checks eligibility and the
frequency caps (which transactional emails do not count), each row is written and sent
once, and a batch's statements grow by a small constant per message."""

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.db.models import Count
from freezegun import freeze_time

from campaigns.models import CampaignStatus, Recipient, RecipientStatus
from campaigns.sending import (
    campaign_advance,
    campaign_send,
    campaigns_advance,
    step_batch_send,
    step_begin,
)
from campaigns.services import campaign_cancel
from consent.models import MessageSent
from consent.tasks import send_double_opt_in_confirmation
from contacts.models import EmailDeliverability
from contacts.services import contact_pause, suppression_add
from privacy.models import PrivacyRequestStatus
from privacy.services import privacy_request_transition
from privacy.tasks import send_privacy_request_decision
from tests.campaigns.running import advanced, campaign_started, queued_after_commit, step_run
from tests.campaigns.smtp_sink import REFUSED_ADDRESS
from tests.consent.concurrency import run_concurrently
from tests.factories import (
    ContactFactory,
    PrivacyRequestFactory,
    PurposeFactory,
    campaign_make,
    email_step,
    grant,
)
from tests.queued import held_back
from tests.statements import at_most_statements

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
MORNING = datetime(2026, 12, 1, 10, 0, tzinfo=PARIS)


def sms_step(**fields: object) -> dict[str, object]:
    return {"channel": "sms", "sms_text_fr": "Rappel : -20 % jusqu'à dimanche", **fields}


def person(purpose, channels=("email",), **fields):
    contact = ContactFactory(**fields)
    for channel in channels:
        grant(contact, purpose, channel)
    return contact


def rows_of(campaign, position: int) -> dict[int, Recipient]:
    return {
        row.contact_id: row
        for row in Recipient.objects.filter(campaign=campaign, step__position=position)
    }


@pytest.fixture
def sms_folder(settings, tmp_path):
    settings.SMS_URL = f"file://{tmp_path}"
    return tmp_path


# --- time -----------------------------------------------------------------------------------


def test_a_scheduled_campaign_starts_at_its_time_and_not_before():
    with freeze_time(MORNING):
        purpose = PurposeFactory()
        person(purpose)
        campaign = campaign_make(purpose)
        at = MORNING + timedelta(hours=4)
        with queued_after_commit() as queued:
            campaign = campaign_send(campaign=campaign, at=at)
        assert (campaign.status, campaign.scheduled_at, queued) == (
            CampaignStatus.SCHEDULED,
            at,
            [],
        )

        with queued_after_commit() as batches:
            assert campaigns_advance(now=at - timedelta(minutes=1)) == 0
        campaign.refresh_from_db()
        assert (campaign.status, batches) == (CampaignStatus.SCHEDULED, [])
        assert not Recipient.objects.exists()

        with queued_after_commit() as batches:
            assert campaigns_advance(now=at) == 1
    campaign.refresh_from_db()
    step = campaign.steps.get()
    assert (campaign.status, campaign.started_at, step.started_at) == (
        CampaignStatus.SENDING,
        at,
        at,
    )
    assert batches == [(step.pk,)]
    assert Recipient.objects.filter(campaign=campaign, status=RecipientStatus.QUEUED).count() == 1


def test_a_later_step_for_everyone_starts_its_delay_after_the_previous_one(sms_folder):
    with freeze_time(MORNING) as clock:
        purpose = PurposeFactory()
        both = person(purpose, ("email", "sms"), phone="0611111111")
        sms_only = person(purpose, ("sms",), phone="0622222222")
        email_only = person(purpose, ("email",))
        campaign = campaign_make(purpose, steps=[email_step(), sms_step(delay_hours=24)])
        campaign_started(campaign)
        step_run(campaign.steps.get(position=1))

        clock.move_to(MORNING + timedelta(hours=23, minutes=59))
        advanced(campaign)
        assert rows_of(campaign, 2) == {}
        clock.move_to(MORNING + timedelta(hours=24))
        batches = advanced(campaign)
        second = campaign.steps.get(position=2)
        assert batches == [(second.pk,)]
        assert second.started_at == MORNING + timedelta(hours=24)
        step_run(second)

    rows = rows_of(campaign, 2)
    assert set(rows) == {both.pk, sms_only.pk, email_only.pk}  # the whole audience
    assert rows[both.pk].status == rows[sms_only.pk].status == RecipientStatus.SENT
    assert (rows[email_only.pk].status, rows[email_only.pk].exclusion_reason) == (
        RecipientStatus.SKIPPED,
        "no_consent",
    )
    assert len(list(sms_folder.glob("*.json"))) == 2


def test_an_sms_step_for_those_the_email_missed_waits_for_the_email_step_and_targets_only_them(
    smtp_sink, sms_folder
):
    with freeze_time(MORNING) as clock:
        purpose = PurposeFactory()
        channels = ("email", "sms")
        reached = person(purpose, channels, phone="0611111111")
        bounced = person(purpose, channels, phone="0622222222")
        refused = person(purpose, channels, phone="0633333333", email=REFUSED_ADDRESS)
        undeliverable = person(
            purpose,
            channels,
            phone="0644444444",
            email_deliverability=EmailDeliverability.HARD_BOUNCE,
        )
        no_email_consent = person(purpose, ("sms",), phone="0655555555")
        campaign = campaign_make(
            purpose,
            steps=[email_step(), sms_step(delay_hours=2, condition="previous_not_delivered")],
        )
        campaign_started(campaign)

        # the delay is over, but the email step is not: the SMS step waits for it (beat only
        # queues the email step's batches again, none having run)
        clock.move_to(MORNING + timedelta(hours=3))
        assert advanced(campaign) == [(campaign.steps.get(position=1).pk,)]
        assert rows_of(campaign, 2) == {}

        step_run(campaign.steps.get(position=1))
        # as the ESP's feedback marks a row whose message bounced
        Recipient.objects.filter(step__position=1, contact=bounced).update(
            status=RecipientStatus.BOUNCED
        )
        clock.move_to(MORNING + timedelta(hours=3, minutes=1))
        advanced(campaign)
        step_run(campaign.steps.get(position=2))

    first, second = rows_of(campaign, 1), rows_of(campaign, 2)
    assert first[refused.pk].status == RecipientStatus.FAILED
    assert first[undeliverable.pk].exclusion_reason == "undeliverable"
    assert first[no_email_consent.pk].exclusion_reason == "no_consent"
    assert first[reached.pk].status == RecipientStatus.SENT
    assert set(second) == {bounced.pk, refused.pk, undeliverable.pk}
    assert {row.status for row in second.values()} == {RecipientStatus.SENT}
    assert len(list(sms_folder.glob("*.json"))) == 3


def test_a_step_that_reached_everyone_leaves_nobody_for_the_next_one():
    purpose = PurposeFactory()
    person(purpose, ("email", "sms"), phone="0611111111")
    campaign = campaign_make(
        purpose, steps=[email_step(), sms_step(condition="previous_not_delivered")]
    )
    campaign_started(campaign)
    step_run(campaign.steps.get(position=1))
    advanced(campaign)
    advanced(campaign)
    campaign.refresh_from_db()
    assert rows_of(campaign, 2) == {}
    assert campaign.status == CampaignStatus.SENT


# --- cancelling and the re-check ------------------------------------------------------------


def test_cancelling_while_sending_stops_the_batches_left(settings):
    settings.CAMPAIGN_BATCH_SIZE = 2
    purpose = PurposeFactory()
    for _index in range(5):
        person(purpose)
    campaign = campaign_make(purpose)
    queued = campaign_started(campaign)
    step = campaign.steps.get()
    assert len(queued) == 3  # ceil(5 / 2) batches, fewer than CAMPAIGN_PARALLEL_BATCHES
    mail.outbox.clear()
    first = step_batch_send(step_id=step.pk, batch="first")
    assert (first.sent, first.more) == (2, True)

    campaign_cancel(campaign=campaign)
    later = [step_batch_send(step_id=step.pk, batch=f"later-{i}") for i in range(2)]

    assert [result.sent for result in later] == [0, 0]
    assert len(mail.outbox) == 2
    counts = dict(
        Recipient.objects.filter(campaign=campaign)
        .values_list("status")
        .annotate(count=Count("pk"))
        .values_list("status", "count")
    )
    assert counts == {RecipientStatus.SENT: 2, RecipientStatus.QUEUED: 3}
    assert advanced(campaign) == []
    assert campaigns_advance() == 0
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.CANCELLED


def test_each_batch_checks_again_who_unsubscribed_was_suppressed_or_paused_since_the_claim():
    purpose = PurposeFactory()
    withdrawn, suppressed, paused, still = (person(purpose) for _index in range(4))
    campaign = campaign_make(purpose)
    campaign_started(campaign)
    assert Recipient.objects.filter(status=RecipientStatus.QUEUED).count() == 4

    # between the claim of the audience and the batch
    grant(withdrawn, purpose, "email", action="withdraw", evidence=None)
    suppression_add(reason="unsubscribed", email=suppressed.email)
    contact_pause(contact=paused, months=1)
    mail.outbox.clear()
    [result] = step_run(campaign.steps.get())

    assert (result.sent, result.skipped) == (1, 3)
    assert [message.to for message in mail.outbox] == [[still.email]]
    rows = rows_of(campaign, 1)
    assert {contact_id: row.exclusion_reason for contact_id, row in rows.items()} == {
        withdrawn.pk: "no_consent",
        suppressed.pk: "suppressed",
        paused.pk: "paused",
        still.pk: "",
    }
    assert {row.status for pk, row in rows.items() if pk != still.pk} == {RecipientStatus.SKIPPED}
    assert list(MessageSent.objects.values_list("contact_id", flat=True)) == [still.pk]


# --- frequency ------------------------------------------------------------------------------


def test_a_person_at_the_daily_cap_is_skipped_for_frequency(settings):
    settings.MARKETING_CAPS = {"day": 1, "week": 3}
    news, offers = PurposeFactory(), PurposeFactory()
    heard_today = person(news)
    grant(heard_today, offers, "email")
    not_yet = person(offers)
    campaign_started(first := campaign_make(news, name="Lettre"))
    step_run(first.steps.get())

    mail.outbox.clear()
    second = campaign_make(offers, name="Soldes")
    campaign_started(second)
    step_run(second.steps.get())

    assert [message.to for message in mail.outbox] == [[not_yet.email]]
    row = Recipient.objects.get(campaign=second, contact=heard_today)
    assert (row.status, row.exclusion_reason) == (RecipientStatus.SKIPPED, "frequency")


def test_transactional_emails_do_not_count_towards_the_caps(settings):
    settings.MARKETING_CAPS = {"day": 1, "week": 3}
    offers = PurposeFactory()
    confirmed_later = PurposeFactory(double_opt_in=True)
    contact = person(offers)
    # a double opt-in confirmation, as the task sends it after the grant
    with held_back(send_double_opt_in_confirmation) as confirmations, queued_after_commit():
        grant(contact, confirmed_later, "email")
    assert confirmations == [(contact.pk,)]
    mail.outbox.clear()
    send_double_opt_in_confirmation(*confirmations[0])
    # and a privacy request's decision, emailed to the person
    request = PrivacyRequestFactory(contact=contact)
    with held_back(send_privacy_request_decision) as decisions, queued_after_commit():
        privacy_request_transition(
            request=request, status=PrivacyRequestStatus.REJECTED, by="dpo", note="Doublon"
        )
    send_privacy_request_decision(*decisions[0])
    assert [message.to for message in mail.outbox] == [[contact.email], [contact.email]]

    mail.outbox.clear()
    campaign = campaign_make(offers)
    campaign_started(campaign)
    step_run(campaign.steps.get())

    assert [message.to for message in mail.outbox] == [[contact.email]]
    assert Recipient.objects.get(campaign=campaign).status == RecipientStatus.SENT
    assert MessageSent.objects.filter(contact=contact).count() == 1


# --- once -----------------------------------------------------------------------------------


def test_each_row_is_written_once_however_often_the_step_begins_or_the_campaign_advances():
    purpose = PurposeFactory()
    people = [person(purpose) for _index in range(3)]
    ContactFactory()  # skipped: no consent
    campaign = campaign_make(purpose)
    campaign_started(campaign)
    step = campaign.steps.get()

    assert step_begin(campaign=campaign, step=step, at=step.started_at) == 0
    advanced(campaign)
    campaigns_advance()
    campaign_advance(campaign_id=campaign.pk)

    per_contact = (
        Recipient.objects.filter(campaign=campaign).values("contact_id").annotate(n=Count("pk"))
    )
    assert len(per_contact) == 4 and {row["n"] for row in per_contact} == {1}
    mail.outbox.clear()
    step_run(step)
    step_run(step, prefix="again")
    assert sorted(message.to[0] for message in mail.outbox) == sorted(p.email for p in people)


def test_two_batches_never_take_the_same_row(settings):
    settings.CAMPAIGN_BATCH_SIZE = 3
    purpose = PurposeFactory()
    for _index in range(7):
        person(purpose)
    campaign = campaign_make(purpose)
    campaign_started(campaign)
    step = campaign.steps.get()
    mail.outbox.clear()

    results = [step_batch_send(step_id=step.pk, batch=name) for name in ("a", "b", "c", "d")]

    assert [result.sent for result in results] == [3, 3, 1, 0]
    addresses = [message.to[0] for message in mail.outbox]
    assert len(addresses) == len(set(addresses)) == 7


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_batches_running_at_once_on_several_workers_send_each_row_once(settings):
    settings.CAMPAIGN_BATCH_SIZE = 5
    purpose = PurposeFactory()
    people = [person(purpose) for _index in range(40)]
    campaign = campaign_make(purpose)
    campaign_started(campaign)
    step = campaign.steps.get()
    mail.outbox.clear()

    def worker_batches() -> int:
        sent = 0
        while True:  # each batch under an id of its own, as each task has
            result = step_batch_send(step_id=step.pk, batch=uuid.uuid4().hex)
            sent += result.sent
            if not result.more and not result.sent:
                return sent

    sent = run_concurrently(worker_batches, times=4)

    assert sum(sent) == 40
    addresses = sorted(message.to[0] for message in mail.outbox)
    assert addresses == sorted(p.email for p in people)
    assert MessageSent.objects.count() == 40


# --- cost -----------------------------------------------------------------------------------

# What one message costs a batch: its reservation (the row still this batch's, the contact
# locked, the eligibility rule checked for them again, its MessageSent written), then its
# preference link and its row marked sent.
STATEMENTS_PER_MESSAGE = 6
# What a batch costs whatever its size: the step and campaign, the claim (read, update, read
# back), the rows and their people's interests, the purpose's wording, the eligibility
# re-check for the batch, the justifying records, the controller's identity, and
# whether rows are left.
STATEMENTS_PER_BATCH = 14


@pytest.mark.parametrize("size", [3, 30])
def test_a_batch_costs_a_few_statements_per_message_and_a_constant(settings, size):
    settings.CAMPAIGN_BATCH_SIZE = size
    purpose = PurposeFactory()
    for _index in range(size):
        person(purpose)
    campaign = campaign_make(purpose)
    campaign_started(campaign)
    mail.outbox.clear()

    with at_most_statements(STATEMENTS_PER_BATCH + STATEMENTS_PER_MESSAGE * size):
        result = step_batch_send(step_id=campaign.steps.get().pk, batch="measured")

    assert result.sent == size == len(mail.outbox)
