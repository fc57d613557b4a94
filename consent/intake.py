"""Services for consents arriving from outside in bulk: API batches and web form submissions.

Both are all or nothing: every item is validated, every error is reported with its position,
and nothing is written unless everything is valid.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from consent.models import (
    ConsentAction,
    ConsentRecord,
    ConsentState,
    Purpose,
    SourceKind,
)
from consent.selectors import purposes_with_versions
from consent.services import (
    LIST_SOURCES,
    ConsentWrite,
    ConsentWriteErrors,
    Evidence,
    consents_record_many,
)
from consent.services.signups import SignupGrant, signup_confirmation_queue, signup_grant_prepare
from consent.status import state_is_live
from contacts.models import Contact, SuppressionKind, TimelineKind
from contacts.normalization import normalize_email
from contacts.selectors import (
    ContactsFound,
    contact_find,
    contacts_by_email,
    contacts_find_many,
    suppression_reason,
)
from contacts.services import contact_fields_check, contact_upsert, timeline_add
from core.errors import StructuredValidationError, error_detail

Item = TypeVar("Item")


@dataclass(frozen=True)
class ConsentInput:
    """One consent relayed by an API client."""

    purpose: str
    channel: str
    action: str
    source_kind: str
    source_reference: str
    evidence: Evidence
    email: str | None = None
    contact: UUID | None = None
    given_at: datetime | None = None
    actor: str = ""


@dataclass(frozen=True)
class FormConsent:
    """One consent box of a web form: ticked or not, with the wording next to it."""

    purpose: str
    channel: str
    granted: bool
    wording: str


@dataclass
class FormSubmissionResult:
    """What a form recorded; `contact` is None when the address is suppressed and has no
    contact (an erased person): the grants then wait, unstored, for the emailed link."""

    contact: Contact | None
    created: bool
    records: list[ConsentRecord | SignupGrant] = field(default_factory=list)


def _purpose(slug: str, purposes: dict[str, Purpose]) -> Purpose:
    purpose = purposes.get(slug)
    if purpose is None:
        raise ValidationError({"purpose": [_("Unknown purpose.")]})
    return purpose


def _contact_for(
    item: ConsentInput, *, may_create_contacts: bool, found: ContactsFound | None = None
) -> Contact | None:
    """The contact an item is about, created for a grant to an unknown email; None when the
    email is suppressed and has no contact (nobody is created until the person confirms).
    `found`: the batch's contacts, looked up at once (`contacts_find_many`)."""
    if item.contact is not None:
        if found is not None:
            contact = found.by_public_id.get(str(item.contact))
        else:
            contact = contact_find(public_id=item.contact)
        if contact is None:
            raise ValidationError({"contact": [_("Unknown contact.")]})
        return contact
    if found is not None:
        contact = found.by_email.get(_normalized_or_blank(item.email or ""))
    else:
        contact = contact_find(email=item.email or "")
    if contact is not None:
        return contact
    if item.action != ConsentAction.GRANT:
        raise ValidationError({"email": [_("No contact has this email.")]})
    if not may_create_contacts:
        # asked before the suppression list, so that the answer does not tell which
        # unknown addresses are suppressed
        raise ValidationError(
            {
                "email": [
                    _(
                        "No contact has this email, and creating contacts needs the "
                        "contacts:write scope."
                    )
                ]
            }
        )
    if _suppressed_without_contact(item.email or "", item.source_kind):
        return None
    contact, _created = contact_upsert(email=item.email or "")
    if found is not None:  # a later item of the batch with this address finds it
        found.by_email[contact.email] = contact
    return contact


def _normalized_or_blank(email: str) -> str:
    try:
        return normalize_email(email)
    except ValidationError:
        return ""


def _suppressed_without_contact(email: str, source_kind: str) -> bool:
    """A suppressed address with no contact, for a grant that may wait for the person's click
    (lists are refused by contact_upsert with the reason)."""
    return source_kind not in LIST_SOURCES and bool(
        suppression_reason(kind=SuppressionKind.EMAIL, value=email)
    )


def consents_record_batch(
    *, items: list[ConsentInput], may_create_contacts: bool
) -> list[ConsentRecord | SignupGrant]:
    """Record several consents atomically; any invalid item rejects the whole batch.

    `may_create_contacts`: whether the caller may create a contact for an unknown email (the
    API's `contacts:write` scope). A grant for a suppressed address with no contact is
    answered pending and stored nowhere: the address gets a link that records it once followed.
    The consents are written together, set-based (`consents_record_many`).
    """
    purposes = _purposes_by_slug(item.purpose for item in items)
    with transaction.atomic():
        found = contacts_find_many(
            public_ids=[item.contact for item in items if item.contact is not None],
            emails=[item.email for item in items if item.contact is None and item.email],
        )
        results, errors = _record_all_or_none(
            items,
            lambda item: _prepare_item(
                item, purposes, may_create_contacts=may_create_contacts, found=found
            ),
            language="",
        )
    if any(errors):
        raise StructuredValidationError(errors)
    return results


Prepared = ConsentWrite | SignupGrant | None


def _record_all_or_none(
    items: Iterable[Item],
    prepare: Callable[[Item], Prepared],
    *,
    language: str,
) -> tuple[list[ConsentRecord | SignupGrant], list[Any]]:
    """Prepare each item (its contact and purpose, or the grant held for a signup link), then
    write every consent in one set-based call, inside the caller's transaction; answer the
    results and the errors aligned with the items. Any error rolls the whole transaction back
    (nothing half-written); else the held grants' signup links are queued for after commit."""
    prepared: list[Prepared] = []
    errors: list[Any] = []
    for item in items:
        try:
            prepared.append(prepare(item))
            errors.append({})
        except ValidationError as error:
            prepared.append(None)
            errors.append(error_detail(error))
    positions = [i for i, one in enumerate(prepared) if isinstance(one, ConsentWrite)]
    writes = [one for one in prepared if isinstance(one, ConsentWrite)]
    written: dict[int, ConsentRecord] = {}
    try:
        written = dict(zip(positions, consents_record_many(writes=writes), strict=True))
    except ConsentWriteErrors as refused:
        for index, refusal in refused.errors.items():
            errors[positions[index]] = error_detail(refusal)
    if any(errors):
        transaction.set_rollback(True)
        return [], errors
    results: list[ConsentRecord | SignupGrant] = [
        written[i] if isinstance(one, ConsentWrite) else one
        for i, one in enumerate(prepared)
        if one is not None
    ]
    _queue_signups(results, language=language)
    return results, errors


def _purposes_by_slug(slugs: Iterable[str]) -> dict[str, Purpose]:
    """The purposes named in a request, with their wording versions, in one read."""
    return {
        purpose.slug: purpose for purpose in purposes_with_versions().filter(slug__in=set(slugs))
    }


def _queue_signups(results: list[ConsentRecord | SignupGrant], *, language: str) -> None:
    """One signup link per suppressed address for all its grants of this request."""
    by_email: dict[str, list[SignupGrant]] = {}
    for result in results:
        if isinstance(result, SignupGrant):
            by_email.setdefault(result.email, []).append(result)
    for address, grants in by_email.items():
        signup_confirmation_queue(email=address, grants=grants, language=language)


def _prepare_item(
    item: ConsentInput,
    purposes: dict[str, Purpose],
    *,
    may_create_contacts: bool,
    found: ContactsFound | None = None,
) -> ConsentWrite | SignupGrant:
    purpose = _purpose(item.purpose, purposes)  # first: an unknown purpose is the error to report
    return _write_or_hold(
        _contact_for(item, may_create_contacts=may_create_contacts, found=found),
        email=item.email or "",
        purpose=purpose,
        channel=item.channel,
        action=item.action,
        source_kind=item.source_kind,
        source_reference=item.source_reference,
        evidence=item.evidence,
        given_at=item.given_at,
        actor=item.actor,
    )


def _write_or_hold(
    contact: Contact | None,
    *,
    email: str,
    purpose: Purpose,
    channel: str,
    action: str,
    source_kind: str,
    source_reference: str,
    evidence: Evidence,
    given_at: datetime | None = None,
    actor: str = "",
) -> ConsentWrite | SignupGrant:
    """The consent to write for a known person; for an address with no contact (a suppressed
    one: `_contact_for` decided), the grant held for the signup link instead."""
    if contact is None:
        return signup_grant_prepare(
            email=normalize_email(email),
            purpose=purpose,
            channel=channel,
            source_kind=source_kind,
            source_reference=source_reference,
            evidence=evidence,
            given_at=given_at,
        )
    return ConsentWrite(
        contact=contact,
        purpose=purpose,
        channel=channel,
        action=action,
        source_kind=source_kind,
        source_reference=source_reference,
        evidence=evidence,
        given_at=given_at,
        actor=actor,
    )


def form_submission_record(
    *,
    form: str,
    email: str,
    contact_fields: dict[str, Any],
    interests: list[str] | None,
    consents: list[FormConsent],
    evidence: Evidence,
) -> FormSubmissionResult:
    """Upsert the person and record every consent box of a web form, all or nothing.

    A ticked box is a grant with the wording shown; an unticked box withdraws an existing
    grant (the person was shown it and said no) and records nothing when there was none.
    A suppressed address with no contact (an erased person) is not created: its ticked boxes
    are answered pending and emailed as a link that brings the person back once followed.
    """
    purposes = _purposes_by_slug(box.purpose for box in consents)
    with transaction.atomic():
        contact, created = _form_contact(email, contact_fields, interests, consents)
        states: dict[tuple[int, str], ConsentState] = {}
        if contact is not None:
            timeline_add(
                contact=contact, kind=TimelineKind.FORM_SUBMITTED, summary=form, data={"form": form}
            )
            if not all(box.granted for box in consents):
                states = {
                    (state.purpose_id, state.channel): state
                    for state in ConsentState.objects.filter(contact=contact)
                }
        records, errors = _record_all_or_none(
            consents,
            lambda box: _prepare_box(contact, email, box, form, evidence, purposes, states),
            language=contact_fields.get("language") or "",
        )
    if any(errors):
        raise StructuredValidationError({"consents": errors})
    return FormSubmissionResult(contact=contact, created=created, records=records)


def _form_contact(
    email: str,
    fields: dict[str, Any],
    interests: list[str] | None,
    consents: list[FormConsent],
) -> tuple[Contact | None, bool]:
    """The form's contact, upserted; None for a suppressed address with no contact whose form
    grants something (without a grant, contact_upsert refuses it with the reason)."""
    granting = any(box.granted for box in consents)
    try:
        if (
            granting
            and not contacts_by_email(email).exists()
            and _suppressed_without_contact(email, SourceKind.WEB_FORM)
        ):
            # nothing is stored, but bad data still gets its error
            contact_fields_check(email=email, fields=fields, interests=interests)
            return None, False
        return contact_upsert(email=email, fields=fields, interests=interests)
    except ValidationError as error:
        raise StructuredValidationError({"contact": error_detail(error)}) from error


def _prepare_box(
    contact: Contact | None,
    email: str,
    box: FormConsent,
    form: str,
    evidence: Evidence,
    purposes: dict[str, Purpose],
    states: dict[tuple[int, str], ConsentState],
) -> ConsentWrite | SignupGrant | None:
    purpose = _purpose(box.purpose, purposes)
    box_evidence = Evidence(
        wording=box.wording,
        unticked_by_default=evidence.unticked_by_default,
        policy_version=evidence.policy_version,
        ip=evidence.ip,
        user_agent=evidence.user_agent,
    )
    if contact is None and not box.granted:
        return None  # nobody to withdraw anything from
    action = ConsentAction.GRANT
    if contact is not None and not box.granted:
        # an unticked box withdraws what is still live, a pending grant too (it could else be
        # confirmed later); nothing live, nothing to record
        if not state_is_live(states.get((purpose.pk, box.channel))):
            return None
        action = ConsentAction.WITHDRAW
    return _write_or_hold(
        contact,
        email=email,
        purpose=purpose,
        channel=box.channel,
        action=action,
        source_kind=SourceKind.WEB_FORM,
        source_reference=form,
        evidence=box_evidence,
    )
