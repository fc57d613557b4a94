"""Reads on consent: current state, history, purposes and consent receipts (the eligibility
rule is `consent.eligibility`, the consent-status rule `consent.status`)."""

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet
from django.utils import timezone

from consent.models import (
    ConsentAction,
    ConsentRecord,
    ConsentState,
    ConsentStatus,
    LedgerSeal,
    PrivacyNotice,
    Purpose,
    PurposeVersion,
)
from contacts.models import Contact

RECEIPT_SCHEMA = "ISO/IEC TS 27560:2023 consent record (Kantara Consent Receipt v1.1 vocabulary)"
# The current notice, as the recipient pages read it: a page reads no table for it (issue 11's
# budgets); a new version shows on them within this time, at once where it was saved.
CURRENT_NOTICE_CACHE_KEY = "consent:privacy-notice:current"
CURRENT_NOTICE_CACHE_SECONDS = 60
_NO_NOTICE = "none"
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
            "contact": settings.DPO_CONTACT,
            "address": settings.CONTROLLER_ADDRESS,
            "dpo_contact": settings.DPO_CONTACT,
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
        # the privacy notice version shown (GDPR Art. 13): stored, or unknown to the product
        "privacy_notice": privacy_notice_of_record(record),
        "processing": {
            "purposes": [
                {
                    "purpose": purpose.slug,
                    "name": purpose.name,
                    "legal_basis": purpose.legal_basis,
                    "legitimate_interest": purpose.legitimate_interest,
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


def privacy_notice_current(*, cached: bool = False) -> PrivacyNotice | None:
    """The privacy notice in force: the latest version published by now (None before any).
    `cached`: from the cache when there (the recipient pages), else read and cached."""
    if cached:
        found = cache.get(CURRENT_NOTICE_CACHE_KEY)
        if found is not None:
            return None if found == _NO_NOTICE else found
    notice = PrivacyNotice.objects.filter(published_at__lte=timezone.now()).first()
    cache.set(
        CURRENT_NOTICE_CACHE_KEY,
        _NO_NOTICE if notice is None else notice,
        CURRENT_NOTICE_CACHE_SECONDS,
    )
    return notice


def privacy_notices_by_version(versions: Iterable[str]) -> dict[str, PrivacyNotice]:
    """The stored notice versions among `versions`, by version string."""
    wanted = {version for version in versions if version}
    if not wanted:
        return {}
    return {n.version: n for n in PrivacyNotice.objects.filter(version__in=wanted)}


def privacy_notice_in_use(version: str) -> bool:
    """Whether a consent record names this notice version (then it is evidence: frozen)."""
    return ConsentRecord.objects.filter(policy_version=version).exists()


def privacy_notice_versions_unknown() -> QuerySet[ConsentRecord, dict[str, Any]]:
    """The notice versions consent records name that no stored version has, with how many
    records name each: for the DPO to add (GDPR Art. 7(1), 13)."""
    stored = PrivacyNotice.objects.filter(version=OuterRef("policy_version"))
    return (
        ConsentRecord.objects.exclude(policy_version="")
        .filter(~Exists(stored))
        .values("policy_version")
        .annotate(records=Count("id"))
        .order_by("policy_version")
    )


def privacy_notice_of_record(
    record: ConsentRecord, notice: PrivacyNotice | None = None
) -> dict[str, Any]:
    """The privacy notice a record says the person was shown: the stored version it names,
    or the version as given and flagged unknown (none when the record names none)."""
    version = record.policy_version
    if not version:
        return {"version": "", "status": "none"}
    if notice is None:
        notice = privacy_notices_by_version([version]).get(version)
    if notice is None:
        return {"version": version, "status": "unknown"}
    return {
        "version": notice.version,
        "status": "known",
        "url": notice.url,
        "published_at": notice.published_at.isoformat(),
    }


def controller_identity(*, cached: bool = False) -> dict[str, str]:
    """Who the person deals with and how to complain (GDPR Art. 13(1)(a)-(c), 13(2)(d)): the
    controller, its DPO, the privacy notice in force (its URL, else PRIVACY_NOTICE_URL) and the
    supervisory authority. Every recipient page and message shows it."""
    notice = privacy_notice_current(cached=cached)
    return {
        "name": settings.CONTROLLER_NAME,
        "address": settings.CONTROLLER_ADDRESS,
        "dpo_contact": settings.DPO_CONTACT,
        "notice_url": notice.url if notice else settings.PRIVACY_NOTICE_URL,
        "notice_version": notice.version if notice else "",
        "authority": settings.COMPLAINT_AUTHORITY_NAME,
        "complaint_url": settings.COMPLAINT_AUTHORITY_URL,
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
