"""Reads on privacy requests and on the breach register."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Min, OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from campaigns.models import CampaignStatus, Recipient
from contacts.models import Contact
from privacy.models import Breach, PrivacyRequest


def contact_privacy_requests(contact: Contact) -> list[PrivacyRequest]:
    """The person's privacy requests, the latest received first: one statement."""
    return list(PrivacyRequest.objects.filter(contact=contact).order_by("-received_at"))


def request_deadline_in_words(*, due_at: datetime, now: datetime | None = None) -> str:
    """A request's deadline as the DPO says it, in calendar days (local dates): "due in 3
    days", "due today", "late since today" or "4 days late"."""
    now = now or timezone.now()
    days = (timezone.localdate(due_at) - timezone.localdate(now)).days
    if due_at >= now:
        if days == 0:
            return _("due today")
        return ngettext("due in %(count)d day", "due in %(count)d days", days) % {"count": days}
    if days >= 0:
        return _("late since today")
    return ngettext("%(count)d day late", "%(count)d days late", -days) % {"count": -days}


# The breach register (GDPR Art. 33).


def breaches_pending_decision() -> QuerySet[Breach]:
    """Open breaches whose authority decision is pending: not notified, no decision not to
    notify, not closed."""
    return Breach.objects.filter(
        authority_notified_at__isnull=True, not_notified=False, closed_at__isnull=True
    )


@dataclass(frozen=True)
class Remaining:
    """The time left until a breach's authority deadline, or by how much it is past."""

    hours: int
    minutes: int
    late: bool

    def __str__(self) -> str:
        if self.late:
            if self.hours:
                return _("late by %(hours)s h") % {"hours": self.hours}
            return _("late by %(minutes)s min") % {"minutes": self.minutes}
        if self.hours:
            return _("in %(hours)s h") % {"hours": self.hours}
        return _("in %(minutes)s min") % {"minutes": self.minutes}


def breach_time_left(*, breach: Breach, now: datetime) -> Remaining:
    """The time left until the breach's authority deadline at `now`, or how late it is."""
    seconds = (breach.authority_deadline - now).total_seconds()
    late = seconds < 0
    whole_minutes = int(abs(seconds) // 60)
    return Remaining(hours=whole_minutes // 60, minutes=whole_minutes, late=late)


def breach_deadline_in_words(*, breach: Breach, now: datetime | None = None) -> str:
    """The authority deadline as the DPO reads it: "in 14 h", "late by 3 h"; empty once the
    decision is taken (the status says which)."""
    if breach.decision_taken or breach.closed_at is not None:
        return ""
    return str(breach_time_left(breach=breach, now=now or timezone.now()))


@dataclass(frozen=True)
class BreachDeadline:
    """A breach whose authority decision is pending, with the time left (`remaining`)."""

    breach: Breach
    remaining: Remaining

    @property
    def late(self) -> bool:
        return self.remaining.late

    @property
    def hours_left(self) -> int:
        """Whole hours until the deadline; negative when late, by that many."""
        return -self.remaining.hours if self.late else self.remaining.hours


def breaches_within_deadline(now: datetime | None = None) -> list[BreachDeadline]:
    """The open breaches whose authority decision is pending (GDPR Art. 33(1)), the earliest
    deadline (the latest ones) first: each with its hours left, or how late it is; for the
    DPO's dashboard."""
    now = now or timezone.now()
    pending = breaches_pending_decision().order_by("authority_deadline", "pk")
    return [
        BreachDeadline(breach=breach, remaining=breach_time_left(breach=breach, now=now))
        for breach in pending
    ]


def breaches_for_register(breaches: QuerySet[Breach]) -> QuerySet[Breach]:
    """The breaches with what the register shows of each, read in a fixed number of
    statements: the notification campaign, its first send (`first_sent_at`), the history."""
    first_sent = (
        Recipient.objects.filter(campaign=OuterRef("notification_campaign"), sent_at__isnull=False)
        .order_by("sent_at")
        .values("sent_at")[:1]
    )
    return (
        breaches.select_related("notification_campaign")
        .prefetch_related("changes")
        .annotate(first_sent_at=Subquery(first_sent))
    )


def breach_persons_told_at(*, breach: Breach) -> datetime | None:
    """When the persons concerned were told: the time the DPO typed, else the first send of
    the breach's notification campaign (None while nothing went); a breach read through
    `breaches_for_register` has its first send already."""
    if breach.persons_told_at is not None:
        return breach.persons_told_at
    campaign = breach.notification_campaign
    if campaign is None or campaign.status in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
        return None
    if hasattr(breach, "first_sent_at"):
        first: datetime | None = breach.first_sent_at
    else:
        first = (
            campaign.recipients.filter(sent_at__isnull=False)
            .aggregate(first=Min("sent_at"))
            .get("first")
        )
    return first or campaign.started_at
