"""Reads for the preference center, in a fixed number of queries whatever the purposes."""

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef

from consent.models import Channel, ConsentState, ConsentStatus, Purpose, PurposeVersion
from consent.services import UNSUBSCRIBE_ALL_REFERENCE
from consent.status import MARKETING_BASES, ConsentProblem, consent_problem
from contacts.models import (
    Contact,
    ContactStatus,
    Interest,
    SuppressionKind,
    SuppressionReason,
    TimelineEvent,
    TimelineKind,
)
from contacts.selectors import suppression_reason
from core.tokens import token_hash
from preferences.models import PreferenceToken

TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")


def contact_for_token(token: str) -> Contact | None:
    """The contact of a live preference token; None when unknown, malformed, revoked, issued
    before the contact's email changed, or erased."""
    if not TOKEN_PATTERN.fullmatch(token or ""):
        return None
    return next(iter(Contact.objects.raw(_token_holder_sql(), [token_hash(token)])), None)


@functools.cache
def _token_holder_sql() -> str:
    """`contact_for_token`'s statement, written once: the ORM would build and compile the join
    again on every recipient page (half the look-up's time). Only table names and constants
    are formatted in; the digest is a parameter."""
    contact, link = Contact._meta.db_table, PreferenceToken._meta.db_table
    return (
        f"SELECT c.* FROM {contact} c JOIN {link} t ON t.contact_id = c.id "  # noqa: S608
        f"WHERE t.digest = %s AND t.revoked_at IS NULL AND c.status <> '{ContactStatus.ERASED}' "
        # a link issued before the address changed (from any surface: the center, the admin,
        # the API, a CRM) was sent to the old mailbox: it opens nothing any more
        f"AND (c.email_changed_at IS NULL OR t.created_at >= c.email_changed_at)"
    )


def seen_stamp(state: ConsentState | None) -> str:
    """What the page shows a choice from: the ledger record behind its state ("" for none).
    A form sent back with another stamp was built before a newer change."""
    return str(state.record.uuid) if state is not None else ""


def purposes_loaded(**filters: object) -> list[Purpose]:
    """Purposes matching `filters` with their wording versions (for `current_version`), in
    one query rather than a query and a prefetch: the versions, each with its purpose. A
    purpose without any wording yet is left out (nothing can be recorded on it)."""
    on_purpose = {f"purpose__{key}": value for key, value in filters.items()}
    versions = (
        PurposeVersion.objects.filter(**on_purpose)
        .select_related("purpose")
        .order_by("purpose__slug", "-number")
    )
    purposes: dict[int, Purpose] = {}
    for version in versions:
        purpose = purposes.setdefault(version.purpose_id, version.purpose)
        if purpose is not version.purpose:
            version.purpose = purpose
        purpose.__dict__.setdefault("versions_newest_first", []).append(version)
    return list(purposes.values())


def resubscribe_candidates(contact: Contact) -> list[ConsentState]:
    """What the last "unsubscribe from all" withdrew and can be granted again today."""
    states = ConsentState.objects.filter(contact=contact).select_related("purpose", "record")
    return _resubscribable(contact, states, {})


def _last_unsubscribe_records(contact: Contact) -> set[str]:
    """The ledger records (uuids) the person's last "unsubscribe from all" wrote."""
    last = (
        TimelineEvent.objects.filter(contact=contact, kind=TimelineKind.UNSUBSCRIBED)
        .order_by("-occurred_at", "-id")
        .values_list("data", flat=True)
        .first()
    )
    return set((last or {}).get("records", []))


def _resubscribable(
    contact: Contact, states: Iterable[ConsentState], active: dict[int, Purpose]
) -> list[ConsentState]:
    """Withdrawn by the last "unsubscribe from all" (not an earlier one: what the person
    left off in between stays off), on a purpose and channel still in use, and not blocked by
    an objection to profiling. `active`: the active purposes already loaded."""
    objected = contact.profiling_objected_at is not None
    withdrawn_by_unsubscribe = [
        state
        for state in states
        if state.status == ConsentStatus.WITHDRAWN
        and state.record.source_reference == UNSUBSCRIBE_ALL_REFERENCE
    ]
    if not withdrawn_by_unsubscribe:
        return []  # nothing an "unsubscribe from all" withdrew: no need to read which one
    last_unsubscribe = _last_unsubscribe_records(contact)
    found = []
    for state in withdrawn_by_unsubscribe:
        purpose = active.get(state.purpose_id) or state.purpose
        if (
            state.status == ConsentStatus.WITHDRAWN
            and state.record.source_reference == UNSUBSCRIBE_ALL_REFERENCE
            and str(state.record.uuid) in last_unsubscribe
            and purpose.is_active
            and state.channel in purpose.channels
            and not (objected and purpose.is_profiling)
        ):
            state.purpose = purpose
            found.append(state)
    return sorted(found, key=lambda state: (state.purpose.slug, state.channel))


@dataclass
class ChannelChoice:
    code: str
    label: str
    is_on: bool
    is_pending: bool
    needs_reconsent: bool = False
    seen: str = ""


@dataclass
class PurposeRow:
    """One purpose as the page shows it: switchable (consent or legitimate interest) or not."""

    purpose: Purpose
    switchable: bool
    blocked: bool = False  # a profiling purpose while the person objects to profiling
    channels: list[ChannelChoice] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class PreferencePage:
    contact: Contact
    purposes: list[PurposeRow]
    required: list[PurposeRow]
    has_profiling: bool
    interests: list[Interest]
    chosen_interests: set[str]
    unsubscribed: bool
    resubscribable: list[ConsentState]


def preference_page(contact: Contact) -> PreferencePage:
    """Everything the preference page shows, in a constant number of queries: purposes with
    their wordings, consent states, interests (each marked chosen or not) and the suppression
    (and, once unsubscribed from all, what the last unsubscribe withdrew)."""
    purposes = purposes_loaded(is_active=True)
    active = {purpose.id: purpose for purpose in purposes}
    states = list(ConsentState.objects.filter(contact=contact).select_related("record"))
    by_key = {(state.purpose_id, state.channel): state for state in states}
    known = [state for state in states if state.purpose_id in active]
    chosen = Contact.interests.through.objects.filter(contact=contact, interest=OuterRef("pk"))
    interests: list[Interest] = list(
        Interest.objects.annotate(chosen=Exists(chosen)).order_by("slug")
    )
    rows = [_purpose_row(contact, purpose, by_key) for purpose in purposes]
    return PreferencePage(
        contact=contact,
        purposes=[row for row in rows if row.switchable],
        required=[row for row in rows if not row.switchable],
        has_profiling=any(row.switchable and row.purpose.is_profiling for row in rows),
        interests=interests,
        chosen_interests={i.slug for i in interests if getattr(i, "chosen", False)},
        unsubscribed=suppression_reason(kind=SuppressionKind.EMAIL, value=contact.email)
        == SuppressionReason.GLOBAL_UNSUBSCRIBE,
        resubscribable=_resubscribable(contact, known, active),
    )


def _purpose_row(
    contact: Contact, purpose: Purpose, states: dict[tuple[int, str], ConsentState]
) -> PurposeRow:
    labels = dict(Channel.choices)
    row = PurposeRow(
        purpose=purpose,
        switchable=purpose.legal_basis in MARKETING_BASES,
        blocked=purpose.is_profiling and contact.profiling_objected_at is not None,
    )
    for channel in purpose.channels:
        # ticked: a usable grant (the eligibility rule's own answer); a pending grant waits,
        # unticked, for the emailed link; one on replaced wording asks to be ticked again
        state = states.get((purpose.id, channel))
        problem = consent_problem(contact, purpose, state)
        row.channels.append(
            ChannelChoice(
                code=channel,
                label=labels.get(channel, channel),
                is_on=problem is None,
                is_pending=problem == ConsentProblem.PENDING_CONFIRMATION,
                needs_reconsent=problem == ConsentProblem.OUTDATED_WORDING,
                seen=seen_stamp(state),
            )
        )
    return row
