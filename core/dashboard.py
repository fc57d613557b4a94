"""The admin home's dashboards (SPEC "security, registers and the DPO's view").

Who sees what is decided by permissions, never by names:
- the DPO's dashboard to whoever may view privacy requests (`privacy.view_privacyrequest`,
  which `setup_roles` gives the DPO group);
- the marketer's dashboard to whoever may view campaigns (`campaigns.view_campaign`, the
  Marketers group) without that privacy right;
- both to a superuser, one at a time, chosen with `?view=dpo` or `?view=marketer` (the DPO's
  first);
- neither to other staff, who keep Django's list of sections.

What reads whole tables or weeks of them is counted by a beat job, not in the request
(`core.tasks.refresh_dashboards`, every `REFRESH_EVERY`) computes each dashboard's figures
(`DpoFigures`, `MarketerFigures`: the consent states now and the rates' snapshots, the
unsubscribes and complaints per week, the suppression list per reason; the eligible
audiences, the ledger's grants and withdrawals per week, the recent campaigns' statistics)
and keeps them in the cache for a day, where the request reads them (one cache get) and says
when they were counted. Where there are none yet (a fresh install, a flushed cache) the
request computes them once, under a lock (`cache.add`) that makes the other admins arriving
meanwhile see "being computed" rather than compute them too (as they do while the job counts
them). The figures hold numbers only: every word is put on them in the reader's language, at
the request.

What the request itself reads costs a fixed number of small queries, whatever the number of
contacts, records or requests: the open requests and breaches, the last seal and check, the
active purposes and the recent campaigns. Nothing here names a person: requests are shown by
type, status and deadline.
"""

import logging
import uuid
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
from django.utils.translation import gettext
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
    localized,
)
from consent.rates import consent_states_now, people_on_file
from contacts.models import Suppression, SuppressionReason, TimelineEvent, TimelineKind
from core.charts import Chart, ChartKind, Series
from privacy.models import PrivacyRequest, PrivacyRequestStatus
from privacy.selectors import breaches_within_deadline, request_deadline_in_words

logger = logging.getLogger(__name__)

DPO_PERMISSION = "privacy.view_privacyrequest"
MARKETER_PERMISSION = "campaigns.view_campaign"
DPO = "dpo"
MARKETER = "marketer"
DASHBOARD_NAMES = {DPO: _("DPO dashboard"), MARKETER: _("Marketing dashboard")}

WEEKS = 12
LIST_LENGTH = 8  # requests listed per panel; the counts say how many there are in all
RECENT_CAMPAIGNS = 5
TOP_REASONS = 6
CLOSED_REQUESTS = (PrivacyRequestStatus.COMPLETED, PrivacyRequestStatus.REJECTED)
# the sealer runs every minute and seals even an empty window: an older last seal means
# beat's job stopped; the check runs daily
SEALER_LATE_AFTER = timedelta(minutes=5)
VERIFICATION_LATE_AFTER = timedelta(hours=26)

# The figures counted by the beat job (config/settings.py "refresh-dashboards" runs it every
# REFRESH_EVERY), kept a day: should beat stop, the page still shows the last figures, with
# their time and a warning once they are FIGURES_LATE_AFTER old. The version in the key
# changes with the figures' classes, so that a deploy never reads the previous ones.
REFRESH_EVERY = timedelta(minutes=5)
FIGURES_LATE_AFTER = 3 * REFRESH_EVERY
FIGURES_SECONDS = 24 * 60 * 60
FIGURES_KEY = "dashboard:figures:v1:{}"
# Held while one run of the beat job counts a dashboard's figures (another run leaves it be),
# and while one request counts them where there are none yet (the other requests show "being
# computed", as they do while the job counts): one lock each, so that a request stopped by the
# web server's timeout never keeps the job from counting. Both expire should their holder die.
REFRESHING_KEY = "dashboard:figures:v1:{}:refreshing"
COMPUTING_KEY = "dashboard:figures:v1:{}:computing"
LOCK_SECONDS = 15 * 60
# The ledger's past weeks change only when records are removed (an erasure, the end of a
# proof period): counted again a few times a day, the current week at every refresh.
LEDGER_PAST_SECONDS = 6 * 60 * 60

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


# --- the figures the beat job counts ---------------------------------------------------------


@dataclass(frozen=True)
class DpoFigures:
    """What the DPO's dashboard counts over whole tables, by `dpo_figures_count`."""

    counted_at: datetime
    weeks: list[date]
    people: int  # on file: neither erased nor merged (`consent.rates`)
    states: dict[tuple[int, str], dict[str, int]]  # {(purpose id, channel): {status: people}}
    history: dict[tuple[date, int, str], float | None]  # {(Monday, purpose id, channel): rate}
    unsubscribes: dict[date, int]  # per Monday
    complaints: dict[date, int]
    suppressions: dict[str, int]  # per reason


@dataclass(frozen=True)
class MarketerFigures:
    """What the marketer's dashboard counts over whole tables, by `marketer_figures_count`."""

    counted_at: datetime
    weeks: list[date]
    audiences: dict[tuple[int, str], int]  # {(purpose id, channel): eligible contacts}
    grants: dict[date, int]  # per Monday
    withdrawals: dict[date, int]
    campaigns: dict[int, dict[str, Any]]  # {campaign id: `campaign_stats`}


def dpo_figures_count(now: datetime) -> DpoFigures:
    """The DPO's figures at `now`. Five grouped queries, the first two over every consent
    state and contact, the suppressions' over the whole list."""
    weeks = last_weeks(now)
    unsubscribes, complaints = feedback_weeks(weeks)
    return DpoFigures(
        counted_at=now,
        weeks=weeks,
        states=consent_states_now(),
        people=people_on_file(),
        history=snapshot_history(weeks),
        unsubscribes=unsubscribes,
        complaints=complaints,
        suppressions=dict(
            Suppression.objects.values_list("reason").annotate(entries=Count("id")).order_by()
        ),
    )


def marketer_figures_count(now: datetime) -> MarketerFigures:
    """The marketer's figures at `now`: an `eligible_contacts` count per active purpose and
    channel, the ledger's weeks (`ledger_weeks`) and two queries per recent campaign."""
    weeks = last_weeks(now)
    ledger = ledger_weeks(weeks)
    return MarketerFigures(
        counted_at=now,
        weeks=weeks,
        audiences={
            (purpose.pk, channel): eligible_contacts(purpose, channel, now).count()
            for purpose in _active_purposes()
            for channel in purpose.channels
        },
        grants={monday: counts["grants"] for monday, counts in ledger.items()},
        withdrawals={monday: counts["withdrawals"] for monday, counts in ledger.items()},
        campaigns={campaign.pk: campaign_stats(campaign) for campaign in _recent_campaigns()},
    )


def dashboard_figures_refresh(*, now: datetime | None = None) -> list[str]:
    """Count both dashboards' figures and keep them for the requests (beat job); answers the
    dashboards counted, leaving out one that a previous run is still counting."""
    now = now or timezone.now()
    refreshed, failed = [], []
    counts: list[tuple[str, Callable[[datetime], Any]]] = [
        (DPO, dpo_figures_count),
        (MARKETER, marketer_figures_count),
    ]
    for name, count in counts:
        try:  # one dashboard failing never keeps the other's figures from being counted
            if _count_and_keep(name, count, now, REFRESHING_KEY) is not None:
                refreshed.append(name)
        except Exception:
            logger.exception("Counting the %s dashboard failed", name)
            failed.append(name)
    if failed:
        raise DashboardRefreshFailed(failed)
    return refreshed


class DashboardRefreshFailed(Exception):
    """Some dashboards could not be counted (each is logged); the others were."""


def _figures(name: str, count: Callable[[datetime], T], now: datetime) -> T | None:
    """The dashboard's figures as the beat job kept them (one cache read); where there are
    none yet, counted now unless the job or another request is at it (None: "being
    computed")."""
    keys = FIGURES_KEY.format(name), REFRESHING_KEY.format(name)
    found = cache.get_many(keys)
    figures: T | None = found.get(keys[0])
    if figures is None and keys[1] not in found:
        figures = _count_and_keep(name, count, now, COMPUTING_KEY)
    return figures


def _count_and_keep(
    name: str, count: Callable[[datetime], T], now: datetime, lock_key: str
) -> T | None:
    """`count(now)`, kept `FIGURES_SECONDS` in the cache, unless another process holds the
    dashboard's lock `lock_key` (then None)."""
    lock, token = lock_key.format(name), uuid.uuid4().hex
    if not cache.add(lock, token, LOCK_SECONDS):
        return None
    try:
        figures = count(now)
        cache.set(FIGURES_KEY.format(name), figures, FIGURES_SECONDS)
    finally:
        # ours only: a count that outlived LOCK_SECONDS must not free the next holder's lock
        # (a get then a delete, not atomic: the window is a few microseconds, its cost one
        # extra count)
        if cache.get(lock) == token:
            cache.delete(lock)
    return figures


def _freshness(figures: DpoFigures | MarketerFigures | None, now: datetime) -> dict[str, Any]:
    """When the figures were counted, and whether the refresh job is late."""
    if figures is None:
        return {"at": None, "late": False}
    return {"at": figures.counted_at, "late": figures.counted_at < now - FIGURES_LATE_AFTER}


def _active_purposes() -> list[Purpose]:
    return list(Purpose.objects.filter(is_active=True).order_by("slug"))


# --- the DPO's dashboard -------------------------------------------------------------------


def dpo_dashboard(now: datetime) -> dict[str, Any]:
    figures = _figures(DPO, dpo_figures_count, now)
    return {
        "breaches": breaches_pending(now),
        "requests": privacy_deadlines(now),
        "counted": _freshness(figures, now),
        "rates": consent_rates(_active_purposes(), figures) if figures else None,
        "feedback": unsubscribes_and_complaints(figures) if figures else None,
        "suppressions": suppression_counts(figures) if figures else None,
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
        "deadline": request_deadline_in_words(due_at=request.due_at, now=now),
    }


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


def consent_rates(purposes: list[Purpose], figures: DpoFigures) -> dict[str, Any]:
    """The consent rate of each active purpose's channels: a table of the states when the
    figures were counted and a chart per purpose over the weeks (the last day's snapshot of
    each past week; the current week's point is the count). Definition: `consent.rates`."""
    weeks, people = figures.weeks, figures.people
    rows, charts = [], []
    for purpose in purposes:
        name = localized(purpose, "name")
        series = []
        for channel in purpose.channels:
            counts = figures.states.get((purpose.pk, channel), {})
            rate = _rate(counts.get(ConsentStatus.GRANTED, 0), people)
            rows.append(_rate_row(name, channel, counts, rate))
            past = [figures.history.get((monday, purpose.pk, channel)) for monday in weeks[:-1]]
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


def snapshot_history(weeks: list[date]) -> dict[tuple[date, int, str], float | None]:
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


def feedback_weeks(weeks: list[date]) -> tuple[dict[date, int], dict[date, int]]:
    """Unsubscribes and complaints per week, from the people's timelines: one event per
    "unsubscribe from all" (`preferences_unsubscribe_all`, through a message's one-click link
    or the preference center, however many consents it withdrew; withdrawing one purpose is
    no unsubscribe), one per STOP answered to an SMS (the person leaves that channel) and one
    per complaint (`contacts.deliverability`). One grouped query, on the (kind, occurred_at)
    index."""
    unsubscribes, complaints = dict.fromkeys(weeks, 0), dict.fromkeys(weeks, 0)
    per_kind = {
        TimelineKind.UNSUBSCRIBED: unsubscribes,
        TimelineKind.SMS_STOPPED: unsubscribes,
        TimelineKind.COMPLAINT: complaints,
    }
    rows = (
        TimelineEvent.objects.filter(kind__in=per_kind, occurred_at__gte=_start_of(weeks[0]))
        .annotate(week=TruncWeek("occurred_at"))
        .values("kind", "week")
        .annotate(events=Count("id"))
        .order_by()
    )
    for row in rows:
        monday = _week_of(row["week"])
        counts = per_kind[row["kind"]]
        if monday in counts:
            counts[monday] += row["events"]
    return unsubscribes, complaints


def unsubscribes_and_complaints(figures: DpoFigures) -> Chart:
    """The chart of the unsubscribes and complaints per week (`feedback_weeks`)."""
    return Chart(
        title=gettext("Unsubscribes and complaints per week"),
        axis_label=gettext("Week of"),
        labels=[week_label(monday) for monday in figures.weeks],
        series=[
            Series(gettext("unsubscribes"), [figures.unsubscribes[w] for w in figures.weeks]),
            Series(gettext("complaints"), [figures.complaints[w] for w in figures.weeks]),
        ],
        kind=ChartKind.BAR,
    )


def suppression_counts(figures: DpoFigures) -> Chart:
    """The suppression list's entries per reason, every reason shown."""
    return Chart(
        title=gettext("Suppression list per reason"),
        axis_label=gettext("Reason"),
        labels=[str(label) for label in SuppressionReason.labels],
        series=[
            Series(
                gettext("entries"),
                [figures.suppressions.get(value, 0) for value in SuppressionReason.values],
            )
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
    figures = _figures(MARKETER, marketer_figures_count, now)
    campaigns = recent_campaign_results(figures)
    return {
        "counted": _freshness(figures, now),
        "audiences": audience_sizes(_active_purposes(), figures) if figures else None,
        "campaigns": campaigns,
        "growth": consent_growth(figures) if figures else None,
        "exclusions": top_exclusion_reasons(campaigns),
    }


def audience_sizes(purposes: list[Purpose], figures: MarketerFigures) -> list[dict[str, Any]]:
    """How many contacts each active purpose could reach on each of its channels when the
    figures were counted (`eligible_contacts`); none for a purpose or channel added since."""
    return [
        {
            "purpose": localized(purpose, "name"),
            "channel": _channel_label(channel),
            "eligible": figures.audiences.get((purpose.pk, channel)),
        }
        for purpose in purposes
        for channel in purpose.channels
    ]


def _recent_campaigns() -> list[Campaign]:
    """The last campaigns that began sending, newest first. One query."""
    return list(
        Campaign.objects.filter(
            status__in=[CampaignStatus.SENDING, CampaignStatus.SENT, CampaignStatus.CANCELLED],
            started_at__isnull=False,
        ).order_by("-started_at", "-pk")[:RECENT_CAMPAIGNS]
    )


def recent_campaign_results(figures: MarketerFigures | None) -> list[dict[str, Any]]:
    """The last campaigns that began sending, newest first, with their statistics as the
    figures counted them (`campaign_stats`; None for one begun since, or no figures yet)."""
    counted = figures.campaigns if figures else {}
    return [
        {
            "name": campaign.name,
            "status": campaign.get_status_display(),
            "started_at": campaign.started_at,
            "url": reverse("admin:campaigns_campaign_change", args=[campaign.pk]),
            "stats": counted.get(campaign.pk),
        }
        for campaign in _recent_campaigns()
    ]


def ledger_weeks(weeks: list[date]) -> dict[date, dict[str, int]]:
    """Per week, from the ledger: `grants` (records that left a consent granted) and
    `withdrawals`. A grouped query over the current week's records, on the `recorded_at`
    index; the past weeks' one is kept `LEDGER_PAST_SECONDS` in the cache."""
    key = "dashboard:ledger-weeks:v1:" + weeks[0].isoformat()
    past: dict[date, dict[str, int]] | None = cache.get(key)
    if past is None:
        past = _ledger_counts(weeks[:-1], _start_of(weeks[0]), _start_of(weeks[-1]))
        cache.set(key, past, LEDGER_PAST_SECONDS)
    return {**past, **_ledger_counts(weeks[-1:], _start_of(weeks[-1]), None)}


def _ledger_counts(
    weeks: list[date], since: datetime, until: datetime | None
) -> dict[date, dict[str, int]]:
    counts = {monday: {"grants": 0, "withdrawals": 0} for monday in weeks}
    records = ConsentRecord.objects.filter(recorded_at__gte=since)
    if until is not None:
        records = records.filter(recorded_at__lt=until)
    rows = (
        records.annotate(week=TruncWeek("recorded_at"))
        .values("week", "action", "status")
        .annotate(records=Count("id"))
        .order_by()
    )
    for row in rows:
        week = counts.get(_week_of(row["week"]))
        if week is None:
            continue
        if row["action"] == ConsentAction.WITHDRAW:
            week["withdrawals"] += row["records"]
        elif row["status"] == ConsentStatus.GRANTED:
            week["grants"] += row["records"]
    return counts


def consent_growth(figures: MarketerFigures) -> Chart:
    """Grants and withdrawals recorded per week (`ledger_weeks`)."""
    return Chart(
        title=gettext("Consents granted and withdrawn per week"),
        axis_label=gettext("Week of"),
        labels=[week_label(monday) for monday in figures.weeks],
        series=[
            Series(gettext("granted"), [figures.grants[w] for w in figures.weeks]),
            Series(gettext("withdrawn"), [figures.withdrawals[w] for w in figures.weeks]),
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
        for reason, count in (campaign["stats"] or {}).get("excluded", {}).items():
            totals[reason] = totals.get(reason, 0) + count
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:TOP_REASONS]
    return [{"reason": reason_label(reason), "count": count} for reason, count in ranked]
