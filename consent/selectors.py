"""Reads on consent: current state, history, purposes and consent receipts."""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from consent.models import (
    Channel,
    ConsentAction,
    ConsentRecord,
    ConsentState,
    ConsentStatus,
    LegalBasis,
    Purpose,
    PurposeVersion,
)
from contacts.models import (
    Contact,
    ContactStatus,
    EmailDeliverability,
    PostalDeliverability,
    SuppressionKind,
)
from contacts.selectors import suppression_reason

RECEIPT_SCHEMA = "ISO/IEC TS 27560:2023 consent record (Kantara Consent Receipt v1.1 vocabulary)"
EVENT_TYPES: dict[str, str] = {
    ConsentAction.GRANT: "given",
    ConsentAction.CONFIRM: "given",
    ConsentAction.WITHDRAW: "withdrawn",
    ConsentAction.EXPIRE: "expired",
}


def purposes_with_versions() -> QuerySet[Purpose]:
    """Purposes with their wording versions loaded (for `current_version`)."""
    versions = PurposeVersion.objects.order_by("-number")
    return Purpose.objects.prefetch_related(
        Prefetch("versions", queryset=versions, to_attr="versions_newest_first")
    )


def purposes_active() -> QuerySet[Purpose]:
    """Active purposes with their wording versions loaded (for `current_version`)."""
    return purposes_with_versions().filter(is_active=True)


def contact_consent_states(contact: Contact) -> QuerySet[ConsentState]:
    return (
        ConsentState.objects.filter(contact=contact)
        .select_related("purpose", "record")
        .order_by("purpose__slug", "channel")
    )


def contact_consent_history(contact: Contact) -> QuerySet[ConsentRecord]:
    """Every ledger record of a contact, oldest first, with its personal evidence if kept."""
    return (
        ConsentRecord.objects.filter(contact=contact)
        .select_related("contact", "purpose", "purpose_version", "personal_evidence")
        .order_by("id")
    )


def consent_receipt(record: ConsentRecord) -> dict[str, Any]:
    """The record as a receipt shaped after ISO/IEC TS 27560 and the Kantara consent receipt."""
    purpose, version = record.purpose, record.purpose_version
    return {
        "schema_version": RECEIPT_SCHEMA,
        "record_id": str(record.uuid),
        "pii_principal_id": str(record.contact.public_id),
        "pii_controller": {
            "name": settings.CONTROLLER_NAME,
            "contact": settings.CONTROLLER_CONTACT,
            "url": settings.SITE_URL,
        },
        "jurisdiction": "EU (GDPR)",
        "language": record.language,
        "notice": {
            "notice_id": f"{purpose.slug}/v{version.number}",
            "version": version.number,
            "wording": record.wording,
            "material_change": version.is_material,
            "privacy_policy_version": record.policy_version,
        },
        "processing": {
            "purposes": [
                {
                    "purpose": purpose.slug,
                    "name": purpose.name,
                    "legal_basis": purpose.legal_basis,
                    "channel": record.channel,
                    "consent_type": "explicit",
                    "retention_days": purpose.retention_days,
                }
            ],
        },
        "event": {
            "event_time": record.given_at.isoformat(),
            "event_recorded_time": record.recorded_at.isoformat(),
            "event_type": EVENT_TYPES[record.action],
            "event_state": record.status,
            "collection_method": record.source_kind,
            "collection_reference": record.source_reference,
            "unticked_by_default": record.unticked_by_default,
        },
        "integrity": {
            "algorithm": "SHA-256 hash chain",
            "hash": record.hash,
            "previous_hash": record.previous_hash,
            "evidence_digest": record.evidence_digest,
        },
    }


def pending_states_for_confirmation(
    *, contact: Contact, record_uuids: list[str]
) -> QuerySet[ConsentState]:
    """Pending states a confirmation link confirms: the grants it names, or a newer pending
    grant for the same purpose and channel (the person subscribed twice before clicking)."""
    named = ConsentRecord.objects.filter(
        contact=contact, uuid__in=record_uuids, action=ConsentAction.GRANT
    ).values_list("purpose_id", "channel")
    pairs = Q()
    for purpose_id, channel in named:
        pairs |= Q(purpose_id=purpose_id, channel=channel)
    if not pairs:
        return ConsentState.objects.none()
    return (
        ConsentState.objects.filter(pairs, contact=contact, status=ConsentStatus.PENDING)
        .select_related("contact", "purpose", "purpose_version", "record")
        .order_by("purpose__slug", "channel")
    )


class Ineligible:
    """Why a contact may not receive a message (reasons of `contact_eligibility`)."""

    ERASED = "erased"
    PAUSED = "paused"
    RESTRICTED = "restricted"
    NO_CONSENT = "no_consent"
    OUTDATED_WORDING = "outdated_wording"
    OBJECTED = "objected"
    SUPPRESSED = "suppressed"
    UNDELIVERABLE = "undeliverable"
    MINOR_WITHOUT_GUARDIAN = "minor_without_guardian"
    PURPOSE_INACTIVE = "purpose_inactive"


def contact_eligibility(
    contact: Contact, purpose: Purpose, channel: str, at: datetime | None = None
) -> list[str]:
    """Every reason the contact may not receive a message for (purpose, channel) at `at`.

    The one eligibility rule (SPEC §3 campaigns); an empty list means eligible. Campaign
    frequency caps are added by the campaigns app on top of it.
    """
    at = at or timezone.now()
    reasons = []
    if contact.status == ContactStatus.ERASED:
        return [Ineligible.ERASED]
    if contact.paused_until is not None and contact.paused_until > at:
        reasons.append(Ineligible.PAUSED)
    if contact.processing_restricted_at is not None:
        reasons.append(Ineligible.RESTRICTED)
    if not purpose.is_active or channel not in purpose.channels:
        reasons.append(Ineligible.PURPOSE_INACTIVE)
    reasons += _lawful_basis_problems(contact, purpose, channel)
    if suppression_reason(kind=SuppressionKind.EMAIL, value=contact.email) or (
        contact.phone and suppression_reason(kind=SuppressionKind.PHONE, value=contact.phone)
    ):
        reasons.append(Ineligible.SUPPRESSED)
    if not _deliverable(contact, channel):
        reasons.append(Ineligible.UNDELIVERABLE)
    if contact.is_minor and not contact.guardian_consent_evidence.strip():
        reasons.append(Ineligible.MINOR_WITHOUT_GUARDIAN)
    return reasons


def _lawful_basis_problems(contact: Contact, purpose: Purpose, channel: str) -> list[str]:
    state = ConsentState.objects.filter(contact=contact, purpose=purpose, channel=channel).first()
    if purpose.legal_basis == LegalBasis.LEGITIMATE_INTERESTS:
        objected = state is not None and state.status == ConsentStatus.WITHDRAWN
        if objected or (purpose.is_profiling and contact.profiling_objected_at):
            return [Ineligible.OBJECTED]
        return []
    if purpose.legal_basis != LegalBasis.CONSENT:
        return []  # contract, legal obligation...: not marketing, no consent to check
    if state is None or state.status != ConsentStatus.GRANTED:
        return [Ineligible.NO_CONSENT]
    if purpose.wording_outdated(state.purpose_version_id):
        return [Ineligible.OUTDATED_WORDING]
    return []


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
