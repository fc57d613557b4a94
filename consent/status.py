"""The one consent-status rule: does a person hold a usable grant for (purpose, channel), and
if not, why not.

Every reader of consent state asks its question here rather than comparing statuses itself:
the eligibility rule (`consent.eligibility`, per contact and in SQL), the preference center's
ticks, the withdrawals of an unsubscribe or an unticked form box, and retention. The state is
the current one (`ConsentState`): a send re-checks it at send time.

Beside it, `reach_problem` / `reach_condition`: whom a purpose's legal basis reaches on a
channel at all (legitimate interest and contract; issue 12), which the eligibility rule adds to
`no_consent`. The preference center does not read it: its ticks say whether the person agreed
or objected, not whether we may use that basis for them.
"""

from datetime import date, datetime
from enum import StrEnum

from django.db.models import Exists, F, FilteredRelation, OuterRef, Q, QuerySet
from django.utils import timezone

from consent.models import Channel, ConsentState, ConsentStatus, LegalBasis, Purpose
from contacts.models import Contact, Relationship

# Legal bases under which we market to a person: consent, or legitimate interests until they
# object. Contract, legal obligation and the others are not marketing: no consent to hold, and
# never switched off from the preference center.
MARKETING_BASES = frozenset({LegalBasis.CONSENT, LegalBasis.LEGITIMATE_INTERESTS})
# What a withdrawal must still end (an unsubscribe, an unticked form box): a grant, usable or
# waiting for its confirmation, since a pending grant left alone could be confirmed later.
LIVE_STATUSES = frozenset({ConsentStatus.GRANTED, ConsentStatus.PENDING})
# What keeps a person's data for a purpose's retention period: a grant the person gave, on
# whatever wording (the re-permission email asks again). A pending grant is not consent yet
# and expires within days (DOUBLE_OPT_IN_TTL): it does not count.
RETAINING_STATUSES = frozenset({ConsentStatus.GRANTED})
# Electronic mail in the sense of CPCE L34-5: prior consent from a consumer, except soft opt-in.
ELECTRONIC_CHANNELS = frozenset({Channel.EMAIL, Channel.SMS, Channel.PUSH})
# A condition no contact meets (Django leaves it out of the SQL it is combined into).
NOBODY = Q(pk__in=[])


class ConsentProblem(StrEnum):
    """Why a person holds no usable grant; the values are the API's exclusion reasons."""

    OBJECTED = "objected"
    NO_CONSENT = "no_consent"
    OUTDATED_WORDING = "outdated_wording"
    PENDING_CONFIRMATION = "pending_confirmation"


def consent_problem(
    contact: Contact, purpose: Purpose, state: ConsentState | None
) -> ConsentProblem | None:
    """Why the contact may not be sent marketing for `purpose` on the state's channel under
    its legal basis, or None when it may (`state`: the contact's state for that pair, if any).

    Consent: a grant, confirmed where double opt-in applies (a pending one awaits the emailed
    link), on wording no material change has replaced since (a minor change keeps it); none,
    withdrawn or expired is `no_consent`. Legitimate interest: usable until the person objects,
    by withdrawing that pair or by a marketing objection (`Contact.marketing_objected_at`, which
    also covers purposes and channels created after it, until a later grant of that pair).
    Either basis: an objection to profiling keeps every profiling purpose off. Other bases are
    not marketing and hold no consent: never a problem.
    """
    if purpose.legal_basis not in MARKETING_BASES:
        return None
    if purpose.is_profiling and contact.profiling_objected_at is not None:
        return ConsentProblem.OBJECTED
    if purpose.legal_basis == LegalBasis.LEGITIMATE_INTERESTS:
        return ConsentProblem.OBJECTED if _objected(contact, state) else None
    if state is None or state.status not in LIVE_STATUSES:
        return ConsentProblem.NO_CONSENT
    if state.purpose_version_id in purpose.replaced_version_ids():
        return ConsentProblem.OUTDATED_WORDING
    if state.status == ConsentStatus.PENDING:
        return ConsentProblem.PENDING_CONFIRMATION
    return None


def _objected(contact: Contact, state: ConsentState | None) -> bool:
    """Whether the person objected to a legitimate-interest pair (see `consent_problem`)."""
    if state is not None and state.status == ConsentStatus.WITHDRAWN:
        return True
    since = contact.marketing_objected_at
    if since is None:
        return False
    return not (
        state is not None and state.status == ConsentStatus.GRANTED and state.since >= since
    )


def holds_usable_grant(contact: Contact, purpose: Purpose, state: ConsentState | None) -> bool:
    """Whether marketing for (purpose, channel) may reach the person as far as consent goes:
    what the preference center shows ticked, and what eligibility requires."""
    return consent_problem(contact, purpose, state) is None


def state_is_live(state: ConsentState | None) -> bool:
    """Whether a withdrawal still has something to end (`LIVE_STATUSES`)."""
    return state is not None and state.status in LIVE_STATUSES


# The same rule in SQL, over a queryset of contacts.


def pair_state(purpose: Purpose, channel: str) -> FilteredRelation:
    """The contact's state for (purpose, channel) as a relation: annotated on a queryset of
    contacts under a name, it is joined once (a LEFT JOIN, at most one row per contact), and
    `consent_problem_conditions` tests its columns instead of running a subquery per contact."""
    return FilteredRelation(
        "consent_states",
        condition=Q(consent_states__purpose=purpose, consent_states__channel=channel),
    )


def consent_problem_conditions(purpose: Purpose, state: str) -> dict[ConsentProblem, Q]:
    """`consent_problem` in SQL: for each problem, the contacts it is the answer for; the
    conditions exclude each other as the answers do. None of them: a usable grant.

    `state` names the `pair_state` relation of the queryset the conditions filter (no state:
    its columns are NULL), so every problem is a column test on the one join."""
    if purpose.legal_basis not in MARKETING_BASES:
        return {}
    profiling = _profiling_objected(purpose)
    if purpose.legal_basis == LegalBasis.LEGITIMATE_INTERESTS:
        withdrawn = Q(**{f"{state}__status": ConsentStatus.WITHDRAWN})
        lifted = Q(
            **{
                f"{state}__status": ConsentStatus.GRANTED,
                f"{state}__since__gte": F("marketing_objected_at"),
            }
        )
        objected = Q(marketing_objected_at__isnull=False) & ~lifted
        return {ConsentProblem.OBJECTED: profiling | withdrawn | objected}
    replaced = purpose.replaced_version_ids()
    live = Q(**{f"{state}__status__in": LIVE_STATUSES})
    on_replaced = Q(**{f"{state}__purpose_version_id__in": replaced})
    problems = {
        ConsentProblem.NO_CONSENT: ~live,
        ConsentProblem.OUTDATED_WORDING: live & on_replaced,
        ConsentProblem.PENDING_CONFIRMATION: Q(**{f"{state}__status": ConsentStatus.PENDING})
        & ~on_replaced,
    }
    conditions = {key: condition & ~profiling for key, condition in problems.items()}
    return {ConsentProblem.OBJECTED: profiling, **conditions}


def usable_grant_condition(purpose: Purpose, channel: str) -> Q:
    """`holds_usable_grant` in SQL, written as joins the database runs set-based (a semi-join
    on the usable grants, anti-joins on objections) rather than as the problems negated."""
    if purpose.legal_basis not in MARKETING_BASES:
        return Q()
    states = _states(purpose, channel)
    not_profiling = ~_profiling_objected(purpose)
    if purpose.legal_basis == LegalBasis.LEGITIMATE_INTERESTS:
        withdrawn = states.filter(status=ConsentStatus.WITHDRAWN)
        not_flagged = Q(marketing_objected_at__isnull=True) | Q(Exists(_lifted(states)))
        return not_profiling & Q(~Exists(withdrawn)) & not_flagged
    usable = states.filter(status=ConsentStatus.GRANTED).exclude(
        purpose_version_id__in=purpose.replaced_version_ids()
    )
    return not_profiling & Q(Exists(usable))


def _states(purpose: Purpose, channel: str) -> QuerySet[ConsentState]:
    return ConsentState.objects.filter(contact=OuterRef("pk"), purpose=purpose, channel=channel)


def _profiling_objected(purpose: Purpose) -> Q:
    if not purpose.is_profiling:
        return NOBODY
    return Q(profiling_objected_at__isnull=False)


def _lifted(states: QuerySet[ConsentState]) -> QuerySet[ConsentState]:
    """A grant recorded after the person's marketing objection: it lifts it for that pair."""
    return states.filter(status=ConsentStatus.GRANTED, since__gte=OuterRef("marketing_objected_at"))


# Who a legal basis reaches on a channel (SPEC §3 campaigns; CPCE L34-5, Consumer Code
# L223-1): a rule on the person (B2B, customer) beside the consent status above.


def reach_problem(
    contact: Contact, purpose: Purpose, channel: str, state: ConsentState | None, at: datetime
) -> ConsentProblem | None:
    """`no_consent` when the purpose's legal basis does not reach this person on `channel` at
    `at` whatever their consent status, else None.

    Legitimate interest: by post, anyone (until they object, `consent_problem`); by email, SMS
    or push (electronic mail, CPCE L34-5), a B2B contact about their job, or a customer for a
    "similar products or services" purpose when the refusal offered at collection is in the
    ledger (a grant of that pair: soft opt-in); by phone, a B2B contact or a customer within
    a current contract (Consumer Code L223-1: consumers otherwise need prior consent).
    Contract: only a current customer (a contract message needs a contract). Consent: the
    grant is the basis, nothing more here. Any other basis (legal obligation, vital or public
    interest) sends no messages (`Purpose.clean`): it reaches nobody, even a purpose stored
    with channels before that rule.
    """
    if purpose.legal_basis == LegalBasis.CONSENT:
        return None
    if purpose.legal_basis == LegalBasis.LEGITIMATE_INTERESTS:
        reached = _legitimate_interest_reaches(contact, purpose, channel, state, at)
    elif purpose.legal_basis == LegalBasis.CONTRACT:
        reached = is_current_customer(contact, at)
    else:
        reached = False
    return None if reached else ConsentProblem.NO_CONSENT


def _legitimate_interest_reaches(
    contact: Contact, purpose: Purpose, channel: str, state: ConsentState | None, at: datetime
) -> bool:
    if channel == Channel.POSTAL or contact.b2b:
        return True
    if channel == Channel.PHONE:
        return is_current_customer(contact, at)
    soft_opt_in = state is not None and state.status == ConsentStatus.GRANTED
    return (
        channel in ELECTRONIC_CHANNELS
        and purpose.similar_products
        and contact.relationship == Relationship.CUSTOMER
        and soft_opt_in
    )


def is_current_customer(contact: Contact, at: datetime) -> bool:
    """A customer whose contract has not ended on the day of `at` (empty end: still running)."""
    until = contact.customer_until
    return contact.relationship == Relationship.CUSTOMER and (until is None or until >= _day(at))


def _day(at: datetime) -> date:
    return timezone.localdate(at)


def reach_condition(purpose: Purpose, channel: str, at: datetime, granted: Q) -> Q | None:
    """`reach_problem` in SQL: the contacts the basis reaches, or None when it reaches everyone
    its consent status allows. `granted`: true where the contact's state for the pair is a
    grant (a column test on a joined state, or an EXISTS)."""
    b2b = Q(b2b=True)
    if purpose.legal_basis == LegalBasis.LEGITIMATE_INTERESTS:
        if channel == Channel.POSTAL:
            return None
        if channel == Channel.PHONE:
            return b2b | current_customer_condition(at)
        if channel in ELECTRONIC_CHANNELS and purpose.similar_products:
            return b2b | (Q(relationship=Relationship.CUSTOMER) & granted)
        return b2b
    if purpose.legal_basis == LegalBasis.CONTRACT:
        return current_customer_condition(at)
    if purpose.legal_basis == LegalBasis.CONSENT:
        return None
    return NOBODY  # no messages on the other bases


def current_customer_condition(at: datetime) -> Q:
    """`is_current_customer` in SQL."""
    return Q(relationship=Relationship.CUSTOMER) & (
        Q(customer_until__isnull=True) | Q(customer_until__gte=_day(at))
    )
