"""Consent in a merge of two contacts: the state follows time across both ledgers.

Ledger records are append-only and keep their contact: the merged contact's records stay on
its chain, and the survivor's history reads both (`consent.selectors.contact_consent_history`).
Where the merged contact's change is the newer one for a purpose and channel, the same change
is appended to the survivor's chain through the one write path, with source `merge` and a
reference naming the merged contact and the origin record. A merge never lifts a suppression
(`merge` is not a lifting source), and what was pending stays pending.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from consent.models import (
    Actor,
    ConsentAction,
    ConsentRecord,
    ConsentState,
    ConsentStatus,
    MessageSent,
    Purpose,
    SourceKind,
)
from consent.selectors import purposes_with_versions
from consent.services import ConsentWrite, Evidence, consents_record_many
from consent.services.consents import _superseded, effective_time
from consent.status import LIVE_STATUSES, MARKETING_BASES
from contacts.models import Contact, SuppressionKind
from contacts.selectors import suppression_reason

MERGE_REFERENCE = "merge:%(merged)s:%(record)s"
OBJECTION_REFERENCE = "merge:%(merged)s:marketing-objection"


@dataclass
class ConsentsMerged:
    """What a merge did to consent: the records appended to the survivor's chain, the pairs
    ("purpose/channel") whose newer change was not carried and why (a code), and the merged
    contact's last record hash (its chain head)."""

    records: list[ConsentRecord] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    merged_head: str = ""


def consents_merge(*, survivor: Contact, merged: Contact) -> ConsentsMerged:
    """Recompute the survivor's consent state by time over both contacts (SPEC §3 "Dedupe and
    merge"), and count the merged contact's marketing messages against the survivor's caps.

    For each purpose and channel the newer change wins, as `consent_record` decides between a
    new record and the state (`_superseded`); a grant older than either contact's marketing
    objection or unsubscribe from all is ended by it. The caller holds the transaction and both
    contacts' locks, before it merges the contacts themselves (`contact_merge_into`).
    """
    now = timezone.now()
    purposes = {purpose.id: purpose for purpose in purposes_with_versions()}
    ours = _states(survivor)
    theirs = _states(merged)
    objected_at = max(
        (d for d in (survivor.marketing_objected_at, merged.marketing_objected_at) if d),
        default=None,
    )
    outcome = ConsentsMerged(merged_head=_chain_head(merged))
    writes: list[ConsentWrite] = []
    for key in sorted(set(ours) | set(theirs), key=lambda k: (purposes[k[0]].slug, k[1])):
        purpose, mine, other = purposes[key[0]], ours.get(key), theirs.get(key)
        label = f"{purpose.slug}/{key[1]}"
        carried = _carried(mine, other, purpose, now, outcome.skipped, label)
        winner = carried or mine
        if winner is not None and _ended_by_objection(winner, purpose, objected_at):
            if mine is not None and mine.status in LIVE_STATUSES:
                writes.append(_objection_withdrawal(survivor, merged, mine, purpose, objected_at))
            elif carried is not None:
                outcome.skipped[label] = "older_than_objection"
            continue
        if carried is not None:
            writes.append(_carry(survivor, merged, carried, purpose))
    outcome.records = consents_record_many(writes=writes)
    outcome.records += _confirm_carried(survivor, merged, theirs, outcome.records)
    MessageSent.objects.filter(contact=merged).update(contact=survivor)
    return outcome


def _states(contact: Contact) -> dict[tuple[int, str], ConsentState]:
    states = ConsentState.objects.filter(contact=contact).select_related(
        "record", "record__resolves"
    )
    return {(state.purpose_id, state.channel): state for state in states}


def _chain_head(contact: Contact) -> str:
    last = ConsentRecord.objects.filter(contact=contact).order_by("-id").only("hash").first()
    return last.hash if last else ""


def _carried(
    mine: ConsentState | None,
    other: ConsentState | None,
    purpose: Purpose,
    now: datetime,
    skipped: dict[str, str],
    label: str,
) -> ConsentState | None:
    """The merged contact's state for a pair when it must be carried to the survivor: newer
    than the survivor's, and a change the write path can record as it was."""
    if other is None:
        return None
    action = _action(other)
    if action is None:
        return None  # an expired grant was never consent: nothing to carry
    if _superseded(mine, action, effective_time(other.record), now):
        return None  # the survivor's own change is the newer one
    if action == ConsentAction.GRANT:
        reason = _grant_not_carried(other, purpose)
        if reason:
            skipped[label] = reason
            return None
    return other


def _action(state: ConsentState) -> str | None:
    if state.status in (ConsentStatus.GRANTED, ConsentStatus.PENDING):
        return ConsentAction.GRANT
    if state.status == ConsentStatus.WITHDRAWN:
        return ConsentAction.WITHDRAW
    return None


def _grant_not_carried(state: ConsentState, purpose: Purpose) -> str:
    """Why a grant of the merged contact cannot become a grant of the survivor (a code kept
    in the timeline and audit), or ""."""
    if not purpose.is_active or state.channel not in purpose.channels:
        return "purpose_inactive"
    if purpose.wording_outdated(state.purpose_version_id):
        # a new grant would be on today's wording, which the person never saw
        return "outdated_wording"
    if state.status == ConsentStatus.PENDING and not purpose.double_opt_in:
        # pending for the person's click on the merged contact's address (suppressed)
        return "pending_on_merged_address"
    return ""


def _ended_by_objection(
    state: ConsentState, purpose: Purpose, objected_at: datetime | None
) -> bool:
    """Whether a live grant is older than the person's marketing objection (an objection or an
    unsubscribe from all, on either contact), which ends every marketing purpose."""
    return (
        objected_at is not None
        and purpose.legal_basis in MARKETING_BASES
        and state.status in LIVE_STATUSES
        and effective_time(state.record) < objected_at
    )


def _origin(state: ConsentState) -> ConsentRecord:
    """The record that made the state: for a confirmed grant, the grant the person gave (its
    wording and time), not the click that confirmed it."""
    record = state.record
    if record.action == ConsentAction.CONFIRM and record.resolves is not None:
        return record.resolves
    return record


def _carry(
    survivor: Contact, merged: Contact, state: ConsentState, purpose: Purpose
) -> ConsentWrite:
    origin = _origin(state)
    action = _action(state)
    assert action is not None  # `_carried` returns changes only
    return ConsentWrite(
        contact=survivor,
        purpose=purpose,
        channel=state.channel,
        action=action,
        source_kind=SourceKind.MERGE,
        source_reference=MERGE_REFERENCE % {"merged": merged.public_id, "record": origin.uuid},
        evidence=Evidence(
            wording=origin.wording,
            unticked_by_default=origin.unticked_by_default,
            policy_version=origin.policy_version,
            # the origin's proof as it was: second-hand stays second-hand (hash version 3)
            second_hand=origin.second_hand,
            collection_reference=origin.collection_reference,
        ),
        given_at=effective_time(state.record),
        # who gave the consent carried (a guardian's stays a guardian's); older records: unknown
        actor=origin.actor or Actor.SYSTEM,
    )


def _objection_withdrawal(
    survivor: Contact,
    merged: Contact,
    state: ConsentState,
    purpose: Purpose,
    objected_at: datetime | None,
) -> ConsentWrite:
    """The survivor's grant older than the merged contact's objection: the objection ends it,
    as the unsubscribe from all did on the merged contact."""
    return ConsentWrite(
        contact=survivor,
        purpose=purpose,
        channel=state.channel,
        action=ConsentAction.WITHDRAW,
        source_kind=SourceKind.MERGE,
        source_reference=OBJECTION_REFERENCE % {"merged": merged.public_id},
        given_at=objected_at,
    )


def _confirm_carried(
    survivor: Contact,
    merged: Contact,
    theirs: dict[tuple[int, str], ConsentState],
    records: list[ConsentRecord],
) -> list[ConsentRecord]:
    """Confirm the carried grants the person had confirmed on the merged contact (double
    opt-in) and that came out pending on the survivor; not when the survivor's address is
    suppressed: only the person's own act lifts that, so the grant waits for their click."""
    if suppression_reason(kind=SuppressionKind.EMAIL, value=survivor.email):
        return []
    writes = [
        ConsentWrite(
            contact=survivor,
            purpose=record.purpose,
            channel=record.channel,
            action=ConsentAction.CONFIRM,
            source_kind=SourceKind.MERGE,
            source_reference=MERGE_REFERENCE
            % {"merged": merged.public_id, "record": state.record.uuid},
            given_at=effective_time(state.record),
            resolves=record,
        )
        for record in records
        if record.status == ConsentStatus.PENDING
        and (state := theirs.get((record.purpose_id, record.channel))) is not None
        and state.status == ConsentStatus.GRANTED
    ]
    return consents_record_many(writes=writes)
