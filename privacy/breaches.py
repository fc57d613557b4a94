"""The breach register (GDPR Art. 33/34): recording a breach, its 72-hour deadline to notify
the authority, the DPO's reminders while the decision is pending, and the notification of the
persons concerned through a breach notice campaign (`campaigns.notices`).

Every write to a breach goes through the services here; the admin and the beat job call them.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, TypedDict, Unpack

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.models import Campaign, CampaignStatus, Segment
from campaigns.notices import Localized, breach_notice_campaign_create
from core.emails import email_send
from core.errors import StructuredValidationError
from core.links import site_url
from core.management.commands.setup_roles import DPO
from privacy.models import (
    AUTHORITY_DEADLINE,
    BREACH_REMINDERS,
    Breach,
    BreachChange,
    BreachRisk,
)
from privacy.selectors import breach_time_left, breaches_pending_decision


class BreachFields(TypedDict, total=False):
    """What staff write on a breach (the deadline, marks and author are the services')."""

    reference: str
    aware_at: datetime
    nature: str
    persons_categories: str
    persons_count: int | None
    records_categories: str
    records_count: int | None
    consequences: str
    measures: str
    risk: str
    risk_reasoning: str
    authority_notified_at: datetime | None
    authority_reference: str
    delay_reasons: str
    not_notified: bool
    not_notified_reason: str
    persons_told: bool
    persons_told_at: datetime | None
    closed_at: datetime | None


REQUIRED = ("reference", "nature", "risk", "risk_reasoning")
# Each reminder's mark on the breach, and how long after awareness it is due.
REMINDER_MARKS = (
    ("reminded_24h_at", BREACH_REMINDERS[0]),
    ("reminded_48h_at", BREACH_REMINDERS[1]),
)
# The register's decisive fields: each change to them is kept (`BreachChange`).
DECISIVE = (
    "aware_at",
    "risk",
    "authority_notified_at",
    "authority_reference",
    "delay_reasons",
    "not_notified",
    "not_notified_reason",
    "persons_told",
    "persons_told_at",
    "closed_at",
)
# Once recorded, these are rewritten (moved, cleared, unticked, reworded) only with a reason.
REWRITTEN_WITH_REASON = (
    "risk",
    "authority_notified_at",
    "authority_reference",
    "delay_reasons",
    "not_notified_reason",
    "not_notified",
    "persons_told",
    "persons_told_at",
    "closed_at",
)
# A notification campaign that has not started sending has told nobody yet.
NOT_STARTED = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)


# Writes.


def breach_check(
    *, breach: Breach, stored: Breach | None = None, now: datetime | None = None
) -> None:
    """Refuse a breach the register cannot hold as it stands, each error on its field;
    `stored` is the entry as recorded when the breach is changed."""
    now = now or timezone.now()
    errors: dict[str, list[str]] = {}

    def refuse(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    for field in REQUIRED:
        if not str(getattr(breach, field) or "").strip():
            refuse(field, _("This field is required."))
    if breach.aware_at is None:
        refuse("aware_at", _("This field is required."))
    else:
        _check_times(breach, now, refuse)
        _check_authority(breach, refuse)
    _check_persons_told(breach, stored, refuse)
    if breach.persons_told_at is not None and not breach.persons_told:
        refuse("persons_told", _("Tick it: a time is given for telling the persons concerned."))
    if breach.closed_at is not None and not breach.decision_taken:
        refuse(
            "closed_at",
            _("Notify the authority, or record the decision not to, before closing the breach."),
        )
    if errors:
        raise ValidationError(errors)


def _check_times(breach: Breach, now: datetime, refuse: Any) -> None:
    if breach.aware_at > now:
        refuse("aware_at", _("The time of awareness cannot be in the future."))
    for field in ("authority_notified_at", "persons_told_at", "closed_at"):
        at = getattr(breach, field)
        if at is not None and at < breach.aware_at:
            refuse(field, _("This cannot be before we became aware of the breach."))
        elif at is not None and at > now:
            refuse(field, _("This cannot be in the future."))


def _check_persons_told(breach: Breach, stored: Breach | None, refuse: Any) -> None:
    """Art. 34: persons told without a time of the DPO's own (by phone, by letter) are told
    through the notification campaign, so only once it has started sending; its first send
    says when. Checked when the tick or its time changes: other edits of an entry pass."""
    if not breach.persons_told or breach.persons_told_at is not None:
        return
    if stored is not None and stored.persons_told and stored.persons_told_at is None:
        return  # recorded so already: not this change's to refuse
    campaign = breach.notification_campaign
    if campaign is not None and campaign.status in NOT_STARTED:
        refuse(
            "persons_told",
            _(
                "The notification campaign %(name)s has not started sending (%(status)s): "
                "the persons concerned are told once it has, or say when they were told."
            )
            % {"name": campaign.name, "status": campaign.get_status_display()},
        )
    elif campaign is None or campaign.started_at is None:
        refuse("persons_told_at", _("Say when the persons concerned were told."))


def _check_authority(breach: Breach, refuse: Any) -> None:
    """Art. 33(1): notify within 72 hours, or give the reasons for the delay; not notifying
    is only for a breach unlikely to result in a risk, and says why (Art. 33(5))."""
    deadline = breach.aware_at + AUTHORITY_DEADLINE
    notified_at = breach.authority_notified_at
    if notified_at is not None and notified_at > deadline and not breach.delay_reasons.strip():
        refuse(
            "delay_reasons",
            _(
                "The authority was notified after the 72-hour deadline: give the reasons for "
                "the delay (Art. 33(1))."
            ),
        )
    if not breach.not_notified:
        return
    if notified_at is not None:
        refuse("not_notified", _("The authority was notified: untick the decision not to."))
    elif breach.risk and breach.risk != BreachRisk.NONE:
        refuse(
            "not_notified",
            _(
                "Only a breach unlikely to result in a risk to the persons may be left "
                "unnotified (Art. 33(1)): notify the authority, or revise the risk and its "
                "reasoning."
            ),
        )
    if not breach.not_notified_reason.strip():
        refuse("not_notified_reason", _("Say why the authority is not notified (Art. 33(5))."))


def breach_record(*, by: str, **fields: Unpack[BreachFields]) -> Breach:
    """Record a breach in the register (GDPR Art. 33(5)); its authority deadline is 72 hours
    after awareness (Art. 33(1))."""
    breach = Breach(**fields, recorded_by=by)
    if breach.aware_at is not None:
        breach.authority_deadline = breach.aware_at + AUTHORITY_DEADLINE
    breach_check(breach=breach)
    breach.save()
    return breach


def breach_change_check(
    *, breach: Breach, changes: dict[str, Any], reason: str, now: datetime | None = None
) -> None:
    """Refuse rewriting the register's history without a reason: moving the time of awareness
    once a reminder went or a decision was taken on it, or changing the risk, a decision, its
    reasons or reference, a time the persons were told or the closing once recorded
    (reopening the breach)."""
    if reason.strip():
        return
    errors: dict[str, list[str]] = {}
    stored = {name: getattr(breach, name) for name in changes}
    if "aware_at" in changes and changes["aware_at"] != stored["aware_at"]:
        reminded = breach.reminded_24h_at is not None or breach.reminded_48h_at is not None
        if reminded or breach.decision_taken:
            errors.setdefault("reason", []).append(
                _(
                    "Say why the time of awareness changes: a reminder was sent or a "
                    "decision was taken on the one recorded."
                )
            )
    for name in REWRITTEN_WITH_REASON:
        if name in changes and _recorded(stored[name]) and changes[name] != stored[name]:
            if name == "closed_at" and changes[name] is None:
                message = _("Say why the breach is reopened.")
            else:
                message = _("Say why %(field)s changes once recorded.") % {
                    "field": BreachChange.field_label(name)
                }
            errors.setdefault("reason", []).append(message)
    if errors:
        raise ValidationError(errors)


def _recorded(value: Any) -> bool:
    """Whether a field holds something recorded: a time, a tick, a text."""
    if isinstance(value, str):
        return bool(value.strip())
    return value not in (None, False)


def breach_update(
    *, breach: Breach, by: str, reason: str = "", **changes: Unpack[BreachFields]
) -> Breach:
    """Change what staff wrote on a breach (its decisions, counts, measures ...), keeping each
    change to a decisive field in its history; a new time of awareness moves the deadline and
    frees the reminders not yet due by it. Only the fields changed are written: the marks,
    claimed by the beat job meanwhile, stay as they are."""
    now = timezone.now()
    with transaction.atomic():
        stored = Breach.objects.select_for_update().get(pk=breach.pk)
        changed = {name: value for name, value in changes.items() if getattr(stored, name) != value}
        breach_change_check(breach=stored, changes=changed, reason=reason)
        for name, value in changes.items():
            setattr(breach, name, value)
        breach.authority_deadline = breach.aware_at + AUTHORITY_DEADLINE
        breach_check(breach=breach, stored=stored)
        written = [*changes, "authority_deadline"]
        if "aware_at" in changed:
            for mark, after in REMINDER_MARKS:
                # a reminder not yet due by the new time of awareness goes again when it is
                if getattr(stored, mark) is not None and breach.aware_at + after > now:
                    setattr(breach, mark, None)
                    written.append(mark)
        breach.save(update_fields=written)
        BreachChange.objects.bulk_create(
            BreachChange(
                breach=breach,
                changed_at=now,
                changed_by=by,
                field=name,
                old_value=_as_text(getattr(stored, name)),
                new_value=_as_text(value),
                reason=reason.strip(),
            )
            for name, value in changed.items()
            if name in DECISIVE
        )
    return breach


def _as_text(value: Any) -> str:
    """A field's value as the history keeps it: times in ISO 8601, ticks as 0 or 1."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


@transaction.atomic
def breach_notify_persons(
    *,
    breach: Breach,
    contacts: Iterable[int] | None = None,
    segment: Segment | None = None,
    nature: Localized | None = None,
    consequences: Localized | None = None,
    measures: Localized | None = None,
    name: str = "",
    created_by: User | None = None,
) -> Campaign:
    """Create the draft breach notification to the persons concerned (GDPR Art. 34), given
    as contact ids or as a segment, and link it to the breach. Its texts default to the
    breach's own; the DPO checks and sends the campaign (it bypasses the suppression list)."""
    current = Breach.objects.select_for_update().get(pk=breach.pk).notification_campaign
    if current is not None and current.status != CampaignStatus.CANCELLED:
        raise StructuredValidationError(
            {
                "notification_campaign": [
                    _("This breach already has its notification campaign: %(name)s")
                    % {"name": current.name}
                ]
            }
        )
    campaign = breach_notice_campaign_create(
        contacts=contacts,
        segment=segment,
        nature=breach.nature if nature is None else nature,
        consequences=breach.consequences if consequences is None else consequences,
        measures=breach.measures if measures is None else measures,
        name=name or _("Breach notification: %(reference)s") % {"reference": breach.reference},
        created_by=created_by,
    )
    Breach.objects.filter(pk=breach.pk).update(notification_campaign=campaign)
    breach.notification_campaign = campaign
    return campaign


def breach_reminders_send(*, now: datetime | None = None) -> int:
    """Email the DPO 24 and 48 hours after awareness of a breach while the authority decision
    is pending (GDPR Art. 33(1): 72 hours), each reminder once. Answers how many were sent.

    Each reminder is claimed by a conditional update of its mark, committed before it is
    sent: two workers never both send it, and a failed send releases it for the next run.
    """
    now = now or timezone.now()
    recipients = dpo_addresses()
    if not recipients:
        return 0  # nobody to tell: the marks stay free for when someone is
    sent = 0
    for mark, after, before in _reminder_windows():
        due = breaches_pending_decision().filter(
            aware_at__lte=now - after, **{f"{mark}__isnull": True}
        )
        if before is not None:
            # past the next mark, only the next reminder is due: it says the same, later
            due = due.filter(aware_at__gt=now - before)
        for breach in due.order_by("aware_at"):
            sent += _reminder_send(breach, mark, now, recipients, after=after, before=before)
    return sent


def _reminder_windows() -> list[tuple[str, timedelta, timedelta | None]]:
    """Each mark with its time after awareness and the next mark's (None: the last one)."""
    nexts = [after for _mark, after in REMINDER_MARKS[1:]] + [None]
    return [(mark, after, nxt) for (mark, after), nxt in zip(REMINDER_MARKS, nexts, strict=True)]


def _reminder_send(
    breach: Breach,
    mark: str,
    now: datetime,
    recipients: list[str],
    *,
    after: timedelta,
    before: timedelta | None,
) -> int:
    # the claim commits on its own: the row is not locked while the email goes, and an email
    # accepted by the server is never sent again because a later step failed; it checks again
    # that the reminder is due, as the time of awareness may have moved since the listing
    due = Q(aware_at__lte=now - after)
    if before is not None:
        due &= Q(aware_at__gt=now - before)
    with transaction.atomic():
        claimed = (
            breaches_pending_decision()
            .filter(due, pk=breach.pk, **{f"{mark}__isnull": True})
            .update(**{mark: now})
        )
    if not claimed:
        return 0
    breach = Breach.objects.get(pk=breach.pk)  # as claimed: the listing's copy may be stale
    elapsed = int((now - breach.aware_at).total_seconds() // 3600)
    try:
        email_send(
            template="privacy/email/breach_reminder",
            context={
                "breach": breach,
                "elapsed_hours": elapsed,
                "deadline": breach.authority_deadline,
                "remaining": breach_time_left(breach=breach, now=now),
                "link": site_url("admin:privacy_breach_change", breach.pk),
            },
            to=recipients,
            # the DPO's team has no language of its own here: the site's, French by default
            for_staff=True,
        )
    except Exception:
        # not sent: free the claim (ours only) for the next run
        with transaction.atomic():
            Breach.objects.filter(pk=breach.pk, **{mark: now}).update(**{mark: None})
        raise
    return 1


def dpo_addresses() -> list[str]:
    """Who hears of breaches: the DPO group's active members with an email, and DPO_CONTACT
    when it is an email address."""
    addresses = list(
        get_user_model()
        .objects.filter(groups__name=DPO, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    try:
        validate_email(settings.DPO_CONTACT)
    except ValidationError:
        pass
    else:
        addresses.append(settings.DPO_CONTACT)
    unique = {address.strip().lower(): address.strip() for address in addresses}
    return sorted(unique.values())
