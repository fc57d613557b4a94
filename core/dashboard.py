"""The admin home's dashboards (SPEC "security, registers and the DPO's view"): reads only.

Who sees what is decided by permissions, never by names:
- the DPO's dashboard to whoever may view privacy requests (`privacy.view_privacyrequest`,
  which `setup_roles` gives the DPO group);
- the marketer's dashboard to whoever may view campaigns (`campaigns.view_campaign`, the
  Marketers group) without that privacy right;
- both to a superuser, one at a time, chosen with `?view=dpo` or `?view=marketer` (the DPO's
  first);
- neither to other staff, who keep Django's list of sections.

Each panel costs a fixed number of queries, whatever the number of contacts, records or
requests: grouped counts and short lists. What reads whole tables is kept in the cache a few
minutes (`CACHE_SECONDS`): the eligible audiences (an `eligible_contacts` count per purpose and
channel), the consent states now (one GROUP BY over `ConsentState`) and the ledger's weekly
counts. The consent rates' past comes from the daily `ConsentRateSnapshot` (`consent.rates`).
Nothing here names a person: requests are shown by type, status and deadline.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

from django.core.cache import cache
from django.db.models import Count, Q
from django.db.models.functions import TruncWeek
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from campaigns.models import Campaign, CampaignStatus
from campaigns.selectors import campaign_stats
from consent.eligibility import eligible_contacts
from consent.models import (
    Channel,
    ConsentAction,
    ConsentRateSnapshot,
    ConsentRecord,
    ConsentStatus,
    LedgerSeal,
    LedgerVerification,
    Purpose,
    SourceKind,
    localized,
)
from consent.rates import consent_states_now, people_on_file
from contacts.models import Suppression, SuppressionReason, TimelineEvent, TimelineKind
from core.charts import Chart, ChartKind, Series
from privacy.models import PrivacyRequest, PrivacyRequestStatus
from privacy.selectors import breaches_within_deadline

DPO_PERMISSION = "privacy.view_privacyrequest"
MARKETER_PERMISSION = "campaigns.view_campaign"
DPO = "dpo"
MARKETER = "marketer"
DASHBOARD_NAMES = {DPO: _("DPO dashboard"), MARKETER: _("Marketing dashboard")}

WEEKS = 12
CACHE_SECONDS = 300
LIST_LENGTH = 8  # requests listed per panel; the counts say how many there are in all
RECENT_CAMPAIGNS = 5
TOP_REASONS = 6
CLOSED_REQUESTS = (PrivacyRequestStatus.COMPLETED, PrivacyRequestStatus.REJECTED)
# withdrawals the person made by unsubscribing (a link in a message, the preference center)
UNSUBSCRIBE_SOURCES = (SourceKind.ONE_CLICK_UNSUBSCRIBE, SourceKind.PREFERENCE_CENTER)
# the sealer runs every minute and seals even an empty window: an older last seal means
# beat's job stopped; the check runs daily
SEALER_LATE_AFTER = timedelta(minutes=5)
VERIFICATION_LATE_AFTER = timedelta(hours=26)

T = TypeVar("T")


def dashboards_for(user: Any) -> list[str]:
    """The dashboards the user may see, the default first (module docstring)."""
    if user.is_superuser:
        return [DPO, MARKETER]
    if user.has_perm(DPO_PERMISSION):
        return [DPO]
    if user.has_perm(MARKETER_PERMISSION):
        return [MARKETER]
    return []


def dashboard_context(request: HttpRequest, now: datetime | None = None) -> dict[str, Any]:
    """What the admin home shows above the sections: the dashboard the user may see (the one
    chosen with `?view=` among several), and the links to switch."""
    available = dashboards_for(request.user)
    if not available:
        return {}
    chosen = request.GET.get("view", "")
    chosen = chosen if chosen in available else available[0]
    now = now or timezone.now()
    context: dict[str, Any] = {
        "dashboard": chosen,
        "dashboard_title": DASHBOARD_NAMES[chosen],
        "dashboard_switch": [
            {"name": DASHBOARD_NAMES[name], "url": "?view=" + name, "current": name == chosen}
            for name in available
        ]
        if len(available) > 1
        else [],
    }
    if chosen == DPO:
        context["dpo"] = dpo_dashboard(now)
    else:
        context["marketer"] = marketer_dashboard(now)
    return context


def _cached(key: str, compute: Callable[[], T]) -> T:
    """`compute()`, kept `CACHE_SECONDS` under `key`."""
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, CACHE_SECONDS)
    return value


# --- weeks ---------------------------------------------------------------------------------


def last_weeks(now: datetime, count: int = WEEKS) -> list[date]:
    """The Mondays of the last `count` weeks (local time), the current week's last."""
    today = timezone.localdate(now)
    this_monday = today - timedelta(days=today.weekday())
    return [this_monday - timedelta(weeks=count - 1 - index) for index in range(count)]


def week_label(monday: date) -> str:
    return date_format(monday, "j M")


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _week_of(moment: datetime) -> date:
    """The Monday of a `TruncWeek` value (PostgreSQL answers it in UTC, SQLite in local)."""
    return timezone.localtime(moment).date()


# --- the DPO's dashboard -------------------------------------------------------------------


def dpo_dashboard(now: datetime) -> dict[str, Any]:
    weeks = last_weeks(now)
    purposes = list(Purpose.objects.filter(is_active=True).order_by("slug"))
    return {
        "breaches": breaches_pending(now),
        "requests": privacy_deadlines(now),
        "rates": consent_rates(purposes, weeks),
        "feedback": unsubscribes_and_complaints(weeks),
        "suppressions": suppression_counts(),
        "seal": seal_status(now),
        "verification": last_verification(now),
    }


def breaches_pending(now: datetime) -> dict[str, Any]:
    """The breaches whose authority decision is pending (GDPR Art. 33(1), 72 hours), the
    nearest deadline first, with the time left in words: their count and the first few.
    One query (`privacy.selectors.breaches_within_deadline`)."""
    pending = breaches_within_deadline(now)
    return {
        "count": len(pending),
        "rows": [
            {
                "url": reverse("admin:privacy_breach_change", args=[item.breach.pk]),
                "reference": item.breach.reference,
                "deadline": item.breach.authority_deadline,
                "remaining": str(item.remaining),
                "late": item.late,
            }
            for item in pending[:LIST_LENGTH]
        ],
    }


def privacy_deadlines(now: datetime) -> dict[str, Any]:
    """The open requests past their deadline and those due within 7 days: counts, and the
    first few of each, soonest deadline first. Three queries."""
    open_requests = PrivacyRequest.objects.exclude(status__in=CLOSED_REQUESTS)
    late = Q(due_at__lt=now)
    due = Q(due_at__gte=now, due_at__lt=now + timedelta(days=7))
    counts = open_requests.aggregate(late=Count("pk", filter=late), due=Count("pk", filter=due))
    return {
        "late_count": counts["late"],
        "due_count": counts["due"],
        "late": [
            _request_row(request, now)
            for request in open_requests.filter(late).order_by("due_at")[:LIST_LENGTH]
        ],
        "due": [
            _request_row(request, now)
            for request in open_requests.filter(due).order_by("due_at")[:LIST_LENGTH]
        ],
    }


def _request_row(request: PrivacyRequest, now: datetime) -> dict[str, Any]:
    return {
        "url": reverse("admin:privacy_privacyrequest_change", args=[request.pk]),
        "type": request.get_type_display(),
        "status": request.get_status_display(),
        "received_at": request.received_at,
        "due_at": request.due_at,
        "deadline": deadline_in_words(request.due_at, now),
    }


def deadline_in_words(due_at: datetime, now: datetime) -> str:
    """ "due in 3 days", "due today", "late since today" or "4 days late", by local dates."""
    days = (timezone.localdate(due_at) - timezone.localdate(now)).days
    if due_at >= now:
        if days == 0:
            return gettext("due today")
        return ngettext("due in %(count)d day", "due in %(count)d days", days) % {"count": days}
    if days >= 0:
        return gettext("late since today")
    return ngettext("%(count)d day late", "%(count)d days late", -days) % {"count": -days}


@dataclass(frozen=True)
class RateRow:
    """A (purpose, channel)'s consent states now, and its rate among the people on file."""

    purpose: str
    channel: str
    granted: int
    pending: int
    withdrawn: int
    expired: int
    rate: float | None


def consent_rates(purposes: list[Purpose], weeks: list[date]) -> dict[str, Any]:
    """The consent rate of each active purpose's channels: a table of the states now (one
    grouped query, cached) and a chart per purpose over the weeks (the last day's snapshot
    of each past week; the current week's point is now). Definition: `consent.rates`."""
    states, people = _cached(
        "dashboard:consent-states", lambda: (consent_states_now(), people_on_file())
    )
    history = _snapshot_history(weeks)
    rows, charts = [], []
    for purpose in purposes:
        name = localized(purpose, "name")
        series = []
        for channel in purpose.channels:
            counts = states.get((purpose.pk, channel), {})
            rate = _rate(counts.get(ConsentStatus.GRANTED, 0), people)
            rows.append(_rate_row(name, channel, counts, rate))
            past = [history.get((monday, purpose.pk, channel)) for monday in weeks[:-1]]
            series.append(Series(label=_channel_label(channel), values=[*past, rate]))
        charts.append(
            Chart(
                title=gettext("Consent rate: %(purpose)s") % {"purpose": name},
                axis_label=gettext("Week of"),
                labels=[week_label(monday) for monday in weeks],
                series=series,
                unit="%",
            )
        )
    return {"people": people, "rows": rows, "charts": charts}


def _rate(granted: int, people: int) -> float | None:
    return round(100 * granted / people, 1) if people else None


def _rate_row(name: str, channel: str, counts: dict[str, int], rate: float | None) -> RateRow:
    return RateRow(
        purpose=name,
        channel=_channel_label(channel),
        granted=counts.get(ConsentStatus.GRANTED, 0),
        pending=counts.get(ConsentStatus.PENDING, 0),
        withdrawn=counts.get(ConsentStatus.WITHDRAWN, 0),
        expired=counts.get(ConsentStatus.EXPIRED, 0),
        rate=rate,
    )


def _channel_label(channel: str) -> str:
    return str(Channel(channel).label) if channel in Channel.values else channel


def _snapshot_history(weeks: list[date]) -> dict[tuple[date, int, str], float | None]:
    """{(Monday, purpose id, channel): rate} from the last snapshot of each past week."""
    rows = (
        ConsentRateSnapshot.objects.filter(day__gte=weeks[0], day__lt=weeks[-1])
        .order_by("day")
        .values_list("day", "purpose_id", "channel", "granted", "contacts")
    )
    history: dict[tuple[date, int, str], float | None] = {}
    for day, purpose_id, channel, granted, contacts in rows:
        monday = day - timedelta(days=day.weekday())
        history[(monday, purpose_id, channel)] = _rate(granted, contacts)  # the later wins
    return history


def ledger_weeks(weeks: list[date]) -> dict[date, dict[str, int]]:
    """Per week, from the ledger: `grants` (records that left a consent granted),
    `withdrawals`, and `unsubscribes` (withdrawals by an unsubscribe link or the preference
    center). One grouped query, cached."""

    def compute() -> dict[date, dict[str, int]]:
        counts: dict[date, dict[str, int]] = {
            monday: {"grants": 0, "withdrawals": 0, "unsubscribes": 0} for monday in weeks
        }
        rows = (
            ConsentRecord.objects.filter(recorded_at__gte=_start_of(weeks[0]))
            .annotate(week=TruncWeek("recorded_at"))
            .values("week", "action", "status", "source_kind")
            .annotate(records=Count("id"))
            .order_by()
        )
        for row in rows:
            week = counts.get(_week_of(row["week"]))
            if week is None:
                continue
            if row["action"] == ConsentAction.WITHDRAW:
                week["withdrawals"] += row["records"]
                if row["source_kind"] in UNSUBSCRIBE_SOURCES:
                    week["unsubscribes"] += row["records"]
            elif row["status"] == ConsentStatus.GRANTED:
                week["grants"] += row["records"]
        return counts

    return _cached("dashboard:ledger-weeks:" + weeks[0].isoformat(), compute)


def unsubscribes_and_complaints(weeks: list[date]) -> Chart:
    """Unsubscribes (ledger, `ledger_weeks`) and complaints (each one is on the person's
    timeline, `contacts.deliverability`) per week. Two grouped queries."""
    ledger = ledger_weeks(weeks)
    complaints = dict.fromkeys(weeks, 0)
    rows = (
        TimelineEvent.objects.filter(
            kind=TimelineKind.COMPLAINT, occurred_at__gte=_start_of(weeks[0])
        )
        .annotate(week=TruncWeek("occurred_at"))
        .values("week")
        .annotate(events=Count("id"))
        .order_by()
    )
    for row in rows:
        monday = _week_of(row["week"])
        if monday in complaints:
            complaints[monday] += row["events"]
    return Chart(
        title=gettext("Unsubscribes and complaints per week"),
        axis_label=gettext("Week of"),
        labels=[week_label(monday) for monday in weeks],
        series=[
            Series(gettext("unsubscribes"), [ledger[monday]["unsubscribes"] for monday in weeks]),
            Series(gettext("complaints"), [complaints[monday] for monday in weeks]),
        ],
        kind=ChartKind.BAR,
    )


def suppression_counts() -> Chart:
    """The suppression list's entries per reason, every reason shown. One grouped query."""
    counts = dict(
        Suppression.objects.values_list("reason").annotate(entries=Count("id")).order_by()
    )
    return Chart(
        title=gettext("Suppression list per reason"),
        axis_label=gettext("Reason"),
        labels=[str(label) for label in SuppressionReason.labels],
        series=[
            Series(gettext("entries"), [counts.get(value, 0) for value in SuppressionReason.values])
        ],
        kind=ChartKind.BAR,
    )


def seal_status(now: datetime) -> dict[str, Any]:
    """The last ledger seal, how many records wait for one, and whether the sealer (a beat
    job every minute) is late. Two queries."""
    last = LedgerSeal.objects.order_by("-number").first()
    unsealed = ConsentRecord.objects.filter(xact__gte=last.key_to if last else 0).count()
    return {
        "last": last,
        "unsealed": unsealed,
        "late": (last.sealed_at < now - SEALER_LATE_AFTER) if last else unsealed > 0,
    }


def last_verification(now: datetime) -> dict[str, Any] | None:
    """The last full check of the ledger (`verify_ledger`, kept as a
    `consent.LedgerVerification`): when, intact or what failed. One query."""
    check = LedgerVerification.objects.order_by("-checked_at", "-id").first()
    if check is None:
        return None
    return {
        "at": check.checked_at,
        "ok": check.intact,
        "problems": check.problem_count,
        "first_problem": check.first_problem,
        "late": check.checked_at < now - VERIFICATION_LATE_AFTER,
    }


# --- the marketer's dashboard --------------------------------------------------------------


def marketer_dashboard(now: datetime) -> dict[str, Any]:
    weeks = last_weeks(now)
    purposes = list(Purpose.objects.filter(is_active=True).order_by("slug"))
    campaigns = recent_campaign_results()
    return {
        "audiences": audience_sizes(purposes, now),
        "campaigns": campaigns,
        "growth": consent_growth(weeks),
        "exclusions": top_exclusion_reasons(campaigns),
    }


def audience_sizes(purposes: list[Purpose], now: datetime) -> dict[str, Any]:
    """How many contacts each active purpose may reach on each of its channels now: the
    count of `eligible_contacts`, one query per pair, kept `CACHE_SECONDS` in the cache
    (at a million contacts each count takes a while; an audience moves little in minutes)."""

    def compute() -> dict[str, Any]:
        return {
            "counted_at": now,
            "sizes": {
                (purpose.pk, channel): eligible_contacts(purpose, channel, now).count()
                for purpose in purposes
                for channel in purpose.channels
            },
        }

    counted = _cached("dashboard:audience-sizes", compute)
    rows = [
        {
            "purpose": localized(purpose, "name"),
            "channel": _channel_label(channel),
            "eligible": counted["sizes"].get((purpose.pk, channel)),
        }
        for purpose in purposes
        for channel in purpose.channels
    ]
    return {"counted_at": counted["counted_at"], "rows": rows}


def recent_campaign_results() -> list[dict[str, Any]]:
    """The last campaigns that began sending, newest first, with their statistics
    (`campaign_stats`: two queries each)."""
    campaigns = Campaign.objects.filter(
        status__in=[CampaignStatus.SENDING, CampaignStatus.SENT, CampaignStatus.CANCELLED],
        started_at__isnull=False,
    ).order_by("-started_at", "-pk")[:RECENT_CAMPAIGNS]
    return [
        {
            "name": campaign.name,
            "status": campaign.get_status_display(),
            "started_at": campaign.started_at,
            "url": reverse("admin:campaigns_campaign_change", args=[campaign.pk]),
            "stats": campaign_stats(campaign),
        }
        for campaign in campaigns
    ]


def consent_growth(weeks: list[date]) -> Chart:
    """Grants and withdrawals recorded per week (`ledger_weeks`)."""
    ledger = ledger_weeks(weeks)
    return Chart(
        title=gettext("Consents granted and withdrawn per week"),
        axis_label=gettext("Week of"),
        labels=[week_label(monday) for monday in weeks],
        series=[
            Series(gettext("granted"), [ledger[monday]["grants"] for monday in weeks]),
            Series(gettext("withdrawn"), [ledger[monday]["withdrawals"] for monday in weeks]),
        ],
        kind=ChartKind.BAR,
    )


def top_exclusion_reasons(campaigns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Why contacts were left out of the recent campaigns' audiences: the reasons most
    often recorded on their skipped recipients, summed over those campaigns."""
    # imported here: campaigns.admin registers with the admin site this module serves
    from campaigns.admin import reason_label

    totals: dict[str, int] = {}
    for campaign in campaigns:
        for reason, count in campaign["stats"]["excluded"].items():
            totals[reason] = totals.get(reason, 0) + count
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:TOP_REASONS]
    return [{"reason": reason_label(reason), "count": count} for reason, count in ranked]
