"""Sending a campaign (SPEC §3 campaigns, "Sending"): start or schedule it, claim each step's
audience once, send in batches over the workers, re-check eligibility at the moment of sending.

The flow, each part idempotent so that a lost message or a killed worker is repaired by
running it again:

- `campaign_send` starts a draft now or schedules it (`scheduled` until its time);
- `campaign_advance` (after `campaign_send`, and every minute from beat) starts what is due:
  a step begins `delay_hours` after the previous one began (a step for those the previous one
  did not reach waits until that one is over); beginning it writes one recipient row per
  contact of the segment in one set-based `INSERT ... SELECT` (unique per campaign, step and
  contact: running it twice writes nothing more), queued when eligible, skipped with the
  first reason against them otherwise; then it queues enough batch tasks for the step;
- `step_batch_send` (a task) claims up to `CAMPAIGN_BATCH_SIZE` queued rows with one
  conditional UPDATE (a row claimed by one batch is claimed by no other), re-checks
  eligibility for them in one query, then checks and reserves them again 50 at a time just
  before they leave, under the contacts' locks (at most `CAMPAIGN_RESERVATION_SECONDS`
  before: someone who unsubscribed a second ago gets nothing), sends each message and marks
  its row sent, with the consent record that justified it, by one statement as soon as it
  left. Before ending it queues the next batch.

A killed worker leaves its batch's rows `sending`: the task is delivered again (late
acknowledgement), with the same id, and carries on with the rows still `sending` under that
id; rows whose claim is older than `CLAIM_LEASE` go back to the queue. Sent rows are never
sent again. The one message in flight when the worker died (sent, not yet marked) goes again
with the same `Message-ID`, which mailbox providers use to show it once, and the same links
(`campaign_link_token`), so that the copy they keep has links that work. (An SMS has no such
identity: the one in flight may reach the person twice.)
"""

import base64
import logging
import re
import smtplib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from anymail.exceptions import (
    AnymailAPIError,
    AnymailInvalidAddress,
    AnymailRecipientsRefused,
)
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection, transaction
from django.db.models import Case, CharField, Q, QuerySet, Value, When
from django.template import Context, Engine
from django.template.loader import get_template
from django.utils import timezone, translation
from django.utils.crypto import salted_hmac
from django.utils.html import linebreaks
from django.utils.translation import gettext as _

from campaigns.kinds import SKIP_REASON, KindRules, kind_rules
from campaigns.models import (
    Campaign,
    CampaignStatus,
    CampaignStep,
    Recipient,
    RecipientStatus,
    StepChannel,
    StepCondition,
)
from campaigns.services import REQUIRED_CONTENT, step_problems
from consent.eligibility import (
    Ineligible,
    channel_quiet_at,
    sms_quiet_until,
)
from consent.models import ConsentState, ConsentStatus, LegalBasis, MessageSent
from contacts.models import Contact, Language
from core.emails import (
    identity_footer,
    list_unsubscribe_headers,
    message_compose,
    render_text,
)
from core.errors import StructuredValidationError
from core.sms import SmsSendError, sms_backend, sms_body_with_stop, sms_message_build
from core.tokens import token_hash
from preferences.models import PreferenceToken
from preferences.services import preference_url, unsubscribe_url

logger = logging.getLogger(__name__)

# The metadata keys each email carries (anymail `metadata`): the ESP hands them back with its
# tracking events, which find the recipient row by them (`contacts.webhooks`).
CAMPAIGN_METADATA_KEY = "campaign"
RECIPIENT_METADATA_KEY = "recipient"
# A message the provider refused for this recipient (an invalid or refused address or number):
# the row fails and the batch goes on. Other errors (the server unreachable) end the task,
# which is retried with its rows still claimed.
REFUSED: tuple[type[Exception], ...] = (
    SmsSendError,
    ValidationError,
    smtplib.SMTPRecipientsRefused,
    AnymailRecipientsRefused,
    AnymailInvalidAddress,
)
# An enhanced status code at the start of an SMTP answer (RFC 3463), e.g. "5.1.1".
ENHANCED_CODE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}\b")
# Why the person receives the message and the links to their choices, under each email.
FOOTER = "campaigns/email/footer"
# What the preference-link tokens of campaign messages are derived with (`campaign_link_token`).
LINK_TOKEN_SALT = "campaigns.sending.link-token"  # noqa: S105 - a salt, not a secret
# A claim older than this is taken to be a dead worker's: its rows go back to the queue.
CLAIM_LEASE = timedelta(minutes=15)
# A batch still at work renews its claim this often (seconds), well within the lease.
CLAIM_RENEWAL = 60.0
# Messages checked and reserved together, just before they leave (`_Sender._reserve`).
RESERVATION_SLICE = 50
# The columns a sent message's row gets (`_Sender._mark_sent`).
MARKED_COLUMNS = (
    "status",
    "message_id",
    "preference_token",
    "consent_record",
    "legal_basis",
    "batch",
)
# No row of a step claimed for this long: no batch is at work on it.
BATCHES_IDLE = timedelta(minutes=2)
STARTABLE = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)
# Rows a step still has to send (or to decide about).
OPEN_STATUSES = (RecipientStatus.QUEUED, RecipientStatus.SENDING)
# What a later step "for those the previous step did not reach" targets.
NOT_DELIVERED = Q(status__in=[RecipientStatus.BOUNCED, RecipientStatus.FAILED]) | Q(
    status=RecipientStatus.SKIPPED, exclusion_reason=Ineligible.UNDELIVERABLE
)


def batch_size() -> int:
    return int(settings.CAMPAIGN_BATCH_SIZE)


def reservation_seconds() -> float:
    """How long after its check a reserved message may still leave: a slice whose sending
    takes longer has the rest of its people checked and reserved again, so that nobody gets a
    message more than this after they unsubscribed (`CAMPAIGN_RESERVATION_SECONDS`)."""
    return float(settings.CAMPAIGN_RESERVATION_SECONDS)


# --- starting ------------------------------------------------------------------------------


@transaction.atomic
def campaign_send(*, campaign: Campaign, at: datetime | None = None) -> Campaign:
    """Send a draft campaign now, or at `at` when that is in the future (`scheduled`; sending
    it again reschedules it). The steps are checked again first: nothing starts on an error."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.status not in STARTABLE:
        raise StructuredValidationError(
            {"status": [_("Only a draft or scheduled campaign can be sent.")]}
        )
    steps = list(campaign.steps.order_by("position"))
    problems = [
        step_problems(
            _step_fields(step), purpose=campaign.purpose, first=index == 0, kind=campaign.kind
        )
        for index, step in enumerate(steps)
    ]
    if not steps or any(problems):
        errors: list[Any] = list(problems) or [_("A campaign needs at least one step.")]
        raise StructuredValidationError({"steps": errors})
    now = timezone.now()
    if at is not None and at > now:
        campaign.status, campaign.scheduled_at = CampaignStatus.SCHEDULED, at
    else:
        campaign.status, campaign.scheduled_at, campaign.started_at = (
            CampaignStatus.SENDING,
            now,
            now,
        )
    campaign.save(update_fields=["status", "scheduled_at", "started_at", "updated_at"])
    if campaign.status == CampaignStatus.SENDING:
        campaign_id = campaign.pk
        transaction.on_commit(lambda: _queue_advance(campaign_id))
    return campaign


def _step_fields(step: CampaignStep) -> dict[str, Any]:
    fields = {"channel": step.channel, "delay_hours": step.delay_hours, "condition": step.condition}
    for names in REQUIRED_CONTENT.values():
        fields.update({name: getattr(step, name) for name in names})
    return fields


def _queue_advance(campaign_id: int) -> None:
    from campaigns.tasks import advance_campaign

    advance_campaign.delay(campaign_id)


def _queue_batches(step_id: int, count: int) -> None:
    from campaigns.tasks import send_step_batch

    for _index in range(count):
        send_step_batch.delay(step_id)


# --- advancing: steps begin, their audience is claimed, batches are queued ------------------


def campaigns_advance(*, now: datetime | None = None) -> int:
    """Advance every campaign due or sending (beat, every minute); answers how many."""
    now = now or timezone.now()
    due = Campaign.objects.filter(
        Q(status=CampaignStatus.SENDING) | Q(status=CampaignStatus.SCHEDULED, scheduled_at__lte=now)
    ).values_list("pk", flat=True)
    count = 0
    for campaign_id in due:
        campaign_advance(campaign_id=campaign_id, now=now)
        count += 1
    return count


def campaign_advance(*, campaign_id: int, now: datetime | None = None) -> Campaign | None:
    """Start a scheduled campaign whose time has come, begin its steps that are due, queue
    batches for the rows waiting, and close the steps and the campaign that are done."""
    now = now or timezone.now()
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
        if campaign is None:
            return None
        scheduled_at = campaign.scheduled_at
        if campaign.status == CampaignStatus.SCHEDULED and scheduled_at and scheduled_at <= now:
            campaign.status, campaign.started_at = CampaignStatus.SENDING, now
            campaign.save(update_fields=["status", "started_at", "updated_at"])
        if campaign.status != CampaignStatus.SENDING:
            return campaign
        previous: CampaignStep | None = None
        busy = False  # a step not over yet (steps overlap when a delay is shorter than a send)
        for step in campaign.steps.order_by("position"):
            if step.started_at is None:
                if not _step_due(campaign, step, previous, now):
                    break
                step_begin(campaign=campaign, step=step, at=now)
            if step.finished_at is None:
                _step_release_expired(step, now)
                if _sendable(step, now).exists():
                    if not _batches_running(step, now):
                        _queue_batches_on_commit(step, now)
                elif not step.recipients.filter(status__in=OPEN_STATUSES).exists():
                    step.finished_at = now
                    step.save(update_fields=["finished_at"])
            busy = busy or step.finished_at is None
            previous = step
        else:
            if not busy:
                campaign.status, campaign.finished_at = CampaignStatus.SENT, now
                campaign.save(update_fields=["status", "finished_at", "updated_at"])
    return campaign


def _batches_running(step: CampaignStep, now: datetime) -> bool:
    """Whether batch tasks are at work on the step: a row was claimed lately (each batch
    queues the next, so advancing the campaign need not queue more)."""
    return step.recipients.filter(claimed_at__gte=now - BATCHES_IDLE).exists()


def _queue_batches_on_commit(step: CampaignStep, now: datetime) -> None:
    waiting = _sendable(step, now).count()
    count = min(-(-waiting // batch_size()), int(settings.CAMPAIGN_PARALLEL_BATCHES))
    step_id = step.pk
    transaction.on_commit(lambda: _queue_batches(step_id, count))


def _step_due(
    campaign: Campaign, step: CampaignStep, previous: CampaignStep | None, now: datetime
) -> bool:
    if previous is None:
        return True
    if previous.started_at is None:
        return False
    if step.condition == StepCondition.PREVIOUS_NOT_DELIVERED and previous.finished_at is None:
        return False  # who was not reached is known only once the previous step is over
    return now >= previous.started_at + timedelta(hours=step.delay_hours)


def step_audience_contacts(campaign: Campaign, step: CampaignStep) -> QuerySet[Contact]:
    """The contacts a step considers: the campaign's audience (its segment, or what its kind
    targets), narrowed for a step "for those the previous step did not reach" to the contacts
    whose row of the previous step bounced, failed or was skipped as undeliverable."""
    contacts = kind_rules(campaign).audience(campaign)
    if step.condition == StepCondition.PREVIOUS_NOT_DELIVERED:
        previous = campaign.steps.filter(position__lt=step.position).order_by("-position")[:1]
        missed = Recipient.objects.filter(NOT_DELIVERED, step__in=previous)
        contacts = contacts.filter(pk__in=missed.values("contact_id"))
    return contacts


@transaction.atomic
def step_begin(*, campaign: Campaign, step: CampaignStep, at: datetime) -> int:
    """Write the step's recipient rows in one statement: queued for the contacts eligible at
    `at`, skipped with their first reason for the others (`kind_rules(...).reason`, the
    eligibility rule's reasons in SQL). Rows already written stay as they are. Answers how
    many rows were written."""
    rules = kind_rules(campaign)
    contacts = rules.with_reason(campaign, step, step_audience_contacts(campaign, step), at)
    rows = contacts.annotate(
        row_campaign=Value(campaign.pk),
        row_step=Value(step.pk),
        row_status=Case(
            When(**{SKIP_REASON: ""}, then=Value(RecipientStatus.QUEUED)),
            default=Value(RecipientStatus.SKIPPED),
            output_field=CharField(),
        ),
        row_basis=Value(rules.legal_basis(campaign)),
        row_blank=Value(""),
        row_created=Value(at),
    ).values_list(
        "row_campaign",
        "row_step",
        "pk",
        "row_status",
        SKIP_REASON,
        "row_basis",
        "row_blank",
        "row_blank",
        "row_blank",
        "row_created",
    )
    select, params = rows.order_by().query.sql_with_params()
    columns = (
        "campaign_id, step_id, contact_id, status, exclusion_reason, legal_basis, batch,"
        " message_id, error, created_at"
    )
    table = Recipient._meta.db_table
    if connection.vendor == "postgresql":
        sql = f"INSERT INTO {table} ({columns}) {select} ON CONFLICT DO NOTHING"
    else:
        sql = f"INSERT OR IGNORE INTO {table} ({columns}) {select}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        written = cursor.rowcount
    CampaignStep.objects.filter(pk=step.pk).update(started_at=at)
    step.started_at = at
    return max(written, 0)


def _sendable(step: CampaignStep, now: datetime) -> QuerySet[Recipient]:
    return step.recipients.filter(status=RecipientStatus.QUEUED).filter(
        Q(send_after__isnull=True) | Q(send_after__lte=now)
    )


def _step_release_expired(step: CampaignStep, now: datetime) -> int:
    """Put back in the queue the rows of a batch whose worker died long ago."""
    return step.recipients.filter(
        status=RecipientStatus.SENDING, claimed_at__lt=now - CLAIM_LEASE
    ).update(status=RecipientStatus.QUEUED, batch="", claimed_at=None)


# --- a batch -------------------------------------------------------------------------------


@dataclass
class BatchResult:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    waiting: int = 0
    more: bool = False
    campaign_id: int | None = None  # when the step may be over: the campaign to advance


def step_batch_send(*, step_id: int, batch: str, now: datetime | None = None) -> BatchResult:
    """Claim and send one batch of the step (`batch` is the task's id: a task delivered again
    after its worker died carries on with the rows it had claimed). Answers what it did;
    `more` when rows are left to send, for the caller to queue the next batch."""
    result = BatchResult()
    step = CampaignStep.objects.select_related("campaign__purpose").filter(pk=step_id).first()
    if step is None:
        return result
    if step.campaign.status != CampaignStatus.SENDING:
        # cancelled: nothing more leaves, and what this batch reserved (before its worker
        # died) no longer counts towards anyone's caps
        held = list(step.recipients.filter(status=RecipientStatus.SENDING, batch=batch))
        _Sender(step.campaign, step, batch, {}).release(held)
        return result
    campaign, now = step.campaign, now or timezone.now()
    ids = _claim(step, batch, now)
    if not ids:
        result.campaign_id = campaign.pk
        return result
    rules = kind_rules(campaign)
    if campaign.purpose is not None:
        # its wording versions, read once for every check of the batch (`replaced_version_ids`)
        campaign.purpose.versions_newest_first = list(  # type: ignore[attr-defined]
            campaign.purpose.versions.order_by("-number")
        )
    rows = list(
        Recipient.objects.filter(pk__in=ids)
        .select_related("contact")
        .prefetch_related("contact__interests")
        .order_by("pk")
    )
    # the rule for the whole batch in one query (the ineligible are skipped at once); the
    # messages are checked again, frequency limits included, just before they leave
    # (`_Sender._reserve`): here they are not, since a row reserved before its worker died
    # counts its own message until its reservation is given back
    eligible = rules.eligible_ids(
        campaign, step, [row.contact_id for row in rows], now, frequency=False
    )
    sender = _Sender(campaign, step, batch, _justifying_records(campaign, step, list(eligible)))
    sendable = []
    for row in rows:
        if row.contact_id not in eligible:
            with transaction.atomic():
                sender.give_back([row])  # a dead worker's reservation, if any
                _skip(row, rules.explain(campaign, step, row.contact, now))
            result.skipped += 1
        elif step.channel == StepChannel.SMS and channel_quiet_at(row.contact, step.channel, now):
            with transaction.atomic():
                sender.give_back([row])
                _wait(row, sms_quiet_until(row.contact, now))
            result.waiting += 1
        else:
            sendable.append(row)
    renewed = time.monotonic()
    try:
        for start in range(0, len(sendable), RESERVATION_SLICE):
            if time.monotonic() - renewed > CLAIM_RENEWAL:
                # a slow batch keeps its claim: its rows are not handed to another batch
                step.recipients.filter(status=RecipientStatus.SENDING, batch=batch).update(
                    claimed_at=timezone.now()
                )
                renewed = time.monotonic()
            if not sender.send(sendable[start : start + RESERVATION_SLICE], result):
                break  # the campaign was cancelled, or the rows are no longer this batch's
    finally:
        sender.close()
    result.more = len(ids) >= batch_size() and _sendable(step, timezone.now()).exists()
    if not result.more:
        result.campaign_id = campaign.pk
    return result


def _claim(step: CampaignStep, batch: str, now: datetime) -> list[int]:
    """The rows of this batch: those it claimed before its worker died, else up to a batch of
    queued ones, claimed by a conditional UPDATE (a row another batch took meanwhile is not
    taken again; on PostgreSQL the candidates are read `SKIP LOCKED`)."""
    mine = list(
        step.recipients.filter(status=RecipientStatus.SENDING, batch=batch).values_list(
            "pk", flat=True
        )
    )
    if mine:
        return mine
    with transaction.atomic():
        candidates = list(
            _sendable(step, now)
            .order_by("pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[: batch_size()]
        )
        Recipient.objects.filter(pk__in=candidates, status=RecipientStatus.QUEUED).update(
            status=RecipientStatus.SENDING, batch=batch, claimed_at=now
        )
    return list(
        step.recipients.filter(status=RecipientStatus.SENDING, batch=batch).values_list(
            "pk", flat=True
        )
    )


def _skip(row: Recipient, reasons: Sequence[str]) -> None:
    Recipient.objects.filter(pk=row.pk).update(
        status=RecipientStatus.SKIPPED,
        exclusion_reason=reasons[0] if reasons else "",
        batch="",
        sent_at=None,
    )


def _wait(row: Recipient, until: datetime) -> None:
    Recipient.objects.filter(pk=row.pk).update(
        status=RecipientStatus.QUEUED, batch="", claimed_at=None, send_after=until, sent_at=None
    )


def _justifying_records(
    campaign: Campaign, step: CampaignStep, contact_ids: Sequence[int]
) -> dict[int, int]:
    """The ledger record behind each contact's current state for the pair, when it is a
    grant: the proof that the message was lawful (none under legitimate interests without a
    grant, nor for a notice sent under a legal obligation)."""
    if campaign.purpose is None or campaign.purpose.legal_basis != LegalBasis.CONSENT:
        return {}  # SPEC §4: no record under legitimate interests (nor for a notice)
    if not kind_rules(campaign).marketing:
        return {}
    return dict(
        ConsentState.objects.filter(
            contact_id__in=contact_ids,
            purpose=campaign.purpose,
            channel=step.channel,
            status=ConsentStatus.GRANTED,
        ).values_list("contact_id", "record_id")
    )


# --- one message ---------------------------------------------------------------------------


class Outcome(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    STOPPED = "stopped"  # the row no longer this batch's: the batch ends
    CANCELLED = "cancelled"  # the message left, then the campaign was found cancelled


class _Sender:
    """Sends the messages of one batch on one connection. They are checked and reserved a
    slice at a time (`_reserve`), and each is marked sent by one statement as soon as it left
    (`_mark_sent`)."""

    def __init__(
        self, campaign: Campaign, step: CampaignStep, batch: str, records: dict[int, int]
    ) -> None:
        self.campaign, self.step, self.batch, self.records = campaign, step, batch, records
        self.rules: KindRules = kind_rules(campaign)
        self.legal_basis = self.rules.legal_basis(campaign)
        self.templates: dict[tuple[str, str], Any] = {}
        self.identities: dict[str, tuple[str, str]] = {}
        self.email_connection: Any = None
        self.sms = sms_backend() if step.channel == StepChannel.SMS else None
        self.tokens: dict[int, tuple[str, int]] = {}  # row -> its link token and the token row

    def close(self) -> None:
        if self.email_connection is not None:
            self.email_connection.close()

    def send(self, rows: Sequence[Recipient], result: BatchResult) -> bool:
        """Send a slice of the batch's rows, counting into `result`. Answers False when the
        batch must stop: the campaign was cancelled, or another batch holds its rows."""
        pending = list(rows)
        while pending:
            reserved, stop, checked_at = self._reserve(pending, result)
            if not reserved:
                return not stop
            pending = []
            for index, row in enumerate(reserved):
                if index and time.monotonic() - checked_at > reservation_seconds():
                    # checked too long ago: the rest is checked and reserved once more
                    pending = reserved[index:]
                    break
                try:
                    outcome = self._send_one(row)
                except Exception:
                    # a transient error (the server unreachable, a deferral, the database
                    # gone): the reservations of the messages yet to leave are given back
                    # (`_send_one` gave back its own if it did not leave) and the task is
                    # retried with its rows, reserved again then
                    self.release(reserved[index + 1 :])
                    raise
                if outcome == Outcome.FAILED:
                    result.failed += 1
                    continue
                if outcome in (Outcome.SENT, Outcome.CANCELLED):
                    result.sent += 1
                if outcome != Outcome.SENT:
                    self.release(reserved[index + 1 :])
                    return False
            if stop and not pending:
                return False
        return True

    def _send_one(self, row: Recipient) -> "Outcome":
        """Send the row's message, then mark it sent (or failed). `STOPPED` when the row is no
        longer this batch's or the campaign was cancelled meanwhile."""
        contact = row.contact
        token, token_id = self.tokens.get(row.pk, ("", None))
        try:
            if self.step.channel == StepChannel.EMAIL:
                message_id = self._email(row, contact, token)
            elif self.step.channel == StepChannel.SMS:
                message_id = self._sms(row, contact)
            else:
                message_id = ""  # postal: the row goes into the mail house's file
        except Exception as error:
            if not message_refused(error):
                self.release([row])  # it did not leave
                raise
            logger.warning("campaign message failed", extra={"recipient": row.pk})
            with transaction.atomic():
                self.give_back([row])
                Recipient.objects.filter(pk=row.pk).update(
                    status=RecipientStatus.FAILED, error=refusal_text(error), batch="", sent_at=None
                )
            return Outcome.FAILED
        status = self._mark_sent(row, message_id, token_id)
        if status is None:
            return Outcome.STOPPED  # another batch holds the row now: this one ends
        if status != CampaignStatus.SENDING:
            return Outcome.CANCELLED  # this one left; nothing more may
        return Outcome.SENT

    def _mark_sent(self, row: Recipient, message_id: str, token_id: int | None) -> str | None:
        """Mark the row sent with the proof of its message, if this batch still holds it, in
        one statement (the one write per message of a batch: hand-written for that reason).
        Answers the campaign's status, read by the same statement, or None when another batch
        holds the row."""
        params = [
            RecipientStatus.SENT,
            message_id,
            token_id,
            self.records.get(row.contact_id),
            self.legal_basis,
            row.pk,
            self.batch,
            RecipientStatus.SENDING,
            self.campaign.pk,
        ]
        with connection.cursor() as cursor:
            cursor.execute(_mark_sent_sql(), params)
            found = cursor.fetchone()
        return found[0] if found else None

    @property
    def counted(self) -> bool:
        """Whether the messages count towards the frequency limits (`MessageSent`)."""
        return self.rules.marketing and self.campaign.purpose is not None

    def _reserve(
        self, rows: Sequence[Recipient], result: BatchResult
    ) -> tuple[list[Recipient], bool, float]:
        """Just before a slice of messages leaves, in one short transaction: the rows must
        still be this batch's and the campaign still sending (a cancel, or a claim given to
        another batch after this one stalled past its lease, stop the batch); the contacts are
        locked and the rule checked for them once more (someone who unsubscribed since the
        batch began gets nothing: skipped with the reason); messages that count write their
        `MessageSent` at once (the row's `sent_at` says when), so two batches sending to one
        person at the same moment cannot both pass a cap of one; email rows get their link's
        token row (the token is derived from the row: unknown until the message leaves). Rows
        reserved before (by this batch, or its dead worker) give their reservation back first;
        those the batch no longer may send (the campaign cancelled) give it back too. Answers
        the rows reserved, whether the batch must stop after them, and when they were checked
        (`time.monotonic()`)."""
        now, asked = timezone.now(), len(rows)
        with transaction.atomic():
            mine = Recipient.objects.filter(
                pk__in=[row.pk for row in rows], batch=self.batch, status=RecipientStatus.SENDING
            )
            count = mine.filter(campaign__status=CampaignStatus.SENDING).update(
                claimed_at=now, sent_at=now
            )
            if count < asked:
                held = set(mine.filter(sent_at=now).values_list("pk", flat=True))
                self.release([row for row in rows if row.pk not in held])
                rows = [row for row in rows if row.pk in held]
            self.give_back(rows)  # reservations left by a dead worker
            contact_ids = sorted(row.contact_id for row in rows)
            list(Contact.objects.select_for_update().filter(pk__in=contact_ids).values("pk"))
            checked_at = time.monotonic()
            eligible = self.rules.eligible_ids(self.campaign, self.step, contact_ids, now)
            reserved = []
            for row in rows:
                row.sent_at = None
                if row.contact_id in eligible:
                    row.sent_at = now
                    reserved.append(row)
                else:
                    _skip(row, self.rules.explain(self.campaign, self.step, row.contact, now))
                    result.skipped += 1
            if self.counted and reserved:
                assert self.campaign.purpose is not None  # noqa: S101 - `counted`
                MessageSent.objects.bulk_create(
                    MessageSent(
                        contact_id=row.contact_id,
                        purpose=self.campaign.purpose,
                        channel=self.step.channel,
                        sent_at=now,
                    )
                    for row in reserved
                )
            if self.step.channel == StepChannel.EMAIL and reserved:
                self._tokens_store(reserved)
        return reserved, count < asked, checked_at

    def _tokens_store(self, rows: Sequence[Recipient]) -> None:
        """The rows of each row's preference link, the same each time the row's message is
        built (`campaign_link_token`): a batch that lost the row to another one (after
        stalling past its lease) finds it stored already."""
        tokens = {row.pk: campaign_link_token(self.campaign, row) for row in rows}
        digests = {row.pk: token_hash(tokens[row.pk]) for row in rows}
        PreferenceToken.objects.bulk_create(
            [PreferenceToken(contact_id=row.contact_id, digest=digests[row.pk]) for row in rows],
            ignore_conflicts=True,
        )
        stored = dict(
            PreferenceToken.objects.filter(digest__in=list(digests.values())).values_list(
                "digest", "pk"
            )
        )
        for row in rows:
            self.tokens[row.pk] = (tokens[row.pk], stored[digests[row.pk]])

    def give_back(self, rows: Sequence[Recipient]) -> None:
        """Give back the reservations of messages that did not leave (their `MessageSent`)."""
        held = [row for row in rows if row.sent_at is not None]
        if not self.counted or not held:
            return
        reservations = Q()
        for row in held:
            reservations |= Q(contact_id=row.contact_id, sent_at=row.sent_at)
        MessageSent.objects.filter(
            reservations, purpose=self.campaign.purpose, channel=self.step.channel
        ).delete()

    def release(self, rows: Sequence[Recipient]) -> None:
        """Give back the reservations of reserved rows that will not be sent by this batch
        now, those it still holds (a row another batch took is that batch's to release)."""
        if not rows:
            return
        with transaction.atomic():
            mine = Recipient.objects.filter(
                pk__in=[row.pk for row in rows], batch=self.batch, status=RecipientStatus.SENDING
            )
            held = set(mine.select_for_update().values_list("pk", flat=True))
            kept = [row for row in rows if row.pk in held]
            self.give_back(kept)
            Recipient.objects.filter(pk__in=[row.pk for row in kept]).update(sent_at=None)
        for row in kept:
            row.sent_at = None

    def _identity(self, language: str) -> tuple[str, str]:
        """The controller's identity footer, rendered once per language for the batch."""
        if language not in self.identities:
            self.identities[language] = identity_footer()  # in the message's language
        return self.identities[language]

    def _template(self, field: str, language: str, *, html: bool) -> Any:
        key = (field, language)
        if key not in self.templates:
            source = self.step.content(field, language)
            self.templates[key] = Engine(autoescape=html).from_string(source)
        return self.templates[key]

    def _render(self, field: str, language: str, context: dict[str, Any], html: bool) -> str:
        return self._template(field, language, html=html).render(Context(context, autoescape=html))

    def _email(self, row: Recipient, contact: Contact, token: str) -> str:
        language = contact.language or Language.FRENCH
        message_id = campaign_message_id(self.campaign, row)
        context = personalisation(contact) | self.rules.context(self.campaign, row, contact)
        context |= {
            "preference_url": preference_url(token),
            "unsubscribe_url": unsubscribe_url(token),
        }
        with translation.override(language):
            footer = {
                "marketing": self.rules.marketing,
                "purpose": self.campaign.purpose.name if self.campaign.purpose else "",
                "preference_url": context["preference_url"],
                "unsubscribe_url": context["unsubscribe_url"],
            }
            written = self._render("body_text", language, context, html=False)
            text = written.rstrip("\n") + "\n\n" + render_text(FOOTER + ".txt", footer)
            if self.step.content("body_html", language).strip():
                html = self._render("body_html", language, context, html=True)
            else:
                html = html_from_text(written)
            html = _before_body_end(html, get_template(FOOTER + ".html").render(footer))
            headers = {"Message-ID": message_id}
            if self.rules.marketing:
                headers |= list_unsubscribe_headers(context["unsubscribe_url"])
            message = message_compose(
                subject=self._render("subject", language, context, html=False),
                body=text,
                html=html,
                to=[contact.email],
                headers=headers,
                identity=self._identity(language),
            )
        _tag(message, self.campaign, row)
        if self.email_connection is None:
            self.email_connection = get_connection()
            self.email_connection.open()
        message.connection = self.email_connection
        message.send()
        return message_id

    def _sms(self, row: Recipient, contact: Contact) -> str:
        language = contact.language or Language.FRENCH
        body = self._render("sms_text", language, personalisation(contact), html=False)
        if self.rules.marketing:
            body = sms_body_with_stop(body, language)
        assert self.sms is not None
        message = sms_message_build(
            to=contact.phone,
            body=body,
            campaign=str(self.campaign.public_id),
            contact=str(contact.public_id),
            country=contact.country or "FR",
        )
        return self.sms.send(message)


@cache
def _mark_sent_sql() -> str:
    """The statement of `_Sender._mark_sent`, its names taken from the models."""
    column = {
        field.name: field.column
        for field in Recipient._meta.concrete_fields
        if field.name in MARKED_COLUMNS
    }
    campaign_status = Campaign._meta.get_field("status").column
    return (
        f"UPDATE {Recipient._meta.db_table} SET {column['status']} = %s, "  # noqa: S608
        f"{column['message_id']} = %s, {column['preference_token']} = %s, "
        f"{column['consent_record']} = %s, {column['legal_basis']} = %s, "
        f"{column['batch']} = '' WHERE {Recipient._meta.pk.column} = %s "
        f"AND {column['batch']} = %s AND {column['status']} = %s RETURNING "
        f"(SELECT {campaign_status} FROM {Campaign._meta.db_table} "
        f"WHERE {Campaign._meta.pk.column} = %s)"
    )


def message_refused(error: Exception) -> bool:
    """Whether the provider refused this one message for good: `REFUSED`, or a permanent
    (5xx) SMTP answer to its content (a filter rejecting it). Retrying the batch would meet
    the same answer each time and never finish the step."""
    if isinstance(error, smtplib.SMTPDataError):
        return error.smtp_code >= 500
    if isinstance(error, AnymailAPIError) and 400 <= (error.status_code or 0) < 500:
        return error.status_code != 429  # the ESP refused this message (429: slow down)
    return isinstance(error, REFUSED)


def refusal_text(error: Exception) -> str:
    """The provider's refusal as kept on the row: its kind and codes only, never its text,
    which often quotes the person's address or number (the row outlives an erasure)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = sorted({str(code) for code, _answer in error.recipients.values()})
        return f"SMTPRecipientsRefused {' '.join(codes)}"
    if isinstance(error, smtplib.SMTPResponseException):
        answer = (
            error.smtp_error.decode(errors="replace")
            if isinstance(error.smtp_error, bytes)
            else str(error.smtp_error)
        )
        enhanced = answer.split(" ", 1)[0] if ENHANCED_CODE.match(answer) else ""
        return f"{type(error).__name__} {error.smtp_code} {enhanced}".strip()
    status = getattr(error, "status_code", None)
    return f"{type(error).__name__} {status}" if status else type(error).__name__


def html_from_text(text: str) -> str:
    """The HTML part of a message written as text only: the whole text escaped (what the
    marketer wrote as well as the personalisation: "Prix < 10 €" is text, not a tag), in
    paragraphs."""
    return linebreaks(text, autoescape=True)


def _before_body_end(html: str, addition: str) -> str:
    end = html.lower().rfind("</body>")
    return html + addition if end < 0 else html[:end] + addition + html[end:]


def _tag(message: EmailMultiAlternatives, campaign: Campaign, row: Recipient) -> None:
    """Name the campaign and the row for the ESP's tracking events (anymail `metadata`;
    other backends ignore it)."""
    message.metadata = {  # type: ignore[attr-defined]
        CAMPAIGN_METADATA_KEY: str(campaign.public_id),
        RECIPIENT_METADATA_KEY: str(row.pk),
    }


def campaign_message_id(campaign: Campaign, row: Recipient) -> str:
    """The same `Message-ID` each time this row's message is built: sent again after a
    worker died, it is the same message to the mailbox."""
    domain = settings.DEFAULT_FROM_EMAIL.rsplit("@", 1)[-1].strip(" >") or "localhost"
    return f"<{campaign.public_id}.{row.pk}@{domain}>"


def campaign_link_token(campaign: Campaign, row: Recipient) -> str:
    """The token of the preference links in this row's message, the same each time the message
    is built, like its `Message-ID`: the copy a dead worker sent before it could store the
    link, and the copy sent again, carry the same links, and they work (only the digest is
    stored, when the message is reserved). Unguessable without `SECRET_KEY`."""
    digest = salted_hmac(LINK_TOKEN_SALT, f"{campaign.public_id}.{row.pk}", algorithm="sha256")
    # 32 bytes in URL-safe base64, as `secrets.token_urlsafe(32)` gives every other link
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def personalisation(contact: Contact) -> dict[str, Any]:
    """What a marketer may write in a message: `{{ first_name }}`, `{{ last_name }}` and
    `{{ interests }}` (their names in the person's language, comma-separated). Plain values
    only: the content's template sees nothing else of the contact."""
    language = contact.language or Language.FRENCH
    names = [
        interest.name_en if language == Language.ENGLISH else interest.name_fr
        for interest in contact.interests.all()
    ]
    return {
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "interests": ", ".join(sorted(names)),
    }


# --- a test send to oneself ------------------------------------------------------------------


def campaign_test_send(
    *, campaign: Campaign, step: CampaignStep, user: User, language: str = ""
) -> EmailMultiAlternatives:
    """Send an email step to the staff member themselves, personalised with their own first
    name, in `language` (default French), with "[TEST]" before the subject. No recipient row
    and nothing counted: it is not a campaign message."""
    if step.channel != StepChannel.EMAIL:
        raise StructuredValidationError({"step": [_("Only an email step can be sent as a test.")]})
    if not user.email:
        raise StructuredValidationError({"email": [_("Your account has no email address.")]})
    language = language or Language.FRENCH
    context = {
        "first_name": user.first_name,
        "last_name": user.last_name,
        "interests": "",
        "preference_url": settings.SITE_URL + "/p/test/",
        "unsubscribe_url": settings.SITE_URL + "/u/test/",
    }

    def render(field: str, html: bool) -> str:
        return (
            Engine(autoescape=html)
            .from_string(step.content(field, language))
            .render(Context(context, autoescape=html))
        )

    with translation.override(language):
        has_html = step.content("body_html", language).strip()
        message = message_compose(
            subject=_("[TEST] %(subject)s") % {"subject": render("subject", False)},
            body=render("body_text", False),
            html=render("body_html", True)
            if has_html
            else html_from_text(render("body_text", False)),
            to=[user.email],
        )
    message.send()
    return message
