"""The eligibility rule (SPEC §3 campaigns): who may receive a message for (purpose, channel)
at time t, and why the others may not.

One rule in two forms built from the same definitions: `contact_eligibility` explains one
contact (its reasons, in the API's names), `eligible_contacts` selects the audience in SQL for
millions of contacts, and `contacts_with_reasons` / `ineligible_counts` give the reasons of a
whole queryset in SQL (the audience preview's "excluded per reason"). A test builds varied
contacts and proves both forms agree on each one (tests/consent/test_eligibility_agreement.py).

Reasons, in the order an explanation lists them; an erased or a merged contact has that one
reason only.
- `erased`, `merged` (into another contact, which holds the person now), `paused` (at t),
  `restricted` (GDPR Art. 18);
- `purpose_inactive`: the purpose is retired or not used on the channel (every contact);
- `objected`, `no_consent`, `outdated_wording`, `pending_confirmation`: the consent-status
  rule of `consent.status` for the purpose's legal basis (at most one of them);
- `suppressed`: the email or phone is on the suppression list (whatever the channel);
- `undeliverable`: on that channel (bounced email, returned or missing postal address, no
  phone for SMS and phone);
- `minor`: marketing only; possibly under the age of digital consent of the country
  (`consent.minors`: a birth year, or the minor flag) while the pair's state was not set by
  the guardian (with the child, in France) in the ledger (GDPR Art. 8);
- `frequency`: marketing only; the caps per channel (per day, per 7 days: `FrequencyCap`,
  edited in the admin, the settings' `MARKETING_CAPS` where a channel has none),
  the person's own choice (weekly, monthly: one message per channel in that time) or, by
  phone, a consumer's four calls in 30 days (D. 223-9) reached, counting the `MessageSent`
  rows before t;
- `quiet_hours`: SMS only 08:00-21:30 in the recipient's local time; a consumer's marketing
  call only Monday to Friday 10:00-13:00 and 14:00-20:00 in their time zone, never on a French
  public holiday (Consumer Code D. 223-9, décret 2022-1313). Send-time rules the senders apply
  at the moment of sending (`send_time_problem`); named here for the campaign statistics but
  neither form computes them. The decree's cap of four calls to a consumer in 30 days is a
  `frequency` limit of the phone channel, in both forms.

`no_consent` also holds the people a purpose's legal basis does not reach on the channel
(`consent.status.reach_problem`: legitimate interest by email, SMS or push only for B2B
contacts and soft opt-in customers, by phone for B2B contacts and current customers; a
contract for current customers).
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.easter import easter
from dateutil.relativedelta import relativedelta
from django.db.models import (
    BooleanField,
    Case,
    Count,
    Exists,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.utils import timezone

from consent.minors import (
    guardian_consent_condition,
    guardian_consent_exists,
    minor_without_guardian,
    under_age_condition,
)
from consent.models import Channel, ConsentState, ConsentStatus, MessageSent, Purpose
from consent.selectors import frequency_caps_in_force
from consent.status import (
    MARKETING_BASES,
    NOBODY,
    ConsentProblem,
    consent_problem,
    consent_problem_conditions,
    pair_state,
    reach_condition,
    reach_problem,
    usable_grant_condition,
)
from contacts.models import (
    Contact,
    ContactStatus,
    EmailDeliverability,
    Frequency,
    PostalDeliverability,
)
from contacts.selectors import (
    contact_is_suppressed,
    suppressed_condition,
    unsuppressed_condition,
)

# The name under which the reasons' queries join each contact's state for the pair.
STATE = "eligibility_state"


class Ineligible(StrEnum):
    """Why a contact may not receive a message; the values are SPEC §4's reason names."""

    ERASED = "erased"
    MERGED = "merged"
    PAUSED = "paused"
    RESTRICTED = "restricted"
    PURPOSE_INACTIVE = "purpose_inactive"
    OBJECTED = "objected"
    NO_CONSENT = "no_consent"
    OUTDATED_WORDING = "outdated_wording"
    PENDING_CONFIRMATION = "pending_confirmation"
    SUPPRESSED = "suppressed"
    UNDELIVERABLE = "undeliverable"
    MINOR = "minor"
    FREQUENCY = "frequency"
    QUIET_HOURS = "quiet_hours"


# Contacts no message may reach, whatever else holds, each with its one reason.
GONE: dict[str, Ineligible] = {
    ContactStatus.ERASED: Ineligible.ERASED,
    ContactStatus.MERGED: Ineligible.MERGED,
}


# At most four marketing calls from us to a consumer in 30 days, whatever the purpose
# (Consumer Code D. 223-9, décret 2022-1313): a frequency limit of the phone channel.
CALLS_PER_PERIOD = 4
CALL_PERIOD = timedelta(days=30)


@dataclass(frozen=True)
class FrequencyLimit:
    """`count` marketing messages on the channel after `since` reach the limit: for everyone
    (a global cap), for those who chose `frequency`, or (`consumers_only`) for those who are
    not B2B contacts."""

    since: datetime
    count: int
    frequency: str | None = None
    consumers_only: bool = False


def frequency_limits(at: datetime, channel: str | None = None) -> list[FrequencyLimit]:
    """The frequency limits in force at `at` on `channel`: the global caps of the channel
    (edited in the admin, else the settings' defaults; `channel` None: the defaults), the
    person's own choice, and on the phone the consumers' legal cap.

    The caps are read from the cache (`frequency_caps_in_force`): explaining a thousand
    contacts reads them once, not once each."""
    caps = frequency_caps_in_force(channel)
    limits = [
        FrequencyLimit(since=at - window, count=count)
        for count, window in ((caps.per_day, timedelta(days=1)), (caps.per_week, timedelta(days=7)))
        if count
    ]
    limits += [
        FrequencyLimit(since=at - timedelta(days=7), count=1, frequency=Frequency.WEEKLY),
        FrequencyLimit(since=at - relativedelta(months=1), count=1, frequency=Frequency.MONTHLY),
    ]
    if channel == Channel.PHONE:
        limits.append(
            FrequencyLimit(since=at - CALL_PERIOD, count=CALLS_PER_PERIOD, consumers_only=True)
        )
    return limits


def purpose_in_use(purpose: Purpose, channel: str) -> bool:
    return purpose.is_active and channel in purpose.channels


# --- the explanation: one contact ----------------------------------------------------------


def contact_eligibility(
    contact: Contact, purpose: Purpose, channel: str, at: datetime | None = None
) -> list[str]:
    """Every reason the contact may not receive a message for (purpose, channel) at `at`
    (default: now), in the order of `Ineligible`; an empty list means eligible."""
    at = at or timezone.now()
    if contact.status in GONE:
        return [GONE[contact.status]]
    reasons: list[str] = []
    if contact.paused_until is not None and contact.paused_until > at:
        reasons.append(Ineligible.PAUSED)
    if contact.processing_restricted_at is not None:
        reasons.append(Ineligible.RESTRICTED)
    if not purpose_in_use(purpose, channel):
        reasons.append(Ineligible.PURPOSE_INACTIVE)
    state = ConsentState.objects.filter(contact=contact, purpose=purpose, channel=channel).first()
    problem = consent_problem(contact, purpose, state) or reach_problem(
        contact, purpose, channel, state, at
    )
    if problem is not None:
        reasons.append(Ineligible(problem))
    if contact_is_suppressed(contact):
        reasons.append(Ineligible.SUPPRESSED)
    if not _deliverable(contact, channel):
        reasons.append(Ineligible.UNDELIVERABLE)
    if purpose.legal_basis in MARKETING_BASES and minor_without_guardian(contact, state, at):
        reasons.append(Ineligible.MINOR)
    if purpose.legal_basis in MARKETING_BASES and frequency_reached(contact, channel, at):
        reasons.append(Ineligible.FREQUENCY)
    return reasons


def _deliverable(contact: Contact, channel: str) -> bool:
    if channel == Channel.EMAIL:
        return contact.email_deliverability == EmailDeliverability.DELIVERABLE
    if channel == Channel.POSTAL:
        return contact.postal_deliverability == PostalDeliverability.DELIVERABLE and bool(
            contact.address_line1 and contact.city
        )
    if channel in (Channel.SMS, Channel.PHONE):
        return bool(contact.phone)
    return True


def frequency_reached(contact: Contact, channel: str, at: datetime) -> bool:
    limits = [
        limit
        for limit in frequency_limits(at, channel)
        if limit.frequency in (None, contact.frequency)
        and not (limit.consumers_only and contact.b2b)
    ]
    if not limits:
        return False  # no cap set, and no frequency chosen
    earliest = min(limit.since for limit in limits)
    sent = list(
        MessageSent.objects.filter(
            contact=contact, channel=channel, sent_at__gt=earliest, sent_at__lte=at
        ).values_list("sent_at", flat=True)
    )
    return any(sum(1 for when in sent if when > limit.since) >= limit.count for limit in limits)


# --- the audience: a queryset --------------------------------------------------------------


def eligible_contacts(
    purpose: Purpose,
    channel: str,
    at: datetime | None = None,
    queryset: QuerySet[Contact] | None = None,
    *,
    frequency: bool = True,
    few: bool = False,
) -> QuerySet[Contact]:
    """The contacts (of `queryset`, default all) eligible for (purpose, channel) at `at`:
    those `contact_eligibility` finds no reason against, selected in SQL.

    Every condition is a column test, a (NOT) EXISTS the database runs as a join, or a test of
    membership in a set it builds once, so the query stays set-based over millions of
    contacts. `frequency=False` leaves out the frequency limits, for a message already counted
    (a letter in the mail house's file). `few`: the queryset holds a few contacts (a batch
    being sent): every frequency limit is then counted for each of them alone, through the
    index on their messages, rather than as the set of every contact at the limit, whose
    cost follows all the messages sent in its window. An audience has no order: add one to
    read it in one.
    """
    at, contacts = at or timezone.now(), _contacts(queryset)
    if not purpose_in_use(purpose, channel):
        return contacts.none()
    conditions = [
        ~Q(status__in=GONE),
        ~_paused(at),
        Q(processing_restricted_at__isnull=True),
        usable_grant_condition(purpose, channel),
        *_reached(purpose, channel, at),
        unsuppressed_condition(),
        ~_undeliverable(channel),
    ]
    if purpose.legal_basis in MARKETING_BASES:
        under_age = under_age_condition(at)
        conditions.append(~(under_age & ~guardian_consent_exists(purpose, channel)))
        if frequency:
            limits = _frequency_conditions(channel, at, correlated=True, few=few)
            conditions += [~limit for limit in limits]
    return contacts.filter(*conditions).order_by()


def reason_conditions(purpose: Purpose, channel: str, at: datetime) -> dict[Ineligible, Q]:
    """Each reason in SQL over contacts, true where `contact_eligibility` lists it: column
    tests on the contact and on its state for the pair (the `STATE` relation, which the
    queryset must carry: `with_pair_state`), and tests of membership in sets the database
    builds once per query (the suppression list, the contacts at a frequency limit), so that
    counting every reason over millions of contacts is one pass, without a subquery per
    contact."""
    live = ~Q(status__in=GONE)
    by_reason = {reason: Q(status=status) for status, reason in GONE.items()}
    for reason, condition in _live_conditions(purpose, channel, at).items():
        by_reason[reason] = live & condition
    return by_reason


def first_reason_conditions(purpose: Purpose, channel: str, at: datetime) -> dict[Ineligible, Q]:
    """`reason_conditions` for tests made in their order, each only where the ones before it
    failed (the `WHEN`s of a `CASE` giving the first reason): once the gone contacts are
    caught, the others need not test again that the contact is live."""
    by_reason = {reason: Q(status=status) for status, reason in GONE.items()}
    return by_reason | _live_conditions(purpose, channel, at)


def _live_conditions(purpose: Purpose, channel: str, at: datetime) -> dict[Ineligible, Q]:
    """The reasons of a live contact (neither erased nor merged), in the order of
    `Ineligible`."""
    problems = _problem_conditions(purpose, channel, at)
    frequency = NOBODY
    if purpose.legal_basis in MARKETING_BASES:
        for limit in _frequency_conditions(channel, at):
            frequency |= limit
    conditions = {
        Ineligible.PAUSED: _paused(at),
        Ineligible.RESTRICTED: Q(processing_restricted_at__isnull=False),
        Ineligible.PURPOSE_INACTIVE: NOBODY if purpose_in_use(purpose, channel) else Q(),
        **{Ineligible(problem): condition for problem, condition in problems.items()},
        Ineligible.SUPPRESSED: suppressed_condition(),
        Ineligible.UNDELIVERABLE: _undeliverable(channel),
        Ineligible.MINOR: _minor_without_guardian(purpose, at),
        Ineligible.FREQUENCY: frequency,
    }
    return {reason: conditions[reason] for reason in Ineligible if reason in conditions}


def _reached(purpose: Purpose, channel: str, at: datetime) -> list[Q]:
    """The audience's condition that the purpose's legal basis reaches the contact on the
    channel (`consent.status.reach_condition`), if the basis restricts it."""
    granted = ConsentState.objects.filter(
        contact=OuterRef("pk"), purpose=purpose, channel=channel, status=ConsentStatus.GRANTED
    )
    reach = reach_condition(purpose, channel, at, Q(Exists(granted)))
    return [] if reach is None else [reach]


def _problem_conditions(purpose: Purpose, channel: str, at: datetime) -> dict[ConsentProblem, Q]:
    """The consent-status problems in SQL, where `no_consent` also holds the contacts the
    purpose's basis does not reach on the channel (and that have no other problem), as
    `contact_eligibility` gives `reach_problem` only when `consent_problem` found none."""
    problems = consent_problem_conditions(purpose, STATE)
    reach = reach_condition(purpose, channel, at, Q(**{f"{STATE}__status": ConsentStatus.GRANTED}))
    if reach is None:
        return problems
    unreached = ~reach
    for condition in problems.values():
        unreached &= ~condition
    problems[ConsentProblem.NO_CONSENT] = (
        problems[ConsentProblem.NO_CONSENT] | unreached
        if ConsentProblem.NO_CONSENT in problems
        else unreached
    )
    return problems


def contacts_with_reasons(
    purpose: Purpose,
    channel: str,
    at: datetime | None = None,
    queryset: QuerySet[Contact] | None = None,
) -> QuerySet[Contact]:
    """The contacts annotated with one boolean per reason (`ineligible_<reason>`); read them
    in order with `reasons_of`."""
    at, contacts = at or timezone.now(), with_pair_state(_contacts(queryset), purpose, channel)
    annotations = {
        f"ineligible_{reason}": Case(
            When(condition, then=Value(True)), default=Value(False), output_field=BooleanField()
        )
        for reason, condition in reason_conditions(purpose, channel, at).items()
    }
    return contacts.annotate(**annotations)


def reasons_of(contact: Contact) -> list[str]:
    """The reasons of a contact from `contacts_with_reasons`, in the order of `Ineligible`."""
    return [reason for reason in Ineligible if getattr(contact, f"ineligible_{reason}", False)]


def ineligible_counts(
    purpose: Purpose,
    channel: str,
    at: datetime | None = None,
    queryset: QuerySet[Contact] | None = None,
) -> dict[str, int]:
    """How many contacts (of `queryset`) each reason excludes, in one query (one pass over the
    contacts joined once to their state for the pair, a `COUNT(*) FILTER (WHERE ...)` per
    reason); a contact with several reasons counts under each. Reasons that exclude nobody
    are left out."""
    at, contacts = at or timezone.now(), with_pair_state(_contacts(queryset), purpose, channel)
    counts = contacts.aggregate(
        **{
            str(reason): Count("pk", filter=condition)
            for reason, condition in reason_conditions(purpose, channel, at).items()
        }
    )
    return {reason: count for reason, count in counts.items() if count}


def with_pair_state(
    contacts: QuerySet[Contact], purpose: Purpose, channel: str
) -> QuerySet[Contact]:
    """The contacts with their state for (purpose, channel) joined as `STATE`."""
    return contacts.annotate(**{STATE: pair_state(purpose, channel)})


def _contacts(queryset: QuerySet[Contact] | None) -> QuerySet[Contact]:
    return queryset if queryset is not None else Contact.objects.all()


def _paused(at: datetime) -> Q:
    return Q(paused_until__gt=at)


def _undeliverable(channel: str) -> Q:
    """`_deliverable` in SQL, negated: the contacts the channel cannot reach."""
    if channel == Channel.EMAIL:
        return ~Q(email_deliverability=EmailDeliverability.DELIVERABLE)
    if channel == Channel.POSTAL:
        return (
            ~Q(postal_deliverability=PostalDeliverability.DELIVERABLE)
            | Q(address_line1="")
            | Q(city="")
        )
    if channel in (Channel.SMS, Channel.PHONE):
        return Q(phone="")
    return NOBODY


def _minor_without_guardian(purpose: Purpose, at: datetime) -> Q:
    """`minor_without_guardian` in SQL, over the `STATE` relation (a contact without a state
    for the pair has no guardian's consent either)."""
    if purpose.legal_basis not in MARKETING_BASES:
        return NOBODY
    by_guardian = Q(**{f"{STATE}__isnull": False}) & guardian_consent_condition(f"{STATE}__actor")
    return under_age_condition(at) & ~by_guardian


def _frequency_conditions(
    channel: str, at: datetime, *, correlated: bool = False, few: bool = False
) -> list[Q]:
    """One condition per frequency limit, true where it is reached: the contact has at least
    `count` messages on the channel in the limit's window (and, for a limit of the person's
    own choice, chose that frequency).

    Two SQL forms of the same test, both set-based. By default the set of contacts at the
    limit, built once per query (an uncorrelated `IN` the database hashes; its cost follows
    the messages sent in the window, not the contacts): what the per-reason counts need,
    where each condition is evaluated for every contact. `correlated`: for the audience,
    where each limit is negated in the WHERE clause: a limit of one message as `NOT EXISTS`,
    which the database runs as an anti-join (however many messages were sent); a limit of
    several stays the hashed set of the contacts at it, unless the contacts are `few`: then
    it is counted for each contact alone (a correlated count on the index of its messages)."""
    conditions = []
    for limit in frequency_limits(at, channel):
        in_window = MessageSent.objects.filter(
            channel=channel, sent_at__gt=limit.since, sent_at__lte=at
        )
        if limit.frequency is not None:
            in_window = in_window.filter(contact__frequency=limit.frequency)
        if limit.consumers_only:
            in_window = in_window.filter(contact__b2b=False)
        if correlated and (limit.count == 1 or few):
            own: QuerySet[Any, Any] = in_window.filter(contact=OuterRef("pk"))
            if limit.count > 1:
                own = (
                    own.order_by()
                    .values("contact")
                    .annotate(sent_count=Count("pk"))
                    .filter(sent_count__gte=limit.count)
                )
            conditions.append(Q(Exists(own)))
            continue
        contact_ids: QuerySet[Any, Any] = in_window.values("contact_id")
        if limit.count > 1:
            contact_ids = (
                contact_ids.annotate(sent_count=Count("pk"))
                .filter(sent_count__gte=limit.count)
                .values("contact_id")
            )
        reached = Q(pk__in=contact_ids)
        if limit.frequency is not None:
            reached &= Q(frequency=limit.frequency)
        if limit.consumers_only:
            reached &= Q(b2b=False)
        conditions.append(reached)
    return conditions


# --- at the moment of sending: the recipient's local time ---------------------------------

# SMS marketing hours (SPEC §3 campaigns), every day.
SMS_HOURS = ((time(8), time(21, 30)),)
# A consumer's marketing call (Consumer Code D. 223-9, décret 2022-1313 of 13 October 2022):
# Monday to Friday, 10:00-13:00 and 14:00-20:00 in their time zone, not on public holidays
# (Labour Code L3133-1), and at most four calls from us in 30 days.
CALL_HOURS = ((time(10), time(13)), (time(14), time(20)))
CALL_DAYS = frozenset(range(5))  # Monday (0) to Friday (4)
# The time zone of a recipient, from their country; Europe/Paris when unknown or not listed
# (the product's recipients are French first). Overseas France has its own country codes.
DEFAULT_TIME_ZONE = "Europe/Paris"
COUNTRY_TIME_ZONES = {
    "FR": "Europe/Paris",
    "MC": "Europe/Monaco",
    "BE": "Europe/Brussels",
    "LU": "Europe/Luxembourg",
    "CH": "Europe/Zurich",
    "DE": "Europe/Berlin",
    "NL": "Europe/Amsterdam",
    "IT": "Europe/Rome",
    "ES": "Europe/Madrid",
    "AT": "Europe/Vienna",
    "DK": "Europe/Copenhagen",
    "SE": "Europe/Stockholm",
    "NO": "Europe/Oslo",
    "PL": "Europe/Warsaw",
    "CZ": "Europe/Prague",
    "PT": "Europe/Lisbon",
    "IE": "Europe/Dublin",
    "GB": "Europe/London",
    "FI": "Europe/Helsinki",
    "GR": "Europe/Athens",
    "RO": "Europe/Bucharest",
    "BG": "Europe/Sofia",
    "EE": "Europe/Tallinn",
    "LV": "Europe/Riga",
    "LT": "Europe/Vilnius",
    "CY": "Asia/Nicosia",
    "GP": "America/Guadeloupe",
    "MQ": "America/Martinique",
    "GF": "America/Cayenne",
    "RE": "Indian/Reunion",
    "YT": "Indian/Mayotte",
    "PM": "America/Miquelon",
    "BL": "America/St_Barthelemy",
    "MF": "America/Marigot",
    "NC": "Pacific/Noumea",
    "PF": "Pacific/Tahiti",
    "WF": "Pacific/Wallis",
}


def contact_time_zone(contact: Contact) -> ZoneInfo:
    """The recipient's time zone, from their country (`COUNTRY_TIME_ZONES`)."""
    return ZoneInfo(COUNTRY_TIME_ZONES.get(contact.country.upper(), DEFAULT_TIME_ZONE))


@cache
def french_public_holidays(year: int) -> frozenset[date]:
    """The French public holidays of `year` (Labour Code L3133-1): the fixed dates, and
    Easter Monday, Ascension Day and Whit Monday from Easter Sunday. (Alsace-Moselle's Good
    Friday and 26 December and the overseas abolition days are not in the national list.)"""
    sunday = easter(year)
    fixed = [(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)]
    return frozenset(
        [date(year, month, day) for month, day in fixed]
        + [sunday + timedelta(days=1), sunday + timedelta(days=39), sunday + timedelta(days=50)]
    )


def channel_quiet_at(contact: Contact, channel: str, at: datetime) -> bool:
    """Whether `at` is outside the hours a marketing message on `channel` may reach the
    contact, in their local time: SMS 08:00-21:30; a consumer's call on working days
    10:00-13:00 and 14:00-20:00 (D. 223-9; a B2B contact is not a consumer). Other channels
    are never quiet."""
    local = at.astimezone(contact_time_zone(contact))
    if channel == Channel.SMS:
        return not _within(local.time(), SMS_HOURS)
    if channel == Channel.PHONE and not contact.b2b:
        working_day = local.weekday() in CALL_DAYS and local.date() not in french_public_holidays(
            local.year
        )
        return not (working_day and _within(local.time(), CALL_HOURS))
    return False


def sms_quiet_until(contact: Contact, at: datetime) -> datetime:
    """When an SMS that `channel_quiet_at` holds back at `at` may leave: the next opening of
    the SMS hours in the contact's local time (`at` itself when they are open)."""
    zone = contact_time_zone(contact)
    local = at.astimezone(zone)
    if _within(local.time(), SMS_HOURS):
        return at
    opening = SMS_HOURS[0][0]
    day = local.date() if local.time() < opening else local.date() + timedelta(days=1)
    return datetime.combine(day, opening, tzinfo=zone)


def _within(moment: time, ranges: tuple[tuple[time, time], ...]) -> bool:
    return any(start <= moment < end for start, end in ranges)


def phone_call_allowed(contact: Contact, at: datetime) -> bool:
    """Whether a marketing call to the contact may be placed at `at` as far as the legal
    days and hours go (the cap of four calls in 30 days is a `frequency` limit of the rule)."""
    return send_time_problem(contact, Channel.PHONE, at) is None


def send_time_problem(contact: Contact, channel: str, at: datetime) -> Ineligible | None:
    """`quiet_hours` when `at` is outside the legal or house hours of `channel` for the
    contact, else None. The senders call it for each message at the moment of sending, after
    `contact_eligibility` or `eligible_contacts`."""
    return Ineligible.QUIET_HOURS if channel_quiet_at(contact, channel, at) else None


# --- for the notices that are not marketing (campaigns.kinds) ------------------------------


def channel_deliverable(contact: Contact, channel: str) -> bool:
    """Whether the channel can reach the contact (`undeliverable` of the rule, for one)."""
    return _deliverable(contact, channel)


def undeliverable_condition(channel: str) -> Q:
    """The contacts the channel cannot reach, in SQL (`channel_deliverable`'s twin)."""
    return _undeliverable(channel)
