"""The consent rate per purpose and channel, now and day by day (the DPO's dashboard).

The rate of a (purpose, channel) is the share of the people on file (contacts neither erased
nor merged) who hold a granted `ConsentState` for it. "Now" is one GROUP BY over
`ConsentState` by (purpose, channel, status), joined to the contacts for their status.

The past is read from `ConsentRateSnapshot`, a row per (day, purpose, channel) written by a
daily beat job, rather than rebuilt from the ledger: the state of every pair at the end of
each past week would take, for each week, the last record of every (contact, purpose,
channel) before it, a window over the whole ledger (millions of rows) at each render, and a
removed record (erasure, the end of a proof period) would rewrite the past. The snapshot
costs one grouped query a day and makes the history a read of a few hundred rows, at the
price of starting on the day the job first runs.
"""

from datetime import date

from django.db.models import Count
from django.utils import timezone

from consent.models import ConsentRateSnapshot, ConsentState, ConsentStatus
from contacts.models import Contact, ContactStatus

# The people the rate is a share of: those we still hold (an erased or merged contact is gone).
GONE_STATUSES = (ContactStatus.ERASED, ContactStatus.MERGED)


def people_on_file() -> int:
    """How many contacts are neither erased nor merged."""
    return Contact.objects.exclude(status__in=GONE_STATUSES).count()


def consent_states_now() -> dict[tuple[int, str], dict[str, int]]:
    """{(purpose id, channel): {status: people}} of the people on file, in one grouped query."""
    rows = (
        ConsentState.objects.exclude(contact__status__in=GONE_STATUSES)
        .values("purpose_id", "channel", "status")
        .annotate(people=Count("id"))
        .order_by()
    )
    states: dict[tuple[int, str], dict[str, int]] = {}
    for row in rows:
        states.setdefault((row["purpose_id"], row["channel"]), {})[row["status"]] = row["people"]
    return states


def consent_rates_snapshot(*, day: date | None = None) -> int:
    """Write the day's consent rate snapshot (default today): granted people per (purpose,
    channel) and the people on file; a second run the same day replaces the first's counts.
    Answers the number of rows written."""
    day = day or timezone.localdate()
    contacts = people_on_file()
    now = timezone.now()
    rows = [
        ConsentRateSnapshot(
            day=day,
            purpose_id=purpose_id,
            channel=channel,
            granted=statuses.get(ConsentStatus.GRANTED, 0),
            contacts=contacts,
            taken_at=now,
        )
        for (purpose_id, channel), statuses in consent_states_now().items()
    ]
    ConsentRateSnapshot.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["day", "purpose", "channel"],
        update_fields=["granted", "contacts", "taken_at"],
    )
    return len(rows)
