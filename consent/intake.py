"""Services for consents arriving from outside in bulk: API batches and web form submissions.

Both are all or nothing: every item is validated, every error is reported with its position,
and nothing is written unless everything is valid.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from consent.models import (
    ConsentAction,
    ConsentRecord,
    ConsentState,
    ConsentStatus,
    Purpose,
    SourceKind,
)
from consent.services import EXPLICIT_SOURCES, Evidence, consent_record
from contacts.models import Contact, TimelineKind
from contacts.selectors import contacts_by_email
from contacts.services import contact_upsert, timeline_add
from core.errors import StructuredValidationError, error_detail


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


@dataclass(frozen=True)
class FormConsent:
    """One consent box of a web form: ticked or not, with the wording next to it."""

    purpose: str
    channel: str
    granted: bool
    wording: str


@dataclass
class FormSubmissionResult:
    contact: Contact
    created: bool
    records: list[ConsentRecord] = field(default_factory=list)


def _purpose(slug: str) -> Purpose:
    purpose = Purpose.objects.filter(slug=slug).first()
    if purpose is None:
        raise ValidationError({"purpose": [_("Unknown purpose.")]})
    return purpose


def _contact_for(item: ConsentInput) -> Contact:
    if item.contact is not None:
        contact = Contact.objects.filter(public_id=item.contact).first()
        if contact is None:
            raise ValidationError({"contact": [_("Unknown contact.")]})
        return contact
    contact = contacts_by_email(item.email or "").first()
    if contact is not None:
        return contact
    if item.action != ConsentAction.GRANT:
        raise ValidationError({"email": [_("No contact has this email.")]})
    contact, _created = contact_upsert(
        email=item.email or "", explicit_consent=item.source_kind in EXPLICIT_SOURCES
    )
    return contact


def consents_record_batch(*, items: list[ConsentInput]) -> list[ConsentRecord]:
    """Record several consents atomically; any invalid item rejects the whole batch."""
    records: list[ConsentRecord] = []
    errors: list[dict[str, Any]] = []
    with transaction.atomic():
        for item in items:
            try:
                with transaction.atomic():
                    records.append(_record_item(item))
                errors.append({})
            except ValidationError as error:
                errors.append(error_detail(error))
        if any(errors):
            transaction.set_rollback(True)
    if any(errors):
        raise StructuredValidationError(errors)
    return records


def _record_item(item: ConsentInput) -> ConsentRecord:
    purpose = _purpose(item.purpose)
    return consent_record(
        contact=_contact_for(item),
        purpose=purpose,
        channel=item.channel,
        action=item.action,
        source_kind=item.source_kind,
        source_reference=item.source_reference,
        evidence=item.evidence,
        given_at=item.given_at,
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
    """
    explicit = any(box.granted for box in consents)
    with transaction.atomic():
        try:
            contact, created = contact_upsert(
                email=email, fields=contact_fields, interests=interests, explicit_consent=explicit
            )
        except ValidationError as error:
            raise StructuredValidationError({"contact": error_detail(error)}) from error
        timeline_add(
            contact=contact, kind=TimelineKind.FORM_SUBMITTED, summary=form, data={"form": form}
        )
        result = FormSubmissionResult(contact=contact, created=created)
        errors = []
        for box in consents:
            try:
                with transaction.atomic():
                    record = _record_box(contact, box, form, evidence)
                if record is not None:
                    result.records.append(record)
                errors.append({})
            except ValidationError as error:
                errors.append(error_detail(error))
        if any(errors):
            transaction.set_rollback(True)
    if any(errors):
        raise StructuredValidationError({"consents": errors})
    return result


def _record_box(
    contact: Contact, box: FormConsent, form: str, evidence: Evidence
) -> ConsentRecord | None:
    purpose = _purpose(box.purpose)
    if box.granted:
        action = ConsentAction.GRANT
    else:
        has_consent = ConsentState.objects.filter(
            contact=contact,
            purpose=purpose,
            channel=box.channel,
            status__in=[ConsentStatus.GRANTED, ConsentStatus.PENDING],
        ).exists()
        if not has_consent:
            return None
        action = ConsentAction.WITHDRAW
    return consent_record(
        contact=contact,
        purpose=purpose,
        channel=box.channel,
        action=action,
        source_kind=SourceKind.WEB_FORM,
        source_reference=form,
        evidence=Evidence(
            wording=box.wording,
            unticked_by_default=evidence.unticked_by_default,
            policy_version=evidence.policy_version,
            ip=evidence.ip,
            user_agent=evidence.user_agent,
        ),
    )
