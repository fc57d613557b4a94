"""Data-subject requests (GDPR Art. 12-21), the one erasure path, exports and retention.

Every entry point (admin, API, preference center, beat jobs) calls these. A request is
carried out in one transaction with its status change: a worker that dies in the middle
leaves nothing half-done, and the retry finds the request still to do (or done, when another
run finished it first) and acts exactly once.
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import Storage
from django.db import connections, transaction
from django.db.models import Case, Exists, F, Max, OuterRef, Q, TextField, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from consent.models import (
    ConsentEvidence,
    ConsentState,
    ConsentStatus,
    LegalBasis,
    Purpose,
    SourceKind,
)
from consent.selectors import purposes_with_versions
from consent.services.consents import (
    ROW_VERSION_SQL,
    SEEN_VERSION_SQL,
    Evidence,
    consents_withdraw_all,
    consents_withdraw_all_many,
)
from consent.status import LIVE_STATUSES, MARKETING_BASES, RETAINING_STATUSES
from contacts.models import (
    Contact,
    ContactStatus,
    EmailDeliverability,
    Relationship,
    SuppressionKind,
    TimelineKind,
)
from contacts.selectors import contact_find, suppression_reason
from contacts.services import (
    contact_marketing_objection_set,
    contact_restriction_set,
    contact_touch,
    contacts_anonymise_many,
    timeline_add,
)
from core.batches import in_batches
from core.emails import email_send
from core.links import site_url
from core.management.commands.setup_roles import DPO
from core.models import ApiClient, AuditEvent, IdempotencyRecord, Scope
from core.services import job_run_claim
from crmsync.models import ContactLink, DeadLetter, OutboxEvent, OutboxTopic
from crmsync.services import push_soon
from preferences.models import PreferenceToken
from preferences.selectors import purposes_loaded
from preferences.services import (
    SOURCE_REFERENCE,
    preference_token_issue,
    preference_url,
    unsubscribe_url,
)
from privacy.acknowledgements import (
    erasure_acknowledgements_close,
    erasure_acknowledgements_open,
    erasure_request_waits,
)
from privacy.exports import personal_data_csv_zip, personal_data_json
from privacy.models import (
    PrivacyRequest,
    PrivacyRequestEvent,
    PrivacyRequestStatus,
    PrivacyRequestType,
)
from privacy.proof import proof_archive_write
from privacy.status import request_status_set as _set_status

logger = logging.getLogger(__name__)

# Carried out by the workers once verified; rectification needs a person to read the details.
AUTOMATIC_TYPES = frozenset(
    {
        PrivacyRequestType.ACCESS,
        PrivacyRequestType.PORTABILITY,
        PrivacyRequestType.ERASURE,
        PrivacyRequestType.RESTRICTION,
        PrivacyRequestType.OBJECTION,
    }
)
OPEN_STATUSES = frozenset(
    {
        PrivacyRequestStatus.RECEIVED,
        PrivacyRequestStatus.VERIFIED,
        PrivacyRequestStatus.IN_PROGRESS,
        PrivacyRequestStatus.AWAITING_CRMS,
    }
)
# Who may move a request where; completion by the workers goes through privacy_request_carry_out.
TRANSITIONS: dict[str, set[str]] = {
    PrivacyRequestStatus.RECEIVED: {PrivacyRequestStatus.VERIFIED, PrivacyRequestStatus.REJECTED},
    PrivacyRequestStatus.VERIFIED: {
        PrivacyRequestStatus.IN_PROGRESS,
        PrivacyRequestStatus.COMPLETED,
        PrivacyRequestStatus.REJECTED,
    },
    PrivacyRequestStatus.IN_PROGRESS: {
        PrivacyRequestStatus.COMPLETED,
        PrivacyRequestStatus.REJECTED,
    },
    # erased here; the DPO may close it, with a note, before every CRM acknowledged
    PrivacyRequestStatus.AWAITING_CRMS: {PrivacyRequestStatus.COMPLETED},
}
MAX_EXTENSION_MONTHS = 2
# What erasure keeps of the staff's free text about the person (it may name them).
ERASED_NOTE = "[erased]"
# Audit details an erasure keeps: ids, choices and numbers. Every other key may hold words
# about the person (a note, a reason, an extension's reason, a search), whatever it is named.
AUDIT_KEPT_KEYS = frozenset(
    {"request", "format", "next_status", "extend_months", "action", "type", "status", "kind", "by"}
)
REMINDER_WINDOW = timedelta(days=7)
EXPORTS_FOLDER = "exports"  # the export fields' upload_to
ORPHAN_EXPORT_AGE = timedelta(hours=1)


def privacy_request_file(
    *,
    contact: Contact | None,
    type: str,
    details: str = "",
    source_kind: str,
    source_reference: str = "",
    verified: bool = False,
    by: str = "",
    received_at: datetime | None = None,
    held_reason: str = "",
) -> PrivacyRequest:
    """File a data-subject request, due one month after receipt (GDPR Art. 12(3)).

    `received_at`: when it reached us, if earlier than now (a letter entered later). A
    verified request of a kind the workers carry out is queued for them after commit.
    `contact` is None for a person we hold nothing on (see `privacy_request_file_by_client`).
    `held_reason`: why it waits for the DPO instead (it is then filed unverified).
    """
    now = timezone.now()
    privacy_request_file_check(contact=contact, type=type, received_at=received_at, now=now)
    received_at = received_at or now
    verified = verified and not held_reason
    status = PrivacyRequestStatus.VERIFIED if verified else PrivacyRequestStatus.RECEIVED
    with transaction.atomic():
        request = PrivacyRequest.objects.create(
            contact=contact,
            type=type,
            status=status,
            details=details,
            source_kind=source_kind,
            source_reference=source_reference[:500],
            received_at=received_at,
            # one calendar month on the local calendar (31 Jan -> 28/29 Feb), not UTC's
            due_at=timezone.localtime(received_at) + relativedelta(months=1),
            held_reason=held_reason,
        )
        PrivacyRequestEvent.objects.create(request=request, status=status, at=now, by=by)
        if contact is not None:
            timeline_add(
                contact=contact,
                kind=TimelineKind.REQUEST_FILED,
                summary=type,
                data={"request": str(request.id), "source": source_kind},
            )
        if verified:
            _queue_carry_out(request)
    return request


def privacy_request_file_check(
    *,
    contact: Contact | None,
    type: str,
    received_at: datetime | None = None,
    now: datetime | None = None,
) -> None:
    """Refuse, as `privacy_request_file` would, a request that cannot be filed (every error)."""
    errors: dict[str, list[str]] = {}
    if type not in PrivacyRequestType.values:
        errors["type"] = [_("Not a valid choice.")]
    if contact is not None and contact.status == ContactStatus.ERASED:
        errors["contact"] = [_("This contact was erased.")]
    if received_at is not None and received_at > (now or timezone.now()):
        errors["received_at"] = [_("A request cannot be received in the future.")]
    if errors:
        raise ValidationError(errors)


def privacy_request_file_by_client(
    *, client: ApiClient, email: str = "", contact: Contact | None = None, type: str, details: str
) -> PrivacyRequest:
    """File a request from an API client, which verified the person (SPEC §3), by email or id.

    An email no contact has is refused to a client that may read contacts anyway; to the
    others it is answered like a known one (a request kept without a contact, carried out
    with nothing to do), so that filing requests cannot tell who is a contact. Past
    `API_ERASURE_DAILY_LIMIT` erasures from the client today, the next ones wait for the DPO.
    """
    if contact is None:
        contact = contact_find(email=email)
        if contact is None and client.has_scope(Scope.CONTACTS_READ):
            raise ValidationError({"email": [_("No contact has this email.")]})
    source = f"api:{client.name}"
    with transaction.atomic():
        held_reason = ""
        if type == PrivacyRequestType.ERASURE:
            # one client's erasures are counted one at a time: a burst cannot pass the cap
            ApiClient.objects.select_for_update().filter(pk=client.pk).first()
            held_reason = _erasure_cap_reason(client, source)
        return privacy_request_file(
            contact=contact,
            type=type,
            details=details,
            source_kind=SourceKind.API,
            source_reference=source,
            verified=True,
            by=source,
            held_reason=held_reason,
        )


def _erasure_cap_reason(client: ApiClient, source: str) -> str:
    """Why the next erasure from this client waits for the DPO, or "" while under the cap."""
    limit = settings.API_ERASURE_DAILY_LIMIT
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    today = PrivacyRequest.objects.filter(
        type=PrivacyRequestType.ERASURE,
        source_kind=SourceKind.API,
        source_reference=source,
        received_at__gte=midnight,
    ).count()
    if today < limit:
        return ""
    return _(
        "API client %(client)s filed more than %(limit)d erasure requests today "
        "(API_ERASURE_DAILY_LIMIT): check it is not a mistake or an abuse, then verify it "
        "to have it carried out."
    ) % {"client": client.name, "limit": limit}


def _queue_carry_out(request: PrivacyRequest) -> None:
    if request.type not in AUTOMATIC_TYPES:
        return
    request_id = str(request.id)

    def queue() -> None:
        from privacy.tasks import carry_out_privacy_request

        carry_out_privacy_request.delay(request_id)

    transaction.on_commit(queue)


def privacy_request_transition(
    *, request: PrivacyRequest, status: str, by: str, note: str = ""
) -> PrivacyRequest:
    """Move a request to its next status (the DPO verifies, rejects or completes by hand)."""
    with transaction.atomic():
        request = PrivacyRequest.objects.select_for_update().get(pk=request.pk)
        privacy_request_transition_check(request=request, status=status, note=note)
        if request.status == PrivacyRequestStatus.AWAITING_CRMS:
            erasure_acknowledgements_close(request=request)
            _set_status(request, status, by=by, note=note)
            return request
        if status == PrivacyRequestStatus.COMPLETED and request.type in AUTOMATIC_TYPES:
            _complete(request, by=by, note=note)  # the work itself, never only its status
            return request
        event = _set_status(request, status, by=by, note=note)
        if status == PrivacyRequestStatus.VERIFIED:
            _queue_carry_out(request)
        if status == PrivacyRequestStatus.REJECTED:
            _tell_person(event, kind=DECISION_REJECTED, reason=note)
    return request


def privacy_request_transition_check(*, request: PrivacyRequest, status: str, note: str) -> None:
    """Refuse, as `privacy_request_transition` would, a status the request cannot move to."""
    if status not in TRANSITIONS.get(request.status, set()):
        raise ValidationError(
            {"status": [_("A request cannot go from this status to the one chosen.")]}
        )
    if status == PrivacyRequestStatus.REJECTED and not note.strip():
        raise ValidationError({"note": [_("Say why the request is rejected.")]})
    if request.status == PrivacyRequestStatus.AWAITING_CRMS and not note.strip():
        raise ValidationError(
            {"note": [_("Say why the request is closed before every CRM acknowledged it.")]}
        )


def privacy_request_extension_check(*, request: PrivacyRequest, months: int, reason: str) -> Any:
    """The new deadline of an extension, or a ValidationError saying why it is refused."""
    errors = {}
    if not reason.strip():
        errors["extension_reason"] = [_("An extension needs its reason.")]
    if months not in range(1, MAX_EXTENSION_MONTHS + 1):
        errors["months"] = [_("Extend by one or two months.")]
    if errors:
        raise ValidationError(errors)
    if request.status not in OPEN_STATUSES:
        raise ValidationError({"status": [_("Only an open request can be extended.")]})
    limit = timezone.localtime(request.received_at) + relativedelta(months=1 + MAX_EXTENSION_MONTHS)
    due_at = timezone.localtime(request.due_at) + relativedelta(months=months)
    if due_at > limit:
        raise ValidationError(
            {"months": [_("The deadline can be extended by two months at most in all.")]}
        )
    return due_at


def privacy_request_extend(
    *, request: PrivacyRequest, months: int, reason: str, by: str
) -> PrivacyRequest:
    """Extend the deadline by up to two months in all, with the reason (GDPR Art. 12(3))."""
    privacy_request_extension_check(request=request, months=months, reason=reason)
    with transaction.atomic():
        request = PrivacyRequest.objects.select_for_update().get(pk=request.pk)
        due_at = privacy_request_extension_check(request=request, months=months, reason=reason)
        request.due_at = due_at
        request.extension_reason = "\n".join(filter(None, [request.extension_reason, reason]))
        request.handled_by = by
        request.save(update_fields=["due_at", "extension_reason", "handled_by"])
        note = _("Deadline extended to %(date)s: %(reason)s") % {
            "date": due_at.date().isoformat(),
            "reason": reason,
        }
        event = PrivacyRequestEvent.objects.create(
            request=request, status=request.status, by=by, note=note
        )
        _tell_person(event, kind=DECISION_EXTENDED, reason=reason)
    return request


DECISION_EXTENDED = "extended"
DECISION_REJECTED = "rejected"
DECISION_TEMPLATES = {
    DECISION_EXTENDED: "privacy/email/request_extended",
    DECISION_REJECTED: "privacy/email/request_rejected",
}


def _tell_person(event: PrivacyRequestEvent, *, kind: str, reason: str) -> None:
    """Once the decision is committed, email it to the person with its reasons; a request
    with nobody to write to (no contact, erased, no address) says so in its history."""
    if _address_of(event.request.contact) is None:
        event.note = "\n".join(
            [event.note, _("The person was not told by email: no address on file.")]
        )
        event.save(update_fields=["note"])
        return
    event_id = event.pk

    def queue() -> None:
        from privacy.tasks import send_privacy_request_decision

        send_privacy_request_decision.delay(event_id, kind, reason)

    transaction.on_commit(queue)


def _address_of(contact: Contact | None) -> str | None:
    if contact is None or contact.status == ContactStatus.ERASED or not contact.email:
        return None
    return contact.email


def privacy_request_decision_send(*, event_id: int, kind: str, reason: str) -> bool:
    """Email the person that their request's deadline is extended, or that it is rejected,
    with the reasons, in their language (GDPR Art. 12(3)-(4)); a second run sends nothing."""
    with transaction.atomic():
        event = (
            PrivacyRequestEvent.objects.select_for_update(of=("self",))
            .select_related("request__contact")
            .filter(pk=event_id, person_notified_at__isnull=True)
            .first()
        )
        if event is None:
            return False
        contact = event.request.contact
        address = _address_of(contact)
        if address is None:
            return False  # erased in the meantime: nobody to tell
        email_send(
            template=DECISION_TEMPLATES[kind],
            context={"contact": contact, "request": event.request, "reason": reason},
            to=[address],
            reader=contact,
        )
        event.person_notified_at = timezone.now()
        event.save(update_fields=["person_notified_at"])
    return True


def privacy_request_carry_out(*, request_id: str, by: str = "worker") -> PrivacyRequest | None:
    """Carry out a verified request, all of it or nothing; a second run does nothing.

    Access and portability: the export files; erasure: `contact_erase`; restriction: stop all
    marketing processing; objection: withdraw every legitimate-interest purpose.
    """
    with transaction.atomic():
        # the contact first, then the request, in the order erasure takes them; the contact
        # may be missing (an unknown email), which a single FOR UPDATE join cannot lock
        requests = PrivacyRequest.objects.filter(pk=request_id)
        contact_id = requests.values_list("contact_id", flat=True).first()
        if contact_id is not None:
            Contact.objects.select_for_update().filter(pk=contact_id).first()
        request = requests.select_for_update(of=("self",)).select_related("contact").first()
        if request is None or request.type not in AUTOMATIC_TYPES:
            return None
        if request.status not in (PrivacyRequestStatus.VERIFIED, PrivacyRequestStatus.IN_PROGRESS):
            return None  # not verified yet, or already done by another run
        _complete(request, by=by)
    return request


def _complete(request: PrivacyRequest, *, by: str, note: str = "") -> None:
    """Carry the request out and mark it completed, in the caller's transaction. A request
    about a person erased in the meantime cannot be carried out: it is closed as rejected."""
    if request.contact is None:
        # nobody to act on: we hold nothing on this person, which is the whole answer
        _set_status(request, PrivacyRequestStatus.COMPLETED, by=by, note=note)
        return
    if (
        request.contact.status == ContactStatus.ERASED
        and request.type != PrivacyRequestType.ERASURE
    ):
        _set_status(
            request,
            PrivacyRequestStatus.REJECTED,
            by=by,
            note=_("The person was erased before this request could be carried out."),
        )
        return
    CARRY_OUT[request.type](request)
    if request.type == PrivacyRequestType.ERASURE and erasure_request_waits(
        request_ids=[request.pk]
    ):
        # complete once every connected CRM acknowledged (privacy.acknowledgements)
        _set_status(request, PrivacyRequestStatus.AWAITING_CRMS, by=by, note=note)
        return
    _set_status(request, PrivacyRequestStatus.COMPLETED, by=by, note=note)
    if request.contact.status != ContactStatus.ERASED:
        timeline_add(
            contact=request.contact,
            kind=TimelineKind.REQUEST_COMPLETED,
            summary=request.type,
            data={"request": str(request.id)},
        )


def _reference(request: PrivacyRequest) -> str:
    return f"privacy-request:{request.id}"


def _subject(request: PrivacyRequest) -> Contact:
    """The person a request is carried out on: `_complete` never carries out one without."""
    assert request.contact is not None
    return request.contact


def _export(request: PrivacyRequest) -> None:
    contact = _subject(request)
    name = f"{request.id}"
    request.export_json.save(f"{name}.json", ContentFile(personal_data_json(contact)), save=False)
    request.export_archive.save(
        f"{name}.zip", ContentFile(personal_data_csv_zip(contact)), save=False
    )
    request.export_expires_at = timezone.now() + settings.PRIVACY_EXPORT_TTL
    request.save(update_fields=["export_json", "export_archive", "export_expires_at"])


def _erase(request: PrivacyRequest) -> None:
    # the erased contact replaces the stale one, so no "completed" entry follows the "erased"
    request.contact = contact_erase(
        contact=_subject(request),
        reason=request.type,
        source_kind=request.source_kind,
        source_reference=_reference(request),
        request_id=request.pk,
    )


def _restrict(request: PrivacyRequest) -> None:
    contact_restriction_set(contact=_subject(request), restricted=True, source=_reference(request))


def _object(request: PrivacyRequest) -> None:
    consents_withdraw_all(
        contact=_subject(request),
        source_kind=request.source_kind,
        source_reference=_reference(request),
        evidence=Evidence(),
        purposes=purposes_with_versions().filter(legal_basis=LegalBasis.LEGITIMATE_INTERESTS),
    )
    contact_marketing_objection_set(
        contact=_subject(request), objected=True, source=_reference(request)
    )
    timeline_add(
        contact=_subject(request),
        kind=TimelineKind.OBJECTION,
        summary=_reference(request),
        data={"request": str(request.id)},
    )


CARRY_OUT: dict[str, Callable[[PrivacyRequest], None]] = {
    PrivacyRequestType.ACCESS: _export,
    PrivacyRequestType.PORTABILITY: _export,
    PrivacyRequestType.ERASURE: _erase,
    PrivacyRequestType.RESTRICTION: _restrict,
    PrivacyRequestType.OBJECTION: _object,
}


def contact_erase(
    *,
    contact: Contact,
    reason: str,
    source_kind: str = SourceKind.SYSTEM,
    source_reference: str = "",
    request_id: Any = None,
) -> Contact:
    """Erase a person everywhere (GDPR Art. 17), keeping only what proves past lawful processing.

    The one erasure path: requests, the admin, the retention job and the preference center all
    call it (or `contacts_erase_many`, its set-based form, the same rules for many people).
    Consents are withdrawn in the ledger (records stay, the chain still verifies), who
    consented and their personal evidence move to the encrypted proof archive for
    `PROOF_RETENTION_YEARS` (`privacy.proof`: then the records go too), the contact is
    anonymised and suppressed, links, exports, queued CRM payloads and stored API answers
    that name the person are removed, and one outbox event tells the CRMs to erase it too
    (Art. 17(2), 19), each connected CRM's acknowledgement recorded (on `request_id`, the
    privacy request that asked, if any: `privacy.acknowledgements`). Safe to run twice.
    """
    with transaction.atomic():
        contacts = _lock_for_erasure([contact.pk])
        source = (source_kind, source_reference or "erasure")
        sources = {locked.pk: source for locked in contacts}
        requests = {locked.pk: request_id for locked in contacts} if request_id else {}
        erased = _erase_contacts(contacts, reason=reason, sources=sources, requests=requests)
        if contact.pk in erased:
            return erased[contact.pk]
        return Contact.objects.get(pk=contact.pk)  # erased before: nothing more to do


@dataclass(frozen=True)
class ErasureOutcome:
    """What a set-based erasure did: the contacts erased, and those that failed (logged, and
    left as they were: the next run tries them again)."""

    erased: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


def contacts_erase_many(
    *,
    contact_ids: Iterable[int],
    reason: str,
    source_kind: str = SourceKind.SYSTEM,
    source_reference: str = "",
) -> ErasureOutcome:
    """Erase many people at once: `contact_erase`'s rules, in a fixed number of statements for
    the whole batch (and its consent withdrawals in one set-based ledger write).

    Every `settings.ERASURE_BATCH_SIZE` people are one transaction. If one fails, each of its
    people is erased in a transaction of their own, so that one person who cannot be erased
    does not hold back the others; that one is logged, left as it was, and reported in
    `failed`.
    Contacts already erased are skipped (safe to run twice).
    """
    ids = sorted(set(contact_ids))
    source = (source_kind, source_reference or "erasure")

    def erase(batch: list[int]) -> list[int]:
        contacts = _lock_for_erasure(batch)
        sources = {contact.pk: source for contact in contacts}
        return list(_erase_contacts(contacts, reason=reason, sources=sources))

    return _erase_in_batch(ids, erase, what="contact")


def _erase_in_batch(
    ids: list[Any], erase: Callable[[list[Any]], list[Any]], *, what: str
) -> ErasureOutcome:
    """Run `erase` on the ids, `settings.ERASURE_BATCH_SIZE` at a time, each batch in one
    transaction (few statements for many people, yet short enough that its locks are released
    soon and a worker killed in a long job loses little); if a batch fails, on each of its ids
    in a transaction of its own (the failures logged). `erase` answers the ids it acted on."""
    outcome = ErasureOutcome()
    size = settings.ERASURE_BATCH_SIZE
    for start in range(0, len(ids), size):
        batch = ids[start : start + size]
        try:
            with transaction.atomic():
                outcome.erased.extend(erase(batch))
            continue
        except Exception:
            if len(batch) == 1:
                logger.exception("%s %s could not be erased", what, batch[0])
                outcome.failed.extend(batch)
                continue
            logger.exception("erasing %d at once failed: erasing each %s alone", len(batch), what)
        for one in batch:
            try:
                with transaction.atomic():
                    outcome.erased.extend(erase([one]))
            except Exception:  # one person who fails must not hold back the others
                logger.exception("%s %s could not be erased", what, one)
                outcome.failed.append(one)
    return outcome


def _lock_for_erasure(contact_ids: Iterable[int]) -> list[Contact]:
    """The contacts not erased yet, locked (in id order: two batches never deadlock), with
    the contacts merged into them: they still hold the same person's old addresses.

    A merge into one of them that committed while the lock waited is not in the statement's
    snapshot: a second look, under the lock, finds it. It is taken only when needed: on
    PostgreSQL when a locked row changed after the snapshot (a merge always writes its
    survivor's row, `contact_merge_into`), the consent writes' test (`ROW_VERSION_SQL`); on
    SQLite never, as a transaction there holds the database's write lock from its start.
    """
    ids = list(contact_ids)
    locked: dict[int, Contact] = {}
    postgres = connections[Contact.objects.db].vendor == "postgresql"
    while True:
        query = (
            Contact.objects.select_for_update()
            .filter(Q(pk__in=ids) | Q(merged_into_id__in=ids))
            .exclude(status=ContactStatus.ERASED)
            .exclude(pk__in=list(locked))
            .order_by("pk")
        )
        if postgres:
            query = query.annotate(
                row_version=RawSQL(ROW_VERSION_SQL, ()),  # noqa: S611 - constant
                seen_version=RawSQL(SEEN_VERSION_SQL, ()),  # noqa: S611 - constant
            )
        found = list(query)
        locked.update((contact.pk, contact) for contact in found)
        waited = postgres and any(
            contact.row_version != contact.seen_version  # type: ignore[attr-defined]
            for contact in found
        )
        if not waited:
            return sorted(locked.values(), key=lambda contact: contact.pk)
        ids = list(locked)


def _erase_contacts(
    contacts: list[Contact],
    *,
    reason: str,
    sources: dict[int, tuple[str, str]],
    requests: dict[int, Any] | None = None,
) -> dict[int, Contact]:
    """Erase the given locked, not yet erased contacts, in the caller's transaction, with a
    fixed number of statements whatever their number. `sources`: the source kind and
    reference of each contact's withdrawals; `requests`: the privacy request behind each."""
    if not contacts:
        return {}
    # what a CRM may need to find the person, read before the anonymisation blanks it
    emails = {contact.pk: contact.email for contact in contacts}
    _withdraw_all(contacts, sources)
    ids = [contact.pk for contact in contacts]
    files, requested = _stored_files(ids)
    _delete_files_on_commit(files)
    # the proof (who consented, the evidence) is kept encrypted for its period, then deleted
    proof_archive_write(contacts=contacts, reason=reason)
    ConsentEvidence.objects.filter(record__contact_id__in=ids).delete()  # personal evidence
    _delete_copies(contacts, requested=requested)
    removed = contacts_anonymise_many(contacts=contacts, reason=reason)
    # outbox_emit's event, written for the whole batch at once
    events = OutboxEvent.objects.bulk_create(
        [
            OutboxEvent(
                topic=OutboxTopic.CONTACT_ERASED,
                contact_public_id=contact.public_id,
                payload={
                    "id": str(contact.public_id),
                    "status": contact.status,
                    **removed[contact.pk],
                },
            )
            for contact in contacts
        ]
    )
    push_soon()  # the CRMs erase the person too, soon after the commit
    erasure_acknowledgements_open(
        contacts=contacts,
        emails=emails,
        events={contact.pk: event.pk for contact, event in zip(contacts, events, strict=True)},
        requests=requests or {},
    )
    return {contact.pk: contact for contact in contacts}


def _withdraw_all(contacts: list[Contact], sources: dict[int, tuple[str, str]]) -> None:
    """Withdraw every live consent of the contacts on a marketing purpose (without objecting:
    the erasure suppresses them), in one set-based ledger write."""
    consents_withdraw_all_many(
        withdrawals=[(contact, *sources[contact.pk]) for contact in contacts],
        evidence=Evidence(),
        purposes=purposes_loaded(legal_basis__in=MARKETING_BASES),
        object_to_legitimate_interest=False,
        # the erasure replaces the timeline and drops the queued events itself, below
        announce=False,
    )


def _delete_files_on_commit(files: list[tuple[Storage, str]]) -> None:
    """Delete stored files once the erasure commits: a rolled-back erasure keeps them, so no
    row is left pointing at a file that is gone."""

    def delete() -> None:
        for storage, name in files:
            storage.delete(name)

    if files:
        transaction.on_commit(delete)


def _stored_files(contact_ids: list[int]) -> tuple[list[tuple[Storage, str]], bool]:
    """The files stored about the people (evidence documents, request exports), and whether
    they filed any privacy request, in one statement."""
    evidence = (
        ConsentEvidence.objects.filter(record__contact_id__in=contact_ids)
        .exclude(document="")
        .order_by()
        .values_list(Value("evidence"), "document", Value(""))
    )
    requests = (
        PrivacyRequest.objects.filter(contact_id__in=contact_ids)
        .order_by()
        .values_list(Value("request"), "export_json", "export_archive")
    )
    documents = ConsentEvidence._meta.get_field("document").storage
    exports = PrivacyRequest._meta.get_field("export_json").storage
    files: list[tuple[Storage, str]] = []
    requested = False
    for holder, *names in evidence.union(requests, all=True):  # the table each row is from
        requested = requested or holder == "request"
        storage = documents if holder == "evidence" else exports
        files.extend((storage, name) for name in names if name)
    return files, requested


def _delete_copies(contacts: list[Contact], *, requested: bool) -> None:
    """Every other copy of the people's data: links, exports, CRM payloads, API answers.
    `requested`: whether they filed privacy requests (their free text is erased)."""
    ids = [contact.pk for contact in contacts]
    public_ids = [contact.public_id for contact in contacts]
    PreferenceToken.objects.filter(contact_id__in=ids).delete()
    if requested:
        PrivacyRequest.objects.filter(contact_id__in=ids).update(
            details="",
            extension_reason="",
            export_json="",
            export_archive="",
            export_expires_at=None,
        )
        # free text the staff wrote about the person: notes and reasons, here and in the audit
        PrivacyRequestEvent.objects.filter(request__contact_id__in=ids).exclude(note="").update(
            note=ERASED_NOTE
        )
    audit = AuditEvent.objects.filter(Q(contact_id__in=ids) | Q(contact_public_id__in=public_ids))
    scrubbed = []
    for event in audit.only("id", "details"):
        details = audit_details_scrubbed(event.details)
        if details != event.details:
            event.details = details
            scrubbed.append(event)
    AuditEvent.objects.bulk_update(scrubbed, fields=["details"], batch_size=500)
    # Queued payloads still carry the person: they never leave. Delivered ones are scrubbed,
    # with the CRM's error messages, which may quote the payload back.
    events = OutboxEvent.objects.filter(contact_public_id__in=public_ids)
    events.filter(processed_at__isnull=True).delete()
    events.update(
        payload={"erased": True},
        last_error=Case(When(last_error="", then=Value("")), default=Value(ERASED_NOTE)),
    )
    DeadLetter.objects.filter(event__contact_public_id__in=public_ids).update(error=ERASED_NOTE)
    # the links stay (a CRM's id still recognises the person, who is never pulled back);
    # who owned them in the sales team goes
    ContactLink.objects.filter(contact_id__in=ids).exclude(owner_id="", owner_email="").update(
        owner_id="", owner_email=""
    )
    needles = [str(public_id) for public_id in public_ids] + [contact.email for contact in contacts]
    naming = Q()
    for needle in filter(None, needles):
        naming |= Q(body__contains=needle)
    IdempotencyRecord.objects.annotate(body=Cast("response_body", TextField())).filter(
        naming
    ).delete()


def audit_details_scrubbed(details: Any) -> Any:
    """The audit details without free text: ids, choices and numbers stay, words are erased."""
    if not isinstance(details, dict):
        return {}
    return {
        key: value
        if key in AUDIT_KEPT_KEYS or value in ("", None) or isinstance(value, bool | int | float)
        else ERASED_NOTE
        for key, value in details.items()
    }


def privacy_exports_purge(*, now: datetime | None = None) -> int:
    """Delete access exports past their availability, and files no request holds (beat job).

    Safe to run twice. Answers how many requests' exports were purged.
    """
    now = now or timezone.now()
    purged = 0
    for request in PrivacyRequest.objects.filter(export_expires_at__lt=now).iterator():
        with transaction.atomic():
            for export in (request.export_json, request.export_archive):
                if export:
                    export.delete(save=False)
            PrivacyRequest.objects.filter(pk=request.pk).update(
                export_json="", export_archive="", export_expires_at=None
            )
        purged += 1
    orphans = _orphan_exports_delete(now=now)
    if orphans:
        logger.info("deleted %d export files no privacy request holds", orphans)
    return purged


def _orphan_exports_delete(*, now: datetime) -> int:
    """Export files written by a carry-out whose transaction rolled back: nothing points at them.

    Files are written before their request commits (so that a committed request always has
    them); a file younger than `ORPHAN_EXPORT_AGE` may belong to a carry-out still running.
    """
    storage = PrivacyRequest._meta.get_field("export_json").storage
    try:
        _folders, files = storage.listdir(EXPORTS_FOLDER)
    except FileNotFoundError:
        return 0
    held: set[str] = set()
    exporting = PrivacyRequest.objects.exclude(export_json="", export_archive="")
    for names in exporting.values_list("export_json", "export_archive"):
        held.update(names)
    deleted = 0
    for file in files:
        name = f"{EXPORTS_FOLDER}/{file}"
        if name not in held and storage.get_modified_time(name) < now - ORPHAN_EXPORT_AGE:
            storage.delete(name)
            deleted += 1
    return deleted


def privacy_requests_carry_out_pending(*, batch_size: int = 200) -> int:
    """Carry out every verified request the workers handle (beat job and retry net).

    The erasure requests of a batch are carried out together, set-based, in one transaction
    (`erasure_requests_carry_out`); the other requests each in a transaction of their own. A
    worker killed in the middle keeps what it finished, and the next run does the rest, each
    exactly once; a request that fails is logged and left for the next run.
    """
    pending = (
        PrivacyRequest.objects.filter(
            status__in=[PrivacyRequestStatus.VERIFIED, PrivacyRequestStatus.IN_PROGRESS],
            type__in=AUTOMATIC_TYPES,
        )
        .order_by("received_at")
        .values_list("id", "type")[:batch_size]
    )
    rows = list(pending)
    erasures = [request_id for request_id, type in rows if type == PrivacyRequestType.ERASURE]
    done = erasure_requests_carry_out(request_ids=erasures)
    for request_id, type in rows:
        if type == PrivacyRequestType.ERASURE:
            continue
        try:
            done += privacy_request_carry_out(request_id=str(request_id)) is not None
        except Exception:  # one request that fails must not hold back the others
            logger.exception("privacy request %s could not be carried out", request_id)
    return done


def erasure_requests_carry_out(*, request_ids: Iterable[Any], by: str = "worker") -> int:
    """Carry out verified erasure requests together: `privacy_request_carry_out` for each, as
    one set-based erasure (`contacts_erase_many`'s statements) and one status change for all
    (`settings.ERASURE_BATCH_SIZE` requests per transaction).

    If a batch fails, each request is carried out on its own, so that one person who
    cannot be erased does not hold back the others (that request is logged and stays
    verified: the next run tries it again). Answers how many requests were completed.
    """
    ids = sorted(str(request_id) for request_id in request_ids)

    def carry_out(batch: list[str]) -> list[str]:
        if len(batch) == 1:  # the single path, which also rejects what it must
            request = privacy_request_carry_out(request_id=batch[0], by=by)
            return batch if request is not None else []
        return _erasure_requests_complete(batch, by=by)

    return len(_erase_in_batch(ids, carry_out, what="erasure request").erased)


def _erasure_requests_complete(request_ids: list[str], *, by: str) -> list[str]:
    """The batch of `erasure_requests_carry_out`, in the caller's transaction; answers the
    requests completed (those already done or not verified are left alone)."""
    requests = PrivacyRequest.objects.filter(pk__in=request_ids)
    contact_ids = set(requests.exclude(contact=None).values_list("contact_id", flat=True))
    # the contacts first, then the requests, in the order a single carry-out takes them
    contacts = _lock_for_erasure(contact_ids)
    due = list(
        requests.select_for_update(of=("self",))
        .filter(
            type=PrivacyRequestType.ERASURE,
            status__in=[PrivacyRequestStatus.VERIFIED, PrivacyRequestStatus.IN_PROGRESS],
        )
        .order_by("received_at", "pk")
    )
    sources: dict[int, tuple[str, str]] = {}
    request_of: dict[int, Any] = {}
    for request in due:
        if request.contact_id is not None:
            sources.setdefault(request.contact_id, (request.source_kind, _reference(request)))
            request_of.setdefault(request.contact_id, request.pk)
    for contact in contacts:  # the contacts merged into a person go with them
        if contact.pk not in sources and contact.merged_into_id in sources:
            sources[contact.pk] = sources[contact.merged_into_id]
            request_of[contact.pk] = request_of[contact.merged_into_id]
    erasing = [contact for contact in contacts if contact.pk in sources]
    _erase_contacts(
        erasing, reason=PrivacyRequestType.ERASURE, sources=sources, requests=request_of
    )
    now = timezone.now()
    # complete once every connected CRM acknowledged (privacy.acknowledgements)
    waiting = erasure_request_waits(request_ids=[request.pk for request in due])
    status_of = {
        request.pk: PrivacyRequestStatus.AWAITING_CRMS
        if request.pk in waiting
        else PrivacyRequestStatus.COMPLETED
        for request in due
    }
    for status in set(status_of.values()):
        PrivacyRequest.objects.filter(
            pk__in=[pk for pk, its in status_of.items() if its == status]
        ).update(
            status=status,
            handled_by=by,
            completed_at=now if status == PrivacyRequestStatus.COMPLETED else None,
        )
    PrivacyRequestEvent.objects.bulk_create(
        [
            PrivacyRequestEvent(request=request, status=status_of[request.pk], at=now, by=by)
            for request in due
        ]
    )
    return [str(request.pk) for request in due]


def deadline_reminders_send(*, now: datetime | None = None) -> bool:
    """Email the DPO group the open requests due within 7 days and the late ones, once a day.

    Twice the same day, or twice at the same time, sends one email (the day's job marker).
    """
    now = now or timezone.now()
    with transaction.atomic():
        if not job_run_claim(
            job="privacy-deadline-reminders", key=timezone.localdate(now).isoformat()
        ):
            return False
        requests = list(
            PrivacyRequest.objects.filter(
                status__in=OPEN_STATUSES, due_at__lte=now + REMINDER_WINDOW
            ).order_by("due_at")
        )
        recipients = list(
            get_user_model()
            .objects.filter(groups__name=DPO, is_active=True)
            .exclude(email="")
            .values_list("email", flat=True)
        )
        if not requests or not recipients:
            return False
        _send_deadlines(requests, recipients, now)
    return True


def _send_deadlines(requests: list[PrivacyRequest], recipients: list[str], now: datetime) -> None:
    rows: list[dict[str, Any]] = [
        {
            "request": request,
            "late": request.due_at < now,
            "link": site_url("admin:privacy_privacyrequest_change", request.pk),
        }
        for request in requests
    ]
    context = {
        "rows": rows,
        "late": sum(row["late"] for row in rows),
        "due": sum(not row["late"] for row in rows),
    }
    # in the site's language: the DPO's team has no language of its own here
    email_send(
        template="privacy/email/deadlines",
        context=context,
        to=sorted(set(recipients)),
        for_staff=True,
    )


# Requests confirmed from the preference center.


def erasure_request_confirm(*, contact: Contact) -> PrivacyRequest:
    """File the erasure request the person confirmed by email (GDPR Art. 17), once."""
    with transaction.atomic():
        Contact.objects.select_for_update().filter(pk=contact.pk).first()
        # A completed one counts too: the worker may have erased the person between two clicks
        # on the same link, and a second request about an erased person has nothing to do.
        filed = (
            PrivacyRequest.objects.filter(contact=contact, type=PrivacyRequestType.ERASURE)
            .exclude(status=PrivacyRequestStatus.REJECTED)
            .first()
        )
        if filed is not None:
            return filed
        return privacy_request_file(
            contact=contact,
            type=PrivacyRequestType.ERASURE,
            source_kind=SourceKind.PREFERENCE_CENTER,
            source_reference=SOURCE_REFERENCE,
            verified=True,
        )


# Retention (GDPR Art. 5(1)(e); CNIL référentiel gestion commerciale, délib. 2021-131):
# prospects three years after their last contact, customers three years after the end of
# their contract (never while it runs), and a prospect who opted out of everything keeps only
# the suppression hash and the proofs.


def retention_apply(*, now: datetime | None = None, batch_size: int = 500) -> tuple[int, int]:
    """Ask people silent past their retention period once whether they want to stay, then
    anonymise those who did not answer within the grace period; erase the prospects who opted
    out of everything once `RETENTION_OPT_OUT_GRACE` has passed, without asking. Answers
    (emails sent, contacts erased). Safe to run twice at once."""
    now = now or timezone.now()
    asked = _repermission_due(now, batch_size)
    erased = _anonymise_silent(now, batch_size) + _erase_opted_out(now, batch_size)
    return asked, erased


def _silent_since(cutoff: datetime) -> Q:
    """Contacts whose relationship with us ended before `cutoff`: no contact from them since
    (their last activity, or their creation), and for a customer a contract that ended before
    it (a running contract, without an end, keeps them)."""
    quiet = Q(last_activity_at__lt=cutoff) | Q(last_activity_at__isnull=True, created_at__lt=cutoff)
    ended = Q(relationship=Relationship.PROSPECT) | Q(customer_until__lt=timezone.localdate(cutoff))
    return quiet & ended


def _not_asked_since_last_activity() -> Q:
    return Q(repermission_sent_at__isnull=True) | Q(repermission_sent_at__lt=F("last_activity_at"))


def _retention_periods(contact_ids: list[int]) -> dict[int, timedelta]:
    """The longest retention among the purposes each contact still holds a grant for
    (`RETAINING_STATUSES`: a pending one does not count), or the default."""
    default_days = settings.RETENTION_DEFAULT.days
    rows = (
        ConsentState.objects.filter(contact_id__in=contact_ids, status__in=RETAINING_STATUSES)
        .values("contact_id")
        .annotate(days=Max(Coalesce("purpose__retention_days", default_days)))
    )
    periods = {row["contact_id"]: timedelta(days=row["days"]) for row in rows}
    return {
        contact_id: periods.get(contact_id, settings.RETENTION_DEFAULT)
        for contact_id in contact_ids
    }


def _repermission_due(now: datetime, batch_size: int) -> int:
    shortest = min(
        [settings.RETENTION_DEFAULT.days]
        + [
            days
            for days in Purpose.objects.exclude(retention_days=None).values_list(
                "retention_days", flat=True
            )
            if days is not None
        ]
    )
    candidates = (
        _retainable()
        .filter(_silent_since(now - timedelta(days=shortest)))
        .filter(_not_asked_since_last_activity())
    )
    rows = candidates.values_list("id", "last_activity_at", "created_at")
    sent = 0
    for batch in in_batches(rows, batch_size=batch_size, key=itemgetter(0)):
        periods = _retention_periods([row[0] for row in batch])
        for contact_id, last_activity_at, created_at in batch:
            if (last_activity_at or created_at) < now - periods[contact_id]:
                sent += _send_repermission(contact_id, now, periods[contact_id])
    return sent


def _send_repermission(contact_id: int, now: datetime, period: timedelta) -> int:
    """Claim the contact (a conditional update: one run wins), then email it in its language."""
    with transaction.atomic():
        claimed = (
            _retainable()
            .filter(pk=contact_id)
            .filter(_silent_since(now - period))
            .filter(_not_asked_since_last_activity())
            .update(repermission_sent_at=now)
        )
        if not claimed:
            return 0
        contact = Contact.objects.get(pk=contact_id)
        # Nobody to ask at an address that unsubscribed or bounces, nor anyone who said no to
        # every purpose (a customer who opted out: kept to the end of the period, not asked):
        # the grace period still runs, then the contact is anonymised like anyone silent.
        unreachable = (
            suppression_reason(kind=SuppressionKind.EMAIL, value=contact.email) is not None
            or contact.email_deliverability != EmailDeliverability.DELIVERABLE
            or _opted_out().filter(pk=contact_id).exists()
        )
        if not unreachable:
            token = preference_token_issue(contact=contact)
            _email_repermission(contact, token, now + settings.RETENTION_GRACE)
        timeline_add(
            contact=contact,
            kind=TimelineKind.REPERMISSION_SENT,
            summary="retention" if not unreachable else "retention (not emailed: unreachable)",
            data={"emailed": not unreachable},
        )
    return 1


def _retainable() -> Any:
    """Contacts retention looks at: not erased, and not under a restriction (GDPR Art. 18),
    which keeps the data as it is until lifted."""
    return Contact.objects.filter(
        status__in=[ContactStatus.ACTIVE, ContactStatus.PAUSED],
        processing_restricted_at__isnull=True,
    )


def _email_repermission(contact: Contact, token: str, deadline: datetime) -> None:
    unsubscribe = unsubscribe_url(token)
    email_send(
        template="privacy/email/repermission",
        context={
            "contact": contact,
            "link": preference_url(token),
            "unsubscribe": unsubscribe,
            "deadline": deadline,
        },
        to=[contact.email],
        reader=contact,
        unsubscribe_url=unsubscribe,
    )


def _anonymise_silent(now: datetime, batch_size: int) -> int:
    silent = (
        _retainable()
        .filter(repermission_sent_at__lt=now - settings.RETENTION_GRACE)
        .filter(
            Q(last_activity_at__isnull=True) | Q(last_activity_at__lt=F("repermission_sent_at"))
        )
        # a grant given after they were asked (relayed by a CRM or a list, which does not
        # count as the person's own activity) is an answer too: it keeps them
        .exclude(
            Exists(
                ConsentState.objects.filter(
                    contact=OuterRef("pk"),
                    status__in=LIVE_STATUSES,
                    since__gt=OuterRef("repermission_sent_at"),
                )
            )
        )
    )

    def erase(contact_ids: list[int]) -> list[int]:
        locked = _lock_for_erasure(contact_ids)  # with the contacts merged into them
        # those still silent once locked: the others answered, or a concurrent run erased
        # them, or their contract was renewed since they were asked
        still = _contract_still_ended(
            list(silent.filter(pk__in=contact_ids).values_list("pk", flat=True))
        )
        contacts = [c for c in locked if c.pk in still or c.merged_into_id in still]
        source = (str(SourceKind.SYSTEM), "retention")
        sources = {contact.pk: source for contact in contacts}
        return list(_erase_contacts(contacts, reason="retention", sources=sources))

    ids = silent.values_list("pk", flat=True)
    return sum(
        len(_erase_in_batch(batch, erase, what="silent contact").erased)
        for batch in in_batches(ids, batch_size=batch_size, key=lambda pk: pk)
    )


def _contract_still_ended(contact_ids: list[int]) -> set[int]:
    """Those of the contacts (asked, and silent since) whose relationship ended before their
    retention period did when they were asked: a prospect, or a customer whose contract still
    ended before then (a contract renewed or extended since keeps them)."""
    periods = _retention_periods(contact_ids)
    rows = Contact.objects.filter(pk__in=contact_ids).values_list(
        "pk", "relationship", "customer_until", "repermission_sent_at"
    )
    return {
        pk
        for pk, relationship, until, asked in rows
        if relationship == Relationship.PROSPECT
        or (
            until is not None
            and asked is not None
            and until < timezone.localdate(asked - periods[pk])
        )
    }


def _opted_out() -> Any:
    """Contacts who said no to all our marketing: they hold no grant, granted or pending, on
    any purpose, and either objected to all marketing (an objection, an unsubscribe from all)
    or withdrew at least one pair and every pair of the active legitimate-interest purposes
    (which reach a person until they object). A contact who never held or refused anything
    has not opted out: the three-year rule applies to them."""
    states = ConsentState.objects.filter(contact=OuterRef("pk"))
    withdrawn = states.filter(status=ConsentStatus.WITHDRAWN)
    refused_every_interest = Q(Exists(withdrawn))
    for purpose in Purpose.objects.filter(
        is_active=True, legal_basis=LegalBasis.LEGITIMATE_INTERESTS
    ):
        for channel in purpose.channels:
            refused_every_interest &= Q(Exists(withdrawn.filter(purpose=purpose, channel=channel)))
    return _retainable().filter(
        ~Exists(states.filter(status__in=LIVE_STATUSES)),
        Q(marketing_objected_at__isnull=False) | refused_every_interest,
    )


def _erase_opted_out(now: datetime, batch_size: int) -> int:
    """Erase the prospects who opted out of everything (`_opted_out`) more than
    `RETENTION_OPT_OUT_GRACE` ago, through the one erasure path (source: the retention job),
    without a re-permission email: they said no. Only the suppression hash and the proofs
    stay. The grace leaves a person who changes their mind the links they hold; any act of
    theirs since (a consent change, an objection, a use of the preference center) restarts
    it. Not while a privacy request of theirs is open (it is answered first)."""
    cutoff = now - settings.RETENTION_OPT_OUT_GRACE
    open_requests = PrivacyRequest.objects.filter(contact=OuterRef("pk"), status__in=OPEN_STATUSES)
    due = _opted_out().filter(
        ~Exists(ConsentState.objects.filter(contact=OuterRef("pk"), since__gte=cutoff)),
        ~Exists(open_requests),
        ~Q(marketing_objected_at__gte=cutoff),
        ~Q(last_activity_at__gte=cutoff),
        relationship=Relationship.PROSPECT,
        created_at__lt=cutoff,
    )

    def erase(contact_ids: list[int]) -> list[int]:
        locked = _lock_for_erasure(contact_ids)  # with the contacts merged into them
        # those still due once locked: the others changed their mind, or were erased
        still = set(due.filter(pk__in=contact_ids).values_list("pk", flat=True))
        contacts = [c for c in locked if c.pk in still or c.merged_into_id in still]
        source = (str(SourceKind.SYSTEM), "retention")
        sources = {contact.pk: source for contact in contacts}
        return list(_erase_contacts(contacts, reason="retention", sources=sources))

    ids = due.values_list("pk", flat=True)
    return sum(
        len(_erase_in_batch(batch, erase, what="opted-out contact").erased)
        for batch in in_batches(ids, batch_size=batch_size, key=lambda pk: pk)
    )


def contact_keep(*, contact: Contact) -> None:
    """The person answers a re-permission request: they want to keep hearing from us."""
    with transaction.atomic():
        contact_touch(contact=contact)
        timeline_add(contact=contact, kind=TimelineKind.KEPT, summary=SOURCE_REFERENCE)
