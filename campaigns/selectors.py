"""Reads of campaigns: a segment's contacts, the audience preview, statistics, recipients."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from campaigns.models import (
    Campaign,
    CampaignStep,
    Recipient,
    RecipientStatus,
    Segment,
)
from contacts.models import Contact
from contacts.selectors import contacts_by_email


def segment_contacts(segment: Segment | None) -> QuerySet[Contact]:
    """The contacts of the segment (every contact without one), before any eligibility rule:
    every criterion given must match; interests by `EXISTS`, so no contact comes twice."""
    contacts = Contact.objects.all()
    if segment is None:
        return contacts
    lists = {
        "lifecycle_stage__in": segment.lifecycle_stages,
        "country__in": [country.upper() for country in segment.countries],
        "language__in": segment.languages,
        "source__in": segment.sources,
    }
    contacts = contacts.filter(**{lookup: values for lookup, values in lists.items() if values})
    dates = {
        "created_at__date__gte": segment.created_from,
        "created_at__date__lte": segment.created_until,
        "last_activity_at__date__gte": segment.active_from,
        "last_activity_at__date__lte": segment.active_until,
    }
    contacts = contacts.filter(**{lookup: day for lookup, day in dates.items() if day})
    if segment.pk is not None:
        interest_ids = list(segment.interests.values_list("pk", flat=True))
        if interest_ids:
            chosen = Contact.interests.through.objects.filter(
                contact_id=OuterRef("pk"), interest_id__in=interest_ids
            )
            contacts = contacts.filter(Exists(chosen))
    return contacts


@dataclass(frozen=True)
class StepAudience:
    """A step's audience preview: who is eligible, and how many each reason excludes (a
    contact under the first reason against them, as the step's row records it)."""

    step: CampaignStep
    eligible: int
    excluded: dict[str, int] = field(default_factory=dict)


def campaign_audience(campaign: Campaign, at: datetime | None = None) -> list[StepAudience]:
    """Per step, the eligible count and the count excluded per reason among the segment's
    contacts (those outside it are not counted: `not_in_segment`), at `at` (default now).

    Each contact counts under the first reason against it, in the order of
    `consent.eligibility.Ineligible`: what the step's row will record when it begins
    (`campaigns.sending.step_begin` writes them with the same rules), so that the preview and
    the campaign's statistics say the same, and the counts add up to the segment. The
    eligible are exactly the audience `eligible_contacts` selects (a test proves it)."""
    at = at or timezone.now()
    return [
        step_audience(campaign=campaign, step=step, at=at)
        for step in campaign.steps.order_by("position")
    ]


def step_audience(*, campaign: Campaign, step: CampaignStep, at: datetime) -> StepAudience:
    """One step's audience preview (`campaign_audience`): its contacts grouped by the first
    reason the campaign kind's rules find against them (`campaigns.kinds`), in one query."""
    from campaigns.kinds import SKIP_REASON, kind_rules

    rules = kind_rules(campaign)
    contacts = rules.with_reason(campaign, step, rules.audience(campaign), at)
    counts = {
        row[SKIP_REASON]: row["count"]
        for row in contacts.values(SKIP_REASON).annotate(count=Count("pk")).order_by()
    }
    eligible = counts.pop("", 0)
    return StepAudience(step=step, eligible=eligible, excluded=counts)


STAT_NAMES = ("targeted", "sent", "delivered", "bounced", "complained", "unsubscribed")


def campaign_stats(campaign: Campaign) -> dict[str, object]:
    """The campaign's statistics from its recipients (zeros for a draft): `targeted` every
    recipient considered, `excluded` the skipped ones per reason, and the outcomes; `steps`
    the same per step (`step_stats`), of which the campaign's are the sums. Two queries."""
    steps = step_stats(campaign)
    excluded: dict[str, int] = {}
    for step in steps:
        for reason, count in step["excluded"].items():
            excluded[reason] = excluded.get(reason, 0) + count
    return {
        **{name: sum(step[name] for step in steps) for name in STAT_NAMES},
        "excluded": dict(sorted(excluded.items())),
        "steps": steps,
    }


def step_stats(campaign: Campaign) -> list[dict[str, Any]]:
    """Per step, in order: its `position` and `channel`, the counts of `STAT_NAMES` (a step
    not begun has zeros) and `excluded` per reason. One grouped query for the counts of
    every step and one for the exclusions, whatever the number of steps: `delivered` when
    the provider confirmed it, `bounced` and `complained` by the row's status, `unsubscribed`
    when attributed to the message (`campaigns.feedback`)."""
    counts = (
        CampaignStep.objects.filter(campaign=campaign)
        .annotate(
            targeted=Count("recipients"),
            # a row `sending` holds its reservation's time: not sent until it left
            sent=Count(
                "recipients",
                filter=Q(recipients__sent_at__isnull=False)
                & ~Q(recipients__status=RecipientStatus.SENDING),
            ),
            delivered=Count("recipients", filter=Q(recipients__delivered_at__isnull=False)),
            bounced=Count("recipients", filter=Q(recipients__status=RecipientStatus.BOUNCED)),
            complained=Count("recipients", filter=Q(recipients__status=RecipientStatus.COMPLAINED)),
            unsubscribed=Count("recipients", filter=Q(recipients__unsubscribed_at__isnull=False)),
        )
        .order_by("position")
        .values("pk", "position", "channel", *STAT_NAMES)
    )
    excluded = (
        Recipient.objects.filter(campaign=campaign, status=RecipientStatus.SKIPPED)
        .values("step_id", "exclusion_reason")
        .annotate(count=Count("pk"))
        .order_by("step_id", "exclusion_reason")
    )
    reasons: dict[int, dict[str, int]] = {}
    for row in excluded:
        reasons.setdefault(row["step_id"], {})[row["exclusion_reason"]] = row["count"]
    return [
        {
            "position": step["position"],
            "channel": step["channel"],
            **{name: step[name] or 0 for name in STAT_NAMES},
            "excluded": reasons.get(step["pk"], {}),
        }
        for step in counts
    ]


def campaign_recipients(campaign: Campaign, *, email: str | None = None) -> QuerySet[Recipient]:
    """The campaign's recipients in step order; with `email`, those of that person (the
    normalised match of `contacts_by_email`)."""
    recipients = Recipient.objects.filter(campaign=campaign).select_related(
        "contact", "step", "consent_record"
    )
    if email is not None:
        recipients = recipients.filter(contact__in=contacts_by_email(email))
    return recipients.order_by("step__position", "pk")


def contact_campaigns_received(contact: Contact, *, limit: int) -> list[Recipient]:
    """The contact's recipient rows, the latest first, at most `limit`, with their campaign
    and step: one statement."""
    return list(
        Recipient.objects.filter(contact=contact)
        .select_related("campaign", "step")
        .order_by("-created_at", "-pk")[:limit]
    )
