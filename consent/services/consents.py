"""Writes on consent: the one path that records a consent, purpose wording, privacy requests."""

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.validators import validate_ipv46_address
from django.db import transaction
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from consent.ledger import GENESIS_HASH, evidence_digest, record_hash
from consent.models import (
    Channel,
    ConsentAction,
    ConsentEvidence,
    ConsentRecord,
    ConsentState,
    ConsentStatus,
    LedgerHead,
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
    SuppressionKind,
    SuppressionReason,
    TimelineEvent,
    TimelineKind,
)
from contacts.normalization import normalize_email, suppression_digest
from contacts.selectors import contact_find, suppression_reason
from contacts.services import contact_touch, suppression_lift, timeline_add
from core.batches import in_batches
from core.emails import email_send
from core.links import signed_token, signed_token_read, site_url
from core.services import job_run_claim
from crmsync.models import OutboxTopic
from crmsync.services import outbox_emit

# The person's own confirmed act: a change in the preference center (reached from a link sent
# to the address) or a link followed from an email sent to it. Only these lift a suppression;
# anyone can claim a web form or the API, so a grant from there waits for the person's click.
LIFTING_SOURCES = frozenset({SourceKind.PREFERENCE_CENTER, SourceKind.EMAIL_CONFIRMATION})
# Lists never re-add a suppressed person (SPEC §3 contacts): their grants are refused.
LIST_SOURCES = frozenset({SourceKind.IMPORT, SourceKind.CRM})
# Grants that need no confirmation email on a double opt-in purpose: a signed paper form, and
# a grant recorded because the person followed the emailed link.
CONFIRMED_SOURCES = frozenset({SourceKind.PAPER_FORM, SourceKind.EMAIL_CONFIRMATION})
SUPPRESSED_CONFIRMATION_JOB = "suppressed-address-confirmation"
# Sources that must carry the wording shown and the unticked box with every grant.
WORDING_REQUIRED_SOURCES = frozenset(
    {SourceKind.WEB_FORM, SourceKind.API, SourceKind.IMPORT, SourceKind.CRM}
)
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Evidence:
    """What proves a consent: the wording shown and, stored apart, the personal evidence."""

    wording: str = ""
    unticked_by_default: bool | None = None
    policy_version: str = ""
    ip: str | None = None
    user_agent: str = ""
    document: File | None = None

    @property
    def has_personal_data(self) -> bool:
        return bool(self.ip or self.user_agent or self.document)


@dataclass(frozen=True, slots=True)
class ConsentWrite:
    """One consent to write to the ledger: whose, for what and on which channel, what happened,
    where it came from, when, and what proves it.

    `given_at` is when the person acted (None: now); `resolves` is the pending grant a confirm
    or an expire settles.
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
    *, purpose: Purpose, channel: str, source_kind: str, evidence: Evidence, given_at: datetime
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
    )
    if purpose.current_version is None:
        raise ValidationError({"purpose": [_("This purpose has no wording yet.")]})


def _validate_request(
    *,
    contact: Contact | None,
    purpose: Purpose,
    channel: str,
    action: str,
    source_kind: str,
    evidence: Evidence,
    given_at: datetime,
    now: datetime,
) -> None:
    errors: dict[str, list[str]] = {}
    # Withdrawing and expiring must stay possible after a purpose is retired or drops a channel
    # (GDPR Art. 7(3)); only what makes consent valid again needs the purpose as it is now.
    makes_valid = action in (ConsentAction.GRANT, ConsentAction.CONFIRM)
    if contact is not None and contact.status == ContactStatus.ERASED:
        errors["contact"] = [_("This contact was erased.")]
    if makes_valid and not purpose.is_active:
        errors["purpose"] = [_("This purpose is no longer active.")]
    if channel not in Channel.values or (makes_valid and channel not in purpose.channels):
        errors["channel"] = [_("This purpose is not used on this channel.")]
    if action not in ConsentAction.values:
        errors["action"] = [_("Not a valid choice.")]
    if source_kind not in SourceKind.values:
        errors["source"] = [_("Not a valid source kind.")]
    if given_at > now + CLOCK_SKEW:
        errors["given_at"] = [_("Consent cannot be given in the future.")]
    if action == ConsentAction.GRANT:
        errors.update(_grant_evidence_errors(source_kind, evidence))
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
    if source_kind in WORDING_REQUIRED_SOURCES and not evidence.wording.strip():
        return {"evidence": [_("A grant must carry the exact wording shown to the person.")]}
    if source_kind == SourceKind.PAPER_FORM and not evidence.document:
        return {"evidence": [_("A paper-form grant must carry the signed document.")]}
    return {}


def consent_record(*, write: ConsentWrite) -> ConsentRecord:
    """Append one record to the consent ledger and update the current state with it.

    The single write path for consent (GDPR Art. 7(1): the controller must be able to prove
    consent). Record, state, timeline and outbox event are written in one transaction.
    Two rules apply here, whoever calls: a grant for a suppressed address only lifts the
    suppression from LIFTING_SOURCES (else it waits, pending, for the emailed link; lists are
    refused), and a record older than the change behind the state is kept but changes nothing.
    """
    now = timezone.now()
    given_at = write.given_at or now
    write = replace(write, given_at=given_at)
    contact, action, source_kind = write.contact, write.action, write.source_kind
    _validate_request(
        contact=contact,
        purpose=write.purpose,
        channel=write.channel,
        action=action,
        source_kind=source_kind,
        evidence=write.evidence,
        given_at=given_at,
        now=now,
    )
    with transaction.atomic():
        # Locks in one order everywhere: contact, ledger head, state. The erasure path holds
        # the contact first too, so a concurrent write waits for it and then sees the erasure.
        current = Contact.objects.select_for_update().only("status", "email").get(pk=contact.pk)
        if current.status == ContactStatus.ERASED:
            raise ValidationError({"contact": [_("This contact was erased.")]})
        head = _lock_ledger_head()
        state = (
            # only the state row: ledger records are never locked for update
            ConsentState.objects.select_for_update(of=("self",))
            .select_related("record")
            .filter(contact=contact, purpose=write.purpose, channel=write.channel)
            .first()
        )
        suppressed = _suppression_for(current, action, source_kind)
        superseded = _superseded(state, action, given_at, now)
        status, version = _transition(
            state,
            write.purpose,
            action,
            source_kind,
            write.resolves,
            needs_person=bool(suppressed) and source_kind not in LIFTING_SOURCES,
        )
        if superseded:
            assert state is not None  # only a change behind an existing state is superseded
            # kept as proof that it arrived, but the newer change behind the state stands
            status = state.status
        record = _append(head=head, write=write, version=version, status=status, now=now)
        if superseded:
            assert state is not None
            _record_superseded(record, contact, state)
            return record
        _write_state(state, record)
        if suppressed and source_kind in LIFTING_SOURCES:
            suppression_lift(email=current.email)
        _record_side_effects(record, contact, source_kind)
    return record


def _suppression_for(contact: Contact, action: str, source_kind: str) -> str | None:
    """Why the address is suppressed when this record would make consent valid, else None.

    A list (import, CRM) is refused outright with the reason; other grants go on, as pending
    grants waiting for the person's own click, unless they come from a lifting source.
    """
    if action not in (ConsentAction.GRANT, ConsentAction.CONFIRM):
        return None
    reason = suppression_reason(kind=SuppressionKind.EMAIL, value=contact.email)
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
    behind = state.record
    return min(given_at, now) < min(behind.given_at, behind.recorded_at)


def _lock_ledger_head() -> LedgerHead:
    """Lock the single head row (appends queue here), recreating it if a flush removed it."""
    head = LedgerHead.objects.select_for_update().filter(id=1).first()
    if head is None:
        LedgerHead.objects.get_or_create(id=1, defaults={"last_hash": GENESIS_HASH})
        head = LedgerHead.objects.select_for_update().get(id=1)
    return head


def _transition(
    state: ConsentState | None,
    purpose: Purpose,
    action: str,
    source_kind: str,
    resolves: ConsentRecord | None,
    *,
    needs_person: bool = False,
) -> tuple[str, PurposeVersion]:
    """The status a new record leads to, and the wording version it refers to.

    `needs_person`: the address is suppressed and the grant does not come from the person's
    own confirmed act, so it waits, pending, for the link emailed to that address.
    """
    current = purpose.current_version
    if current is None:
        raise ValidationError({"purpose": [_("This purpose has no wording yet.")]})
    if action in (ConsentAction.CONFIRM, ConsentAction.EXPIRE):
        pending = state is not None and state.status == ConsentStatus.PENDING
        if not pending or state is None or resolves is None or state.record_id != resolves.id:
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


def _append(
    *, head: LedgerHead, write: ConsentWrite, version: PurposeVersion, status: str, now: datetime
) -> ConsentRecord:
    """Chain one record after the ledger head; `write.given_at` is already resolved."""
    personal = _personal_evidence(write.evidence)
    record = ConsentRecord(
        contact=write.contact,
        purpose=write.purpose,
        purpose_version=version,
        channel=write.channel,
        action=write.action,
        status=status,
        given_at=write.given_at or now,
        recorded_at=now,
        source_kind=write.source_kind,
        source_reference=write.source_reference[:500],
        wording=write.evidence.wording or version.wording,
        language=(get_language() or write.contact.reading_language())[:2],
        unticked_by_default=write.evidence.unticked_by_default,
        policy_version=write.evidence.policy_version,
        evidence_digest=evidence_digest(personal) if personal else "",
        resolves=write.resolves,
        previous_hash=head.last_hash,
    )
    record.hash = record_hash(record)
    record.save()
    if personal is not None:
        personal.record = record
        personal.save()
    head.last_hash, head.last_record_id = record.hash, record.id
    head.record_count += 1
    head.save(update_fields=["last_hash", "last_record_id", "record_count"])
    return record


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
    )


def _write_state(state: ConsentState | None, record: ConsentRecord) -> None:
    if state is None:
        state = ConsentState(contact=record.contact, purpose=record.purpose, channel=record.channel)
    state.status = record.status
    state.purpose_version = record.purpose_version
    state.record = record
    state.since = record.recorded_at
    state.save()


def _consent_payload(record: ConsentRecord) -> dict[str, Any]:
    """What the CRMs and the event feed learn of a consent record."""
    return {
        "record": str(record.uuid),
        "purpose": record.purpose.slug,
        "version": record.purpose_version.number,
        "channel": record.channel,
        "action": record.action,
        "status": record.status,
        "given_at": record.given_at.isoformat(),
    }


def _record_superseded(record: ConsentRecord, contact: Contact, state: ConsentState) -> None:
    """Tell the CRMs a record was kept but changed nothing; no timeline moment, no email."""
    outbox_emit(
        topic=OutboxTopic.CONSENT_SUPERSEDED,
        contact=contact,
        payload={**_consent_payload(record), "current_record": str(state.record.uuid)},
    )


def _record_side_effects(record: ConsentRecord, contact: Contact, source_kind: str) -> None:
    summary = f"{record.purpose.slug}/{record.channel}: {record.status}"
    timeline_add(
        contact=contact,
        kind=TimelineKind.CONSENT_CHANGED,
        summary=summary,
        data={"record": str(record.uuid), "action": record.action, "source": source_kind},
    )
    outbox_emit(
        topic=OutboxTopic.CONSENT_RECORDED,
        contact=contact,
        payload=_consent_payload(record),
    )
    if source_kind not in (SourceKind.SYSTEM, SourceKind.CRM, SourceKind.IMPORT):
        contact_touch(contact=contact, at=record.recorded_at)
    if record.status == ConsentStatus.PENDING:
        _queue_confirmation_email(contact.id)


def _queue_confirmation_email(contact_id: int) -> None:
    """Queue the confirmation email for after commit (none if the transaction rolls back).

    Several pending grants in one transaction queue several sends: the first announces them
    all, and the others find nothing new to announce under the contact's row lock.
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
) -> list[ConsentRecord]:
    """Withdraw every consent and object to every legitimate-interest purpose (Art. 7(3), 21).

    Idempotent: what is already withdrawn is left alone, so a second call writes nothing.
    """
    if purposes is None:
        purposes = purposes_with_versions().filter(legal_basis__in=MARKETING_BASES)
    purposes_by_id = {purpose.id: purpose for purpose in purposes}
    withdrawn = []
    with transaction.atomic():
        # the contact first, as in consent_record: one lock order everywhere
        Contact.objects.select_for_update().filter(pk=contact.pk).first()
        states = {
            (state.purpose_id, state.channel): state
            for state in ConsentState.objects.select_for_update().filter(
                contact=contact, purpose_id__in=purposes_by_id
            )
        }
        pairs = _channels_to_withdraw(purposes_by_id, states, object_to_legitimate_interest)
        for purpose_id, channel in pairs:
            withdrawn.append(
                consent_record(
                    write=ConsentWrite(
                        contact=contact,
                        purpose=purposes_by_id[purpose_id],
                        channel=channel,
                        action=ConsentAction.WITHDRAW,
                        source_kind=source_kind,
                        source_reference=source_reference,
                        evidence=evidence,
                    )
                )
            )
    return withdrawn


def _channels_to_withdraw(
    purposes: dict[int, Purpose],
    states: dict[tuple[int, str], ConsentState],
    object_to_legitimate_interest: bool,
) -> list[tuple[int, str]]:
    """(purpose, channel) pairs a withdrawal must still end (`state_is_live`: granted, or
    pending so that it cannot be confirmed later), and legitimate interest with no objection
    recorded yet on a channel the purpose uses."""
    on = {key for key, state in states.items() if state_is_live(state)}
    for purpose in purposes.values() if object_to_legitimate_interest else ():
        if purpose.legal_basis == LegalBasis.LEGITIMATE_INTERESTS and purpose.is_active:
            on |= {(purpose.id, ch) for ch in purpose.channels if (purpose.id, ch) not in states}
    return sorted(on, key=lambda key: (purposes[key[0]].slug, key[1]))


def consent_confirm(
    *, contact: Contact, record_uuids: Iterable[str], ip: str | None = None, user_agent: str = ""
) -> list[ConsentRecord]:
    """Turn the pending grants named in a confirmation link into valid consent (double opt-in)."""
    confirmed = []
    with transaction.atomic():
        states = pending_states_for_confirmation(contact=contact, record_uuids=list(record_uuids))
        for state in states:
            try:
                confirmed.append(_confirm_one(state, ip=ip, user_agent=user_agent))
            except ValidationError:
                continue  # confirmed by a concurrent click in the meantime
    return confirmed


def _confirm_one(state: ConsentState, *, ip: str | None, user_agent: str) -> ConsentRecord:
    with transaction.atomic():
        return consent_record(
            write=_resolving(
                state,
                action=ConsentAction.CONFIRM,
                source_kind=SourceKind.EMAIL_CONFIRMATION,
                source_reference=str(state.record.uuid),
                evidence=Evidence(ip=ip, user_agent=user_agent),
            )
        )


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
    return sum(
        _expire_one(state)
        for batch in in_batches(pending, batch_size=batch_size)
        for state in batch
    )


def _expire_one(state: ConsentState) -> int:
    try:
        consent_record(
            write=_resolving(
                state,
                action=ConsentAction.EXPIRE,
                source_kind=SourceKind.SYSTEM,
                source_reference="expire_pending_grants",
            )
        )
    except ValidationError:
        return 0  # confirmed or expired by a concurrent run in the meantime
    return 1


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


def consents_record_many(*, writes: Sequence[ConsentWrite]) -> list[ConsentRecord]:
    """Record many consent writes, all or nothing (temporary loop over consent_record)."""
    with transaction.atomic():
        return [consent_record(write=write) for write in writes]
