"""Reads on consent: current state, history, purposes and consent receipts (the eligibility
rule is `consent.eligibility`, the consent-status rule `consent.status`)."""

from typing import Any

from django.conf import settings
from django.db.models import Prefetch, Q, QuerySet

from consent.models import (
    ConsentAction,
    ConsentRecord,
    ConsentState,
    ConsentStatus,
    LedgerSeal,
    Purpose,
    PurposeVersion,
)
from contacts.models import Contact

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
    """Every ledger record of a contact and of the contacts merged into it (each record keeps
    its own contact), oldest first, with its personal evidence if kept."""
    return (
        ConsentRecord.objects.filter(_own_or_merged(contact))
        .select_related("contact", "purpose", "purpose_version", "personal_evidence")
        .order_by("recorded_at", "id")
    )


def _own_or_merged(contact: Contact) -> Q:
    """The rows of the contact and of the contacts merged into it (`Contact.merged_into`)."""
    person = Contact.objects.filter(Q(pk=contact.pk) | Q(merged_into=contact)).values("pk")
    return Q(contact_id__in=person)


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
            "algorithm": "SHA-256 per-contact hash chain, HMAC-sealed",
            "hash": record.hash,
            "previous_hash": record.previous_hash,
            "evidence_digest": record.evidence_digest,
        },
    }


def pending_states_for_confirmation(
    *, contact: Contact, record_uuids: list[str]
) -> QuerySet[ConsentState]:
    """Pending states a confirmation link confirms: the grants it names, or a newer pending
    grant for the same purpose and channel (the person subscribed twice before clicking).
    A link sent before a merge names the merged contact's grants: it confirms the survivor's
    pending grant of the same purpose and channel (the merge carried it there)."""
    named = ConsentRecord.objects.filter(
        _own_or_merged(contact), uuid__in=record_uuids, action=ConsentAction.GRANT
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


def ledger_seal_heads() -> QuerySet[LedgerSeal, dict[str, Any]]:
    """Each seal's head, oldest first: what is kept outside the database to prove the seals
    (and the records they count) were not cut off (`verify_ledger --head NUMBER:HASH`)."""
    return LedgerSeal.objects.order_by("number").values(
        "number", "sealed_at", "total_count", "seal_hash", "signature", "key_id"
    )
