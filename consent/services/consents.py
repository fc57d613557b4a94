"""Writes on consent: the one path that records a consent, purpose wording, privacy requests."""

import functools
import hashlib
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.validators import validate_ipv46_address
from django.db import connections, transaction
from django.db.models import FilteredRelation, OuterRef, Q, Subquery
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from consent.ledger import evidence_digest, record_hash
from consent.minors import GUARDIAN_ACTORS
from consent.models import (
    Actor,
    Channel,
    ConsentAction,
    ConsentEvidence,
    ConsentRecord,
    ConsentState,
    ConsentStatus,
    HashVersion,
    LegalBasis,
    Purpose,
    PurposeVersion,
    SourceKind,
)
from consent.selectors import pending_states_for_confirmation, purposes_with_versions
from consent.status import MARKETING_BASES, state_is_live
from contacts.models import (
    Contact,
    ContactStatus,
    Suppression,
    SuppressionKind,
    SuppressionReason,
    TimelineEvent,
    TimelineKind,
)
from contacts.normalization import normalize_email, suppression_digest
from contacts.selectors import contact_find, suppression_reason
from contacts.services import suppression_lift, timeline_add, timeline_add_many
from core.batches import in_batches
from core.bulk import bulk_insert, bulk_upsert_rows
from core.emails import email_send
from core.errors import StructuredValidationError, error_detail
from core.links import signed_token, signed_token_read, site_url
from core.services import job_run_claim
from crmsync.models import OutboxTopic
from crmsync.services import outbox_emit_many

# The person's own confirmed act: a change in the preference center (reached from a link sent
# to the address) or a link followed from an email sent to it. Only these lift a suppression;
# anyone can claim a web form or the API, so a grant from there waits for the person's click.
LIFTING_SOURCES = frozenset({SourceKind.PREFERENCE_CENTER, SourceKind.EMAIL_CONFIRMATION})
# Lists never re-add a suppressed person (SPEC §3 contacts): their grants are refused.
LIST_SOURCES = frozenset({SourceKind.IMPORT, SourceKind.CRM})
# The actions that make consent valid (withdrawing and expiring only ever end it).
MAKES_VALID = frozenset({ConsentAction.GRANT, ConsentAction.CONFIRM})
# Writes that are not the person's own act: they never count as their last contact.
NOT_THE_PERSON = frozenset({SourceKind.SYSTEM, SourceKind.CRM, SourceKind.IMPORT})
# Grants that need no confirmation email on a double opt-in purpose: a signed paper form, and
# a grant recorded because the person followed the emailed link.
CONFIRMED_SOURCES = frozenset({SourceKind.PAPER_FORM, SourceKind.EMAIL_CONFIRMATION})
SUPPRESSED_CONFIRMATION_JOB = "suppressed-address-confirmation"
# Sources that must carry the wording shown and the unticked box with every grant.
WORDING_REQUIRED_SOURCES = frozenset(
    {SourceKind.WEB_FORM, SourceKind.API, SourceKind.IMPORT, SourceKind.CRM}
)
CLOCK_SKEW = timedelta(minutes=5)
# Sources where the person ticks a box we did not see: the box must be declared unticked
# (CJEU Planet49, C-673/17; GDPR Art. 4(11), 7(1)), not merely left undeclared.
UNTICKED_REQUIRED_SOURCES = frozenset({SourceKind.WEB_FORM, SourceKind.API})
# Who acted, when the write does not say: staff in the admin, a job, else the person.
ACTOR_BY_SOURCE: dict[str, str] = {
    SourceKind.ADMIN: Actor.STAFF,
    SourceKind.SYSTEM: Actor.SYSTEM,
    SourceKind.MERGE: Actor.SYSTEM,
}


@dataclass(frozen=True)
class Evidence:
    """What proves a consent: the wording shown and, stored apart, the personal evidence."""

    wording: str = ""
    unticked_by_default: bool | None = None
    policy_version: str = ""
    ip: str | None = None
    user_agent: str = ""
    document: File | None = None
    # where the person consented when the record relays it (an import's source, a CRM's
    # form); imports and CRMs must give it, and their records are second-hand
    collection_reference: str = ""
    second_hand: bool = False
    # the holder of parental responsibility who consented for a child (GDPR Art. 8)
    guardian_name: str = ""
    guardian_contact: str = ""

    @property
    def has_personal_data(self) -> bool:
        return bool(
            self.ip
            or self.user_agent
            or self.document
            or self.guardian_name
            or self.guardian_contact
        )


@dataclass(frozen=True, slots=True)
class ConsentWrite:
    """One consent to write to the ledger: whose, for what and on which channel, what happened,
    where it came from, when, and what proves it.

    `given_at` is when the person acted (None: now); `resolves` is the pending grant a confirm
    or an expire settles; `actor` who acted (blank: `ACTOR_BY_SOURCE`, and a confirmation
    carries the actor of the grant it confirms).
    """

    contact: Contact
    purpose: Purpose
    channel: str
    action: str
    source_kind: str
    source_reference: str = ""
    evidence: Evidence = field(default_factory=Evidence)
    given_at: datetime | None = None
    resolves: ConsentRecord | None = None
    actor: str = ""


def purpose_wording_update(
    *, purpose: Purpose, wording_fr: str, wording_en: str, is_material: bool = True, by: str = ""
) -> PurposeVersion | None:
    """Add a new wording version when the text changed; earlier versions are never rewritten."""
    with transaction.atomic():
        Purpose.objects.select_for_update().filter(pk=purpose.pk).first()
        current = purpose.current_version
        if current and (current.wording_fr, current.wording_en) == (wording_fr, wording_en):
            return None
        return PurposeVersion.objects.create(
            purpose=purpose,
            number=(current.number + 1) if current else 1,
            wording_fr=wording_fr,
            wording_en=wording_en,
            is_material=is_material if current else True,
            created_by=by,
        )


def consent_grant_check(
    *,
    purpose: Purpose,
    channel: str,
    source_kind: str,
    evidence: Evidence,
    given_at: datetime,
    actor: str = "",
) -> None:
    """Refuse, as `consent_record` would, a grant that is not valid consent (no contact yet)."""
    _validate_request(
        contact=None,
        purpose=purpose,
        channel=channel,
        action=ConsentAction.GRANT,
        source_kind=source_kind,
        evidence=evidence,
        given_at=given_at,
        now=timezone.now(),
        actor=actor,
    )
    if purpose.current_version is None:
        raise ValidationError({"purpose": [_("This purpose has no wording yet.")]})


# The choices' values, read once (each `.values` builds a new list; hot in large batches)
_CHANNELS = frozenset(Channel.values)
_ACTIONS = frozenset(ConsentAction.values)
_SOURCE_KINDS = frozenset(SourceKind.values)
_ACTORS = frozenset(Actor.values)


def _validate_request(
    *,
    contact: Contact | None,
    purpose: Purpose,
    channel: str,
    action: str,
    source_kind: str,
    evidence: Evidence,
    given_at: datetime | None,
    now: datetime,
    actor: str = "",
) -> None:
    """Refuse what is not a valid request; `given_at` None: the write gives no date (now)."""
    errors: dict[str, list[str]] = {}
    # Withdrawing and expiring must stay possible after a purpose is retired or drops a channel
    # (GDPR Art. 7(3)); only what makes consent valid again needs the purpose as it is now.
    makes_valid = action in MAKES_VALID
    if contact is not None and contact.status == ContactStatus.ERASED:
        errors["contact"] = [_("This contact was erased.")]
    if makes_valid and not purpose.is_active:
        errors["purpose"] = [_("This purpose is no longer active.")]
    if channel not in _CHANNELS or (makes_valid and channel not in purpose.channels):
        errors["channel"] = [_("This purpose is not used on this channel.")]
    if action not in _ACTIONS:
        errors["action"] = [_("Not a valid choice.")]
    if source_kind not in _SOURCE_KINDS:
        errors["source"] = [_("Not a valid source kind.")]
    if actor and actor not in _ACTORS:
        errors["actor"] = [_("Not a valid choice.")]
    if given_at is not None and given_at > now + CLOCK_SKEW:
        errors["given_at"] = [_("Consent cannot be given in the future.")]
    if action == ConsentAction.GRANT:
        errors.update(_grant_evidence_errors(source_kind, evidence))
        errors.update(_second_hand_errors(source_kind, evidence, given_at))
        errors.update(_guardian_errors(actor, source_kind, evidence))
    malformed = _evidence_format_errors(evidence)
    if malformed:
        errors.setdefault("evidence", []).extend(malformed)
    if errors:
        raise ValidationError(errors)


def _evidence_format_errors(evidence: Evidence) -> list[str]:
    """Values the database would refuse (PostgreSQL) or silently keep wrong (SQLite)."""
    errors = []
    if evidence.ip:
        try:
            validate_ipv46_address(evidence.ip)
        except ValidationError:
            errors.append(_("Enter a valid IPv4 or IPv6 address."))
    limit = ConsentRecord._meta.get_field("policy_version").max_length
    assert limit is not None  # a CharField
    if len(evidence.policy_version) > limit:
        errors.append(_("The privacy policy version is too long (%d characters at most).") % limit)
    return errors


def _grant_evidence_errors(source_kind: str, evidence: Evidence) -> dict[str, list[str]]:
    """A grant is valid consent only with its proof: the wording, and a box not pre-ticked."""
    if evidence.unticked_by_default is False:
        return {
            "evidence": [_("A pre-ticked box is not valid consent (CJEU, Planet49, C-673/17).")]
        }
    if source_kind in UNTICKED_REQUIRED_SOURCES and evidence.unticked_by_default is None:
        return {
            "evidence": [
                _(
                    "unticked_by_default: required, and true. A grant from a form or the API "
                    "must state that the box was unticked by default (CJEU, Planet49, C-673/17)."
                )
            ]
        }
    if source_kind in WORDING_REQUIRED_SOURCES and not evidence.wording.strip():
        return {"evidence": [_("A grant must carry the exact wording shown to the person.")]}
    if source_kind == SourceKind.PAPER_FORM and not evidence.document:
        return {"evidence": [_("A paper-form grant must carry the signed document.")]}
    return {}


def _second_hand_errors(
    source_kind: str, evidence: Evidence, given_at: datetime | None
) -> dict[str, list[str]]:
    """A list (import, CRM) relays a consent given elsewhere: it must say when the person gave
    it (not when it arrived) and where (GDPR Art. 7(1): the controller proves the consent)."""
    if source_kind not in LIST_SOURCES:
        return {}
    errors: dict[str, list[str]] = {}
    if given_at is None:
        errors["given_at"] = [
            _(
                "A grant from an import or a CRM needs the date the person consented, "
                "not the date it arrived."
            )
        ]
    if not evidence.collection_reference.strip():
        errors["source"] = [
            _(
                "A grant from an import or a CRM needs a reference to where the person "
                "consented (the form, the event, the original list)."
            )
        ]
    return errors


def _guardian_errors(actor: str, source_kind: str, evidence: Evidence) -> dict[str, list[str]]:
    """A guardian's grant names the guardian, so the consent can be verified (Art. 8(2)); a
    merge carries a grant whose proof stays on the origin record it names."""
    if actor not in GUARDIAN_ACTORS or source_kind == SourceKind.MERGE:
        return {}
    if evidence.guardian_name.strip() and evidence.guardian_contact.strip():
        return {}
    return {
        "evidence": [
            _(
                "A grant by the holder of parental responsibility needs their name and their "
                "email or phone (evidence.guardian: name, contact)."
            )
        ]
    }


def record_actor(write: ConsentWrite) -> str:
    """Who acted on a write: as given; a confirmation, as the grant it confirms; else by its
    source (`ACTOR_BY_SOURCE`, the person by default)."""
    if write.actor:
        return write.actor
    confirmed = write.resolves if write.action == ConsentAction.CONFIRM else None
    if confirmed is not None and confirmed.actor:
        return confirmed.actor
    return ACTOR_BY_SOURCE.get(write.source_kind, Actor.PERSON)


# Writes per chunk of the set-based path: one statement per table and chunk (SPEC §3 "Ledger
# at scale"). PostgreSQL takes a chunk in one INSERT; SQLite splits by its parameter limit.
WRITE_CHUNK_SIZE = 1000
# Purposes whose current wording is read within the contact lock (one statement); beyond
# this many in one call, one more statement reads them all.
INLINE_VERSION_PURPOSES = 8
_VERSION_FIELDS = ("id", "number", "wording_fr", "wording_en")
ROW_VERSION_SQL = '"contacts_contact".xmin::text'
SEEN_VERSION_SQL = (
    '(SELECT c.xmin::text FROM contacts_contact c WHERE c.id = "contacts_contact".id)'
)


class ConsentWriteErrors(StructuredValidationError):
    """Writes `consents_record_many` refused (nothing was written): `errors` by write index;
    `detail` is aligned with the writes, `{}` for a write that was fine."""

    def __init__(self, errors: dict[int, ValidationError], count: int) -> None:
        self.errors = errors
        super().__init__([error_detail(errors[i]) if i in errors else {} for i in range(count)])

    def __str__(self) -> str:
        return "; ".join(
            f"write {index}: {error_detail(error)}" for index, error in sorted(self.errors.items())
        )


def consent_record(*, write: ConsentWrite) -> ConsentRecord:
    """Append one record to the consent ledger and update the current state with it.

    The single write path for consent (GDPR Art. 7(1): the controller must be able to prove
    consent), as one write of `consents_record_many`: record, state, timeline and outbox
    event are written in one transaction, chained on the contact's own head (no global lock:
    writes for other contacts go on in parallel). Outside a transaction: 7 statements for a
    grant with personal evidence, 6 without (BEGIN and COMMIT aside); 8 when the contact's
    lock had to wait for another write (PostgreSQL).
    """
    try:
        return consents_record_many(writes=[write])[0]
    except ConsentWriteErrors as error:
        raise error.errors[0] from None


def consents_record_many(*, writes: Sequence[ConsentWrite]) -> list[ConsentRecord]:
    """Record many consents at once, set-based, all or nothing; the records in write order.

    Each write means exactly what `consent_record` would make of it, in order: several writes
    for one contact chain one after the other, and a later write sees the state an earlier
    one left. Two rules apply here, whoever calls: a grant for a suppressed address only lifts
    the suppression from LIFTING_SOURCES (else it waits, pending, for the emailed link; lists
    are refused), and a record older than the change behind the state is kept but changes
    nothing. Every check runs before the first write; any refusal raises ConsentWriteErrors
    naming each failing write by its index. Locks: the contacts, in id order; their states
    are written only under that lock. Statements: the lock, one per chunk of
    WRITE_CHUNK_SIZE contacts (with their states); records, evidence, states, timeline and
    outbox, each one statement whatever the size on PostgreSQL (`core.bulk`: COPY from 100
    rows, the records' ids drawn first) and one per chunk elsewhere; the heads, one per
    chunk; plus one confirmation task per contact with a pending grant, queued after commit.
    """
    return _record_many(writes)


# Decides, under the contacts' lock, whether a write is still needed given the state it meets.
_Keep = Callable[[ConsentWrite, ConsentState | None], bool]


@dataclass
class Announcements:
    """The timeline moments and outbox events of a transaction's consent writes, held back so
    that the caller adds its own and writes them all with one statement per table (`write`):
    the one-click unsubscribe writes its own moment and event with its withdrawals'."""

    timeline: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[tuple[str, Contact, dict[str, Any]]] = field(default_factory=list)

    def write(self) -> None:
        timeline_add_many(events=self.timeline)
        outbox_emit_many(events=self.outbox)
        self.timeline, self.outbox = [], []


def _record_many(
    writes: Sequence[ConsentWrite],
    *,
    keep: _Keep | None = None,
    savepoint: bool = True,
    announce: bool = True,
    announcements: Announcements | None = None,
) -> list[ConsentRecord]:
    """`consents_record_many`; `keep` drops, once the contacts are locked, the writes the
    states make useless (a withdrawal of what is withdrawn already), `savepoint=False`
    saves two statements for callers that never go on after a refusal, `announce=False`
    two more for the erasure (see `consents_withdraw_all_many`), and `announcements`
    holds the timeline moments and outbox events for the caller to write with its own."""
    if not writes:
        return []
    now = timezone.now()
    with transaction.atomic(savepoint=savepoint):
        purposes = {write.purpose.pk: write.purpose for write in writes}
        versions = {pk: p.current_version for pk, p in purposes.items() if _prefetched(p)}
        missing = [pk for pk in purposes if pk not in versions]
        if len(missing) > INLINE_VERSION_PURPOSES:
            versions.update(_current_versions(missing))
            missing = []
        chains, states = _lock_chains(writes, versions, missing)
        if keep is not None:
            writes = [w for w in writes if keep(w, states.get(_state_key(w)))]
        batch = _Batch(now=now, versions=versions, announce=announce, held=announcements)
        errors = _request_errors(writes, now)  # before `given_at` defaults: lists must give it
        writes = [replace(write, given_at=write.given_at or now) for write in writes]
        for index, write in enumerate(writes):
            if index in errors:
                continue  # refused already; the others are still checked, to report them all
            try:
                batch.add(write, chains.get(write.contact.pk), states)
            except ValidationError as error:
                errors[index] = error
        if errors:
            raise ConsentWriteErrors(errors, len(writes))
        batch.write(chains.values(), states)
    return batch.records


def _state_key(write: ConsentWrite) -> "_StateKey":
    return (write.contact.pk, write.purpose.pk, write.channel)


def _request_errors(writes: Sequence[ConsentWrite], now: datetime) -> dict[int, ValidationError]:
    """The request checks (`_validate_request`) of each write, by index."""
    errors: dict[int, ValidationError] = {}
    for index, write in enumerate(writes):
        try:
            _validate_request(
                contact=write.contact,
                purpose=write.purpose,
                channel=write.channel,
                action=write.action,
                source_kind=write.source_kind,
                evidence=write.evidence,
                given_at=write.given_at,
                now=now,
                actor=write.actor,
            )
        except ValidationError as error:
            errors[index] = error
    return errors


def _prefetched(purpose: Purpose) -> bool:
    return getattr(purpose, "versions_newest_first", None) is not None


def _current_versions(purpose_ids: Iterable[int]) -> dict[int, PurposeVersion | None]:
    """The current wording of each purpose, in one statement (for calls with many purposes)."""
    found: dict[int, PurposeVersion | None] = {pk: None for pk in purpose_ids}
    latest = PurposeVersion.objects.filter(purpose_id=OuterRef("purpose_id")).order_by("-number")
    rows = PurposeVersion.objects.filter(
        purpose_id__in=list(found), id=Subquery(latest.values("id")[:1])
    ).only("purpose_id", *_VERSION_FIELDS)
    for version in rows:
        found[version.purpose_id] = version
    return found


@dataclass
class _Chain:
    """A locked contact: the head of its chain, its suppression, what the writes do to it."""

    contact: Contact
    seq: int
    hash: str
    suppressed: str | None
    moved: bool = False
    touched_at: datetime | None = None
    pending: bool = False
    lift: bool = False


_StateKey = tuple[int, int, str]
# The state behind each (contact, purpose, channel), read in the contact lock's statement
_STATE_FIELDS = {
    "st__id": "id",
    "st__purpose_id": "purpose_id",
    "st__channel": "channel",
    "st__status": "status",
    "st__purpose_version_id": "purpose_version_id",
    "st__record_id": "record_id",
    "st__since": "since",
    "st__actor": "actor",
}
_STATE_RECORD_FIELDS = {
    "st__record__uuid": "uuid",
    "st__record__given_at": "given_at",
    "st__record__recorded_at": "recorded_at",
}
_STATE_VERSION_FIELDS = {
    "st__purpose_version__number": "number",
    "st__purpose_version__wording_fr": "wording_fr",
    "st__purpose_version__wording_en": "wording_en",
}
_CONTACT_FIELDS = (
    "id",
    "status",
    "email",
    "email_digest",
    "email_quoted_digest",
    "ledger_seq",
    "ledger_hash",
)


def _lock_chains(
    writes: Sequence[ConsentWrite],
    versions: dict[int, PurposeVersion | None],
    missing: Sequence[int],
) -> tuple[dict[int, _Chain], dict[_StateKey, ConsentState]]:
    """Lock the writes' contacts (id order: no deadlock between two batches) and read, in the
    same statement, their chain head, suppression reason, the states the writes may change
    (with the record and wording behind each) and the current wording of the `missing`
    purposes.

    States are written only under their contact's lock, so that lock guards them too. On
    PostgreSQL, a lock that had to wait sees the contact row as its holder committed it but
    the joined states and subqueries as of the statement's start: the row's version (xmin)
    against the one the snapshot saw tells when to read them again (one more statement).
    """
    ids = sorted({write.contact.pk for write in writes})
    purpose_ids = {write.purpose.pk for write in writes}
    channels = {write.channel for write in writes}
    # the contact's own addresses, and those of the contacts merged into it (the same person)
    merged = Contact.objects.filter(merged_into_id=OuterRef(OuterRef("pk")))
    suppression = Suppression.objects.filter(
        Q(digest=OuterRef("email_digest"))
        | Q(digest=OuterRef("email_quoted_digest"))
        | Q(digest__in=merged.values("email_digest"))
        | Q(digest__in=merged.values("email_quoted_digest"))
    ).values("reason")[:1]
    annotations: dict[str, Any] = {
        "suppression": Subquery(suppression),
        "st": FilteredRelation(
            "consent_states",
            condition=Q(
                consent_states__purpose_id__in=purpose_ids,
                consent_states__channel__in=channels,
            ),
        ),
    }
    for pk in missing:
        latest = PurposeVersion.objects.filter(purpose_id=pk).order_by("-number")
        for name in _VERSION_FIELDS:
            annotations[f"v{pk}_{name}"] = Subquery(latest.values(name)[:1])
    postgres = connections[Contact.objects.db].vendor == "postgresql"
    if postgres:
        annotations["row_version"] = RawSQL(ROW_VERSION_SQL, ())  # noqa: S611 - constant
        annotations["seen_version"] = RawSQL(SEEN_VERSION_SQL, ())  # noqa: S611 - constant
    names = [
        *_CONTACT_FIELDS,
        *(name for name in annotations if name != "st"),
        *_STATE_FIELDS,
        *_STATE_RECORD_FIELDS,
        *_STATE_VERSION_FIELDS,
    ]
    chains: dict[int, _Chain] = {}
    states: dict[_StateKey, ConsentState] = {}
    waited: list[_Chain] = []
    for chunk in _in_chunks(ids, WRITE_CHUNK_SIZE):
        rows: Iterable[dict[str, Any]]
        if postgres:
            rows = _locked_rows_pg(chunk, purpose_ids, channels, missing)
        else:
            rows = (
                Contact.objects.select_for_update(of=("self",))
                # a FilteredRelation is bound to the first query it joins: a fresh one each
                .annotate(**{**annotations, "st": annotations["st"].clone()})
                .filter(pk__in=chunk)
                .order_by("pk")
                .values(*names)
            )
        for row in rows:
            chain = chains.get(row["id"])
            if chain is None:
                contact = _partial(Contact, {f: row[f] for f in _CONTACT_FIELDS})
                chains[row["id"]] = chain = _Chain(
                    contact, row["ledger_seq"], row["ledger_hash"], row["suppression"]
                )
                if postgres and row["row_version"] != row["seen_version"]:
                    waited.append(chain)
                for pk in missing:
                    if pk not in versions:
                        versions[pk] = _version_from(row, pk)
            if row["st__id"] is not None:
                state = _state_from(row)
                states[(state.contact_id, state.purpose_id, state.channel)] = state
    if waited:
        _read_again(waited, states, purpose_ids, channels)
    return chains, states


def _locked_rows_pg(
    ids: Sequence[int], purpose_ids: set[int], channels: set[str], missing: Sequence[int]
) -> list[dict[str, Any]]:
    """PostgreSQL: the statement of `_lock_chains`' queryset, written once per number of
    missing purposes (Django would build and compile it again at every write, which costs
    more than the database's own work for one write), with the same row keys."""
    sql, names = _lock_sql_pg(len(missing))
    for number, pk in enumerate(missing):  # the keys `_version_from` reads
        names = [name.replace(f"missing{number}_", f"v{pk}_", 1) for name in names]
    params: list[Any] = [
        *(pk for pk in missing for _name in _VERSION_FIELDS),
        sorted(purpose_ids),
        sorted(channels),
        list(ids),
    ]
    with connections[Contact.objects.db].cursor() as cursor:
        cursor.execute(sql, params)
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@functools.cache
def _lock_sql_pg(missing: int) -> tuple[str, list[str]]:
    """The lock statement for `missing` purposes whose wording is read with it, and the name
    of each column (as `_lock_chains`' queryset names them). Only model metadata (table
    names) and constants are formatted in; every value is a parameter."""
    contact, suppression = Contact._meta.db_table, Suppression._meta.db_table
    state, record = ConsentState._meta.db_table, ConsentRecord._meta.db_table
    version = PurposeVersion._meta.db_table
    columns = [(f"c.{name}", name) for name in _CONTACT_FIELDS]
    # one index look-up per digest (an OR of IN lists would scan the suppression list)
    columns.append(
        (
            f"(SELECT s.reason FROM {suppression} s WHERE s.digest = ANY("  # noqa: S608
            f"ARRAY[c.email_digest, c.email_quoted_digest] || ARRAY(SELECT x.digest "
            f"FROM {contact} m, LATERAL (VALUES (m.email_digest), (m.email_quoted_digest)) "
            f"AS x(digest) WHERE m.merged_into_id = c.id)) LIMIT 1)",
            "suppression",
        )
    )
    for number in range(missing):
        for name in _VERSION_FIELDS:
            columns.append(
                (
                    f"(SELECT v.{name} FROM {version} v WHERE v.purpose_id = %s "  # noqa: S608
                    f"ORDER BY v.number DESC LIMIT 1)",
                    f"missing{number}_{name}",
                )
            )
    columns += [
        ("c.xmin::text", "row_version"),
        (
            f"(SELECT c2.xmin::text FROM {contact} c2 WHERE c2.id = c.id)",  # noqa: S608
            "seen_version",
        ),
        *((f"st.{name}", name) for name in _STATE_FIELDS),
        *((f"st.{name}", name) for name in _STATE_RECORD_FIELDS),
        *((f"st.{name}", name) for name in _STATE_VERSION_FIELDS),
    ]
    inner = [
        *(f"st.{column} AS {name}" for name, column in _STATE_FIELDS.items()),
        *(f"r.{column} AS {name}" for name, column in _STATE_RECORD_FIELDS.items()),
        *(f"v.{column} AS {name}" for name, column in _STATE_VERSION_FIELDS.items()),
    ]
    # The states of each contact through its own index (contact, purpose, channel), whatever
    # the planner's statistics say: a join over every state of the purpose, which it picks
    # when a bulk load left them stale, costs seconds per batch.
    sql = (
        f"SELECT {', '.join(expression for expression, _name in columns)} "  # noqa: S608
        f"FROM {contact} c LEFT JOIN LATERAL (SELECT {', '.join(inner)} FROM {state} st "
        f"JOIN {record} r ON r.id = st.record_id "
        f"JOIN {version} v ON v.id = st.purpose_version_id "
        # `+ 0` and `|| ''`: only the (contact, purpose, channel) index may serve, never the
        # (purpose, channel) ones, which stale statistics can make look as cheap
        f"WHERE st.contact_id = c.id AND st.purpose_id + 0 = ANY(%s) "
        f"AND st.channel || '' = ANY(%s) "
        f"OFFSET 0) st ON true "  # OFFSET 0: kept a per-contact look-up, never flattened
        f"WHERE c.id = ANY(%s) ORDER BY c.id FOR UPDATE OF c"
    )
    return sql, [name for _expression, name in columns]


def _state_from(row: dict[str, Any]) -> ConsentState:
    state = ConsentState(contact_id=row["id"], **{f: row[k] for k, f in _STATE_FIELDS.items()})
    state._state.adding = False
    record = {"id": row["st__record_id"], **{f: row[k] for k, f in _STATE_RECORD_FIELDS.items()}}
    state.record = _partial(ConsentRecord, record)
    version = {
        "id": row["st__purpose_version_id"],
        "purpose_id": row["st__purpose_id"],
        **{f: row[k] for k, f in _STATE_VERSION_FIELDS.items()},
    }
    state.purpose_version = _partial(PurposeVersion, version)
    return state


def _partial(model: Any, values: dict[str, Any]) -> Any:
    """An instance with only these fields loaded (the others load if ever read)."""
    names = [f.attname for f in model._meta.concrete_fields if f.attname in values]
    return model.from_db(Contact.objects.db, names, [values[name] for name in names])


def _read_again(
    chains: Sequence[_Chain],
    states: dict[_StateKey, ConsentState],
    purpose_ids: set[int],
    channels: set[str],
) -> None:
    """What changed while the contacts' locks were awaited (rare): their suppression and
    states, read again now that the locks are held."""
    digests = {
        chain.contact.pk: {
            digest
            for digest in (chain.contact.email_digest, chain.contact.email_quoted_digest)
            if digest
        }
        for chain in chains
    }
    merged = Contact.objects.filter(merged_into_id__in=list(digests)).values_list(
        "merged_into_id", "email_digest", "email_quoted_digest"
    )
    for survivor_id, *merged_digests in merged:  # the same person's other addresses
        digests[survivor_id] |= {digest for digest in merged_digests if digest}
    reasons = dict(
        Suppression.objects.filter(digest__in=set().union(*digests.values())).values_list(
            "digest", "reason"
        )
    )
    for chain in chains:
        chain.suppressed = next(
            (reasons[d] for d in sorted(digests[chain.contact.pk]) if d in reasons), None
        )
    ids = set(digests)
    for key in [key for key in states if key[0] in ids]:
        del states[key]
    fresh = ConsentState.objects.select_related("record", "purpose_version").filter(
        contact_id__in=ids, purpose_id__in=purpose_ids, channel__in=channels
    )
    for state in fresh:
        states[(state.contact_id, state.purpose_id, state.channel)] = state


def _version_from(row: dict[str, Any], purpose_id: int) -> PurposeVersion | None:
    values = {name: row[f"v{purpose_id}_{name}"] for name in _VERSION_FIELDS}
    if values["id"] is None:
        return None
    result: PurposeVersion = _partial(PurposeVersion, {"purpose_id": purpose_id, **values})
    return result


def _in_chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class _Batch:
    """What a call writes, decided in memory before anything is written."""

    now: datetime
    versions: dict[int, PurposeVersion | None]
    announce: bool = True  # a timeline entry and an outbox event per record
    held: Announcements | None = None  # where they go instead of being written, if given
    records: list[ConsentRecord] = field(default_factory=list)
    evidence: list[ConsentEvidence] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[tuple[str, Contact, ConsentRecord, ConsentRecord | None]] = field(
        default_factory=list
    )
    changed_states: set[_StateKey] = field(default_factory=set)
    language: str | None = field(default_factory=get_language)

    def add(
        self, write: ConsentWrite, chain: _Chain | None, states: dict[_StateKey, ConsentState]
    ) -> None:
        """Decide one write against the chain and states as the earlier writes left them."""
        if chain is None or chain.contact.status == ContactStatus.ERASED:
            raise ValidationError({"contact": [_("This contact was erased.")]})
        action, source_kind, given_at = write.action, write.source_kind, write.given_at
        if chain.contact.status == ContactStatus.MERGED and action in MAKES_VALID:
            # a writer that found the contact just before the merge: nothing comes back to
            # life on a merged row (ending a consent stays possible, GDPR Art. 7(3))
            raise ValidationError(
                {"contact": [_("This contact was merged into another one; write to that one.")]}
            )
        assert given_at is not None  # resolved by consents_record_many
        key = (write.contact.pk, write.purpose.pk, write.channel)
        state = states.get(key)
        suppressed = _suppression_for(chain.suppressed, action, source_kind)
        superseded = _superseded(state, action, given_at, self.now)
        status, version = _transition(
            state,
            self.versions.get(write.purpose.pk),
            action,
            write.purpose,
            source_kind,
            write.resolves,
            needs_person=bool(suppressed) and source_kind not in LIFTING_SOURCES,
        )
        if superseded:
            assert state is not None  # only a change behind an existing state is superseded
            # kept as proof that it arrived, but the newer change behind the state stands
            status = state.status
        record = self._chain(chain, write, version, status)
        if superseded:
            assert state is not None
            superseded_event = (OutboxTopic.CONSENT_SUPERSEDED, write.contact, record, state.record)
            self.outbox.append(superseded_event)
            return
        states[key] = ConsentState(
            contact_id=key[0],
            purpose=write.purpose,
            channel=write.channel,
            status=status,
            purpose_version=version,
            record=record,
            since=self.now,
            actor=record.actor,
        )
        self.changed_states.add(key)
        if suppressed and source_kind in LIFTING_SOURCES:
            chain.lift, chain.suppressed = True, None
        self.timeline.append(
            {
                "contact_id": key[0],
                "kind": TimelineKind.CONSENT_CHANGED,
                "summary": f"{write.purpose.slug}/{write.channel}: {status}",
                "data": {"record": str(record.uuid), "action": action, "source": source_kind},
                "occurred_at": self.now,
            }
        )
        self.outbox.append((OutboxTopic.CONSENT_RECORDED, write.contact, record, None))
        # the person's own "yes" is a contact from them (retention counts from the last one);
        # a withdrawal is a "no", which must not keep their profile longer (CNIL, issue 12)
        if action in MAKES_VALID and source_kind not in NOT_THE_PERSON:
            chain.touched_at = self.now
        if status == ConsentStatus.PENDING:
            chain.pending = True

    def _chain(
        self, chain: _Chain, write: ConsentWrite, version: PurposeVersion, status: str
    ) -> ConsentRecord:
        """The record, hashed after the contact's head, which moves to it."""
        personal = _personal_evidence(write.evidence)
        record = ConsentRecord(
            contact=write.contact,
            purpose=write.purpose,
            purpose_version=version,
            channel=write.channel,
            action=write.action,
            status=status,
            given_at=write.given_at or self.now,
            recorded_at=self.now,
            source_kind=write.source_kind,
            source_reference=write.source_reference[:500],
            wording=write.evidence.wording or version.wording,
            language=(self.language or write.contact.reading_language())[:2],
            unticked_by_default=write.evidence.unticked_by_default,
            policy_version=write.evidence.policy_version,
            evidence_digest=evidence_digest(personal) if personal else "",
            actor=record_actor(write),
            second_hand=write.evidence.second_hand or write.source_kind in LIST_SOURCES,
            collection_reference=write.evidence.collection_reference[:500],
            resolves=write.resolves,
            contact_seq=chain.seq + 1,
            hash_version=HashVersion.ACTOR_AND_ORIGIN,
            previous_hash=chain.hash,
            # set by the database on insert (trigger); given here, an instance is cheaper to
            # build than with its database default
            xact=0,
        )
        record.hash = record_hash(record)
        chain.seq, chain.hash, chain.moved = record.contact_seq, record.hash, True
        self.records.append(record)
        if personal is not None:
            personal.record = record
            self.evidence.append(personal)
        return record

    def write(self, chains: Iterable[_Chain], states: dict[_StateKey, ConsentState]) -> None:
        """Write what `add` decided: one statement per table and chunk, heads last."""
        bulk_insert(ConsentRecord, self.records)
        bulk_insert(ConsentEvidence, self.evidence, ids=False)
        if self.changed_states:
            bulk_upsert_rows(
                ConsentState,
                [_state_row(states[key]) for key in sorted(self.changed_states)],
                unique_fields=["contact", "purpose", "channel"],
                update_fields=["status", "purpose_version", "record", "since", "actor"],
            )
        if self.announce:
            announcements = self.held if self.held is not None else Announcements()
            announcements.timeline += self.timeline
            announcements.outbox += [
                (topic, contact, _consent_payload(record, behind))
                for topic, contact, record, behind in self.outbox
            ]
            if self.held is None:
                announcements.write()
        moved = [chain for chain in chains if chain.moved]
        _heads_update(moved)
        for chain in moved:
            if chain.lift:
                suppression_lift(email=chain.contact.email)
            if chain.pending:
                _queue_confirmation_email(chain.contact.pk)
        by_id = {chain.contact.pk: chain for chain in moved}
        for contact in {id(record.contact): record.contact for record in self.records}.values():
            # the caller's instances follow their head (a later save never sets it back anyway)
            chain = by_id[contact.pk]
            contact.ledger_seq, contact.ledger_hash = chain.seq, chain.hash
            if chain.touched_at is not None:
                contact.last_activity_at = chain.touched_at


def _state_row(state: ConsentState) -> dict[str, Any]:
    """The state row to upsert on (contact, purpose, channel)."""
    return {
        "contact_id": state.contact_id,
        "purpose_id": state.purpose_id,
        "channel": state.channel,
        "status": state.status,
        "purpose_version_id": state.purpose_version_id,
        "record_id": state.record.pk,
        "since": state.since,
        "actor": state.actor,
    }


def _heads_update(chains: Sequence[_Chain]) -> None:
    """Move each contact's head, and its last activity when touched: on PostgreSQL one UPDATE
    from arrays (a column each), elsewhere one UPDATE from a VALUES list per chunk
    (`bulk_update` would write one CASE per row and column)."""
    if not chains:
        return
    connection = connections[Contact.objects.db]
    table = Contact._meta.db_table
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS c SET ledger_seq = v.seq, ledger_hash = v.hash, "  # noqa: S608
                f"last_activity_at = coalesce(v.at, c.last_activity_at) "
                f"FROM unnest(%s::bigint[], %s::bigint[], %s::varchar[], %s::timestamptz[]) "
                f"AS v(id, seq, hash, at) WHERE c.id = v.id",
                [
                    [chain.contact.pk for chain in chains],
                    [chain.seq for chain in chains],
                    [chain.hash for chain in chains],
                    [chain.touched_at for chain in chains],
                ],
            )
        return
    ops = connection.ops
    row = "(%s, %s, %s, %s, %s)"
    for chunk in _in_chunks(chains, WRITE_CHUNK_SIZE):
        params: list[Any] = []
        for chain in chunk:
            at = chain.touched_at or timezone.now()
            params += [
                chain.contact.pk,
                chain.seq,
                chain.hash,
                int(chain.touched_at is not None),
                ops.adapt_datetimefield_value(at),
            ]
        values = ", ".join([row] * len(chunk))
        sql = (
            f"UPDATE {table} SET ledger_seq = v.column2, ledger_hash = v.column3, "  # noqa: S608
            f"last_activity_at = CASE WHEN v.column4 = 1 THEN v.column5 "
            f"ELSE {table}.last_activity_at END "
            f"FROM (VALUES {values}) AS v WHERE {table}.id = v.column1"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def _suppression_for(reason: str | None, action: str, source_kind: str) -> str | None:
    """Why the address is suppressed when this record would make consent valid, else None.

    A list (import, CRM) is refused outright with the reason; other grants go on, as pending
    grants waiting for the person's own click, unless they come from a lifting source.
    """
    if action not in MAKES_VALID:
        return None
    if reason and action == ConsentAction.GRANT and source_kind in LIST_SOURCES:
        raise ValidationError(
            {
                "email": [
                    _(
                        "This person is on the suppression list (%(reason)s); an import or a "
                        "CRM cannot re-add them. Only their own confirmed consent lifts it."
                    )
                    % {"reason": SuppressionReason(reason).label}
                ]
            },
            code="suppressed",
        )
    return reason


def _superseded(state: ConsentState | None, action: str, given_at: datetime, now: datetime) -> bool:
    """Whether a grant or withdrawal is older than the change behind the current state.

    State follows time, not arrival (SPEC §3): a CRM replaying an old opt-in never undoes
    today's opt-out. Times in the future (clock skew) count as their arrival, so a client
    whose clock runs fast cannot shield a grant from the person's withdrawal. Equal times: the
    later arrival wins. Confirm and expire resolve a pending grant and are never superseded.
    """
    if state is None or action not in (ConsentAction.GRANT, ConsentAction.WITHDRAW):
        return False
    return min(given_at, now) < effective_time(state.record)


def effective_time(record: ConsentRecord) -> datetime:
    """When a recorded change counts in time: when the person acted, or its arrival if that
    is earlier (a client clock running fast)."""
    return min(record.given_at, record.recorded_at)


def _transition(
    state: ConsentState | None,
    current: PurposeVersion | None,
    action: str,
    purpose: Purpose,
    source_kind: str,
    resolves: ConsentRecord | None,
    *,
    needs_person: bool = False,
) -> tuple[str, PurposeVersion]:
    """The status a new record leads to, and the wording version it refers to.

    `current`: the purpose's current wording. `needs_person`: the address is suppressed and
    the grant does not come from the person's own confirmed act, so it waits, pending, for
    the link emailed to that address.
    """
    if current is None:
        raise ValidationError({"purpose": [_("This purpose has no wording yet.")]})
    if action in (ConsentAction.CONFIRM, ConsentAction.EXPIRE):
        pending = state is not None and state.status == ConsentStatus.PENDING
        if not pending or state is None or resolves is None or state.record.pk != resolves.pk:
            raise ValidationError({"action": [_("There is no pending grant to resolve.")]})
        status = ConsentStatus.GRANTED if action == ConsentAction.CONFIRM else ConsentStatus.EXPIRED
        return status, state.purpose_version
    if action == ConsentAction.WITHDRAW:
        return ConsentStatus.WITHDRAWN, state.purpose_version if state else current
    already_granted = (
        state is not None
        and state.status == ConsentStatus.GRANTED
        and state.purpose_version_id == current.id
    )
    needs_confirmation = purpose.double_opt_in and source_kind not in CONFIRMED_SOURCES
    if needs_person or (needs_confirmation and not already_granted):
        return ConsentStatus.PENDING, current
    return ConsentStatus.GRANTED, current


def _personal_evidence(evidence: Evidence) -> ConsentEvidence | None:
    if not evidence.has_personal_data:
        return None
    document_sha256 = ""
    if evidence.document:
        digest = hashlib.sha256()
        for chunk in evidence.document.chunks():
            digest.update(chunk)
        document_sha256 = digest.hexdigest()
        evidence.document.seek(0)
    return ConsentEvidence(
        nonce=secrets.token_hex(16),
        # the digest must cover the IP as the database gives it back (IPv6 canonical form)
        ip=ConsentEvidence._meta.get_field("ip").to_python(evidence.ip) or None,
        user_agent=evidence.user_agent[:2000],
        document=evidence.document or "",
        document_sha256=document_sha256,
        guardian_name=evidence.guardian_name[:200],
        guardian_contact=evidence.guardian_contact[:254],
    )


def _consent_payload(record: ConsentRecord, behind: ConsentRecord | None = None) -> dict[str, Any]:
    """What the CRMs and the event feed learn of a consent record; `behind`: for a superseded
    record, the record behind the state that stands."""
    payload = {
        "record": str(record.uuid),
        "purpose": record.purpose.slug,
        "version": record.purpose_version.number,
        "channel": record.channel,
        "action": record.action,
        "status": record.status,
        "given_at": record.given_at.isoformat(),
    }
    if behind is not None:
        payload["current_record"] = str(behind.uuid)
    return payload


def _queue_confirmation_email(contact_id: int) -> None:
    """Queue the confirmation email for after commit (none if the transaction rolls back).

    One call of the write path queues one send per contact; several calls in one
    transaction queue several: the first announces them all, and the others find nothing new
    to announce under the contact's row lock.
    """

    def queue() -> None:
        from consent.tasks import send_double_opt_in_confirmation

        send_double_opt_in_confirmation.delay(contact_id)

    transaction.on_commit(queue)


UNSUBSCRIBE_ALL_REFERENCE = "unsubscribe-all"


def consents_withdraw_all(
    *,
    contact: Contact,
    source_kind: str,
    evidence: Evidence,
    source_reference: str = UNSUBSCRIBE_ALL_REFERENCE,
    purposes: Iterable[Purpose] | None = None,
    object_to_legitimate_interest: bool = True,
    channels: Iterable[str] | None = None,
    announcements: Announcements | None = None,
) -> list[ConsentRecord]:
    """Withdraw every consent and object to every legitimate-interest purpose (Art. 7(3), 21).

    `channels` limits it to those channels (a complaint ends email marketing, a STOP SMS);
    `announcements` holds the timeline moments and outbox events back for the caller to write
    with its own (`Announcements.write`).
    Idempotent: what is already withdrawn is left alone, so a second call writes nothing. What
    to withdraw is decided under the contact's lock, from the states that lock reads.
    """
    return consents_withdraw_all_many(
        withdrawals=[(contact, source_kind, source_reference)],
        evidence=evidence,
        purposes=purposes,
        object_to_legitimate_interest=object_to_legitimate_interest,
        channels=channels,
        announcements=announcements,
    )


def consents_withdraw_all_many(
    *,
    withdrawals: Sequence[tuple[Contact, str, str]],
    evidence: Evidence,
    purposes: Iterable[Purpose] | None = None,
    object_to_legitimate_interest: bool = True,
    announce: bool = True,
    channels: Iterable[str] | None = None,
    announcements: Announcements | None = None,
) -> list[ConsentRecord]:
    """`consents_withdraw_all` for many people at once (erasure batches), in one set-based
    write: `withdrawals` names each contact with the source kind and reference of its records.

    `announce=False` writes the ledger (records, states, heads) without a timeline entry or
    an outbox event per record: for the erasure, which in the same transaction replaces the
    timeline by one entry, deletes the queued outbox events and tells the CRMs once.
    """
    if purposes is None:
        purposes = purposes_with_versions().filter(legal_basis__in=MARKETING_BASES)
    in_order = sorted(purposes, key=lambda purpose: purpose.slug)
    ended_channels = sorted(Channel.values if channels is None else set(channels))
    candidates = [
        ConsentWrite(
            contact=contact,
            purpose=purpose,
            channel=channel,
            action=ConsentAction.WITHDRAW,
            source_kind=source_kind,
            source_reference=source_reference,
            evidence=evidence,
        )
        for contact, source_kind, source_reference in sorted(
            withdrawals, key=lambda withdrawal: withdrawal[0].pk
        )
        for purpose in in_order
        for channel in ended_channels
    ]

    def still_to_end(write: ConsentWrite, state: ConsentState | None) -> bool:
        """Live (granted, or pending so that it cannot be confirmed later), or legitimate
        interest with no objection recorded yet on a channel the purpose uses."""
        if state is not None:
            return state_is_live(state)
        purpose = write.purpose
        return (
            object_to_legitimate_interest
            and purpose.legal_basis == LegalBasis.LEGITIMATE_INTERESTS
            and purpose.is_active
            and write.channel in purpose.channels
        )

    # no savepoint: no caller goes on after a refusal, and it saves two statements
    return _record_many(
        candidates,
        keep=still_to_end,
        savepoint=False,
        announce=announce,
        announcements=announcements,
    )


def consent_confirm(
    *, contact: Contact, record_uuids: Iterable[str], ip: str | None = None, user_agent: str = ""
) -> list[ConsentRecord]:
    """Turn the pending grants named in a confirmation link into valid consent (double opt-in)."""
    with transaction.atomic():
        states = pending_states_for_confirmation(contact=contact, record_uuids=list(record_uuids))
        writes = [
            _resolving(
                state,
                action=ConsentAction.CONFIRM,
                source_kind=SourceKind.EMAIL_CONFIRMATION,
                source_reference=str(state.record.uuid),
                evidence=Evidence(ip=ip, user_agent=user_agent),
            )
            for state in states
        ]
        # a grant confirmed by a concurrent click in the meantime is left out
        return _record_those_still_valid(writes)


def _record_those_still_valid(writes: list[ConsentWrite]) -> list[ConsentRecord]:
    """Record the writes, leaving out those refused (settled concurrently in the meantime):
    a refused batch writes nothing, so the rest is tried again without them."""
    while writes:
        try:
            with transaction.atomic():
                return consents_record_many(writes=writes)
        except ConsentWriteErrors as error:
            writes = [write for index, write in enumerate(writes) if index not in error.errors]
    return []


def _resolving(
    state: ConsentState,
    *,
    action: str,
    source_kind: str,
    source_reference: str,
    evidence: Evidence | None = None,
) -> ConsentWrite:
    """The write that settles the pending grant behind `state` (a confirm or an expire)."""
    return ConsentWrite(
        contact=state.contact,
        purpose=state.purpose,
        channel=state.channel,
        action=action,
        source_kind=source_kind,
        source_reference=source_reference,
        evidence=evidence or Evidence(),
        resolves=state.record,
    )


def pending_grants_expire(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Expire pending double opt-in grants older than DOUBLE_OPT_IN_TTL; safe to run twice."""
    cutoff = (now or timezone.now()) - settings.DOUBLE_OPT_IN_TTL
    pending = ConsentState.objects.filter(
        status=ConsentStatus.PENDING, since__lt=cutoff
    ).select_related("contact", "purpose", "record")
    expired = 0
    for batch in in_batches(pending, batch_size=batch_size):
        writes = [
            _resolving(
                state,
                action=ConsentAction.EXPIRE,
                source_kind=SourceKind.SYSTEM,
                source_reference="expire_pending_grants",
            )
            for state in batch
        ]
        # confirmed or expired by a concurrent run in the meantime: left out
        expired += len(_record_those_still_valid(writes))
    return expired


CONFIRMATION_SALT = "consent.double-opt-in"


def confirmation_token(*, contact: Contact, record_uuids: Iterable[str]) -> str:
    """A signed token naming the pending grants a confirmation link will confirm."""
    return signed_token(
        salt=CONFIRMATION_SALT,
        data={"c": str(contact.public_id), "r": sorted(str(u) for u in record_uuids)},
    )


def confirmation_token_read(token: str) -> tuple[Contact, list[str]]:
    """The contact and pending grants of a confirmation token; raises BadSignature if invalid."""
    data = signed_token_read(
        salt=CONFIRMATION_SALT, token=token, max_age=settings.DOUBLE_OPT_IN_TTL
    )
    contact = contact_find(public_id=data["c"])
    if contact is None:
        raise signing.BadSignature("unknown contact")
    return contact, list(data["r"])


def double_opt_in_send(*, contact_id: int) -> bool:
    """Email the contact one link confirming all their pending grants, in their language.

    Idempotent: grants already announced in an earlier email are not announced again.
    """
    with transaction.atomic():
        # Two runs at once (a retried task, a second transaction's task) queue on this lock, so
        # the second sees the first one's timeline event and sends nothing.
        contact = (
            Contact.objects.select_for_update()
            .filter(pk=contact_id, status=ContactStatus.ACTIVE)
            .first()
        )
        if contact is None:
            return False
        return _send_confirmation(contact)


def suppressed_address_confirmation_claim(*, email: str, now: datetime | None = None) -> bool:
    """Whether a confirmation email may go to this address now: always when it is not
    suppressed, else once a day, however many grants a form or the API sends for it.

    Call it inside the transaction that sends, so that a failed send releases the day.
    """
    if not suppression_reason(kind=SuppressionKind.EMAIL, value=email):
        return True
    day = timezone.localdate(now or timezone.now()).isoformat()
    digest = suppression_digest(SuppressionKind.EMAIL, normalize_email(email))
    return job_run_claim(job=SUPPRESSED_CONFIRMATION_JOB, key=f"{digest}:{day}")


def _send_confirmation(contact: Contact) -> bool:
    states = list(
        ConsentState.objects.filter(contact=contact, status=ConsentStatus.PENDING)
        .select_related("purpose", "purpose_version", "record")
        .order_by("purpose__slug", "channel")
    )
    announced = set(
        uuid
        for data in TimelineEvent.objects.filter(
            contact=contact, kind=TimelineKind.CONFIRMATION_SENT
        ).values_list("data", flat=True)
        for uuid in data.get("records", [])
    )
    if not states or {str(s.record.uuid) for s in states} <= announced:
        return False
    if not suppressed_address_confirmation_claim(email=contact.email):
        return False
    record_uuids = [str(state.record.uuid) for state in states]
    token = confirmation_token(contact=contact, record_uuids=record_uuids)
    context = {
        "contact": contact,
        "states": states,
        "link": site_url("preferences:confirm", token),
        "ttl_hours": int(settings.DOUBLE_OPT_IN_TTL.total_seconds() // 3600),
    }
    email_send(
        template="consent/email/confirm", context=context, to=[contact.email], reader=contact
    )
    timeline_add(
        contact=contact,
        kind=TimelineKind.CONFIRMATION_SENT,
        summary=", ".join(sorted({s.purpose.slug for s in states})),
        data={"records": record_uuids},
    )
    return True
