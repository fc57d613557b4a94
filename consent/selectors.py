"""Reads on consent: current state, history, purposes and consent receipts (the eligibility
rule is `consent.eligibility`, the consent-status rule `consent.status`)."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import (
    Count,
    Exists,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    TextChoices,
    Window,
)
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from consent.minors import GUARDIAN_ACTORS
from consent.models import (
    Channel,
    ConsentAction,
    ConsentRecord,
    ConsentState,
    ConsentStatus,
    FrequencyCap,
    LedgerSeal,
    LegalBasis,
    PrivacyNotice,
    Purpose,
    PurposeVersion,
)
from consent.status import ConsentProblem, consent_problem
from contacts.models import Contact
from core.recipients import data_recipients

RECEIPT_SCHEMA = "ISO/IEC TS 27560:2023 consent record (Kantara Consent Receipt v1.1 vocabulary)"
# The current notice, as the recipient pages read it: a page reads no table for it (issue 11's
# budgets); a new version shows on them within this time, at once where it was saved.
CURRENT_NOTICE_CACHE_KEY = "consent:privacy-notice:current"
CURRENT_NOTICE_CACHE_SECONDS = 60
_NO_NOTICE = "none"
# The channels' own marketing caps, as the eligibility rule reads them: once, not once per
# contact it explains; saving or removing a channel's caps clears the key
# (`consent.services.frequency_caps`), and the time bounds a process with its own cache.
FREQUENCY_CAPS_CACHE_KEY = "consent:frequency-caps"
FREQUENCY_CAPS_CACHE_SECONDS = 60
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


# The consent types a receipt names (ISO/IEC TS 27560 `consent_type`, with the French law's
# cases): consent the person gave; the soft opt-in of CPCE L34-5 (a customer's grant under a
# legitimate interest for similar products); an objection to a legitimate interest (Art.
# 21); a child's consent given by the guardian (Art. 8). Other bases rest on no consent.
CONSENT_TYPE_EXPLICIT = "explicit"
CONSENT_TYPE_SOFT_OPT_IN = "soft_opt_in"
# a legitimate interest the person was told of and did not object to (no soft opt-in: post,
# phone, or a B2B contact about their job)
CONSENT_TYPE_LEGITIMATE_INTEREST = "legitimate_interest"
CONSENT_TYPE_OBJECTION = "objection_to_legitimate_interest"
CONSENT_TYPE_GUARDIAN = "guardian"
CONSENT_TYPE_NONE = "not_consent"
# Contact fields -> the data category they belong to, in the receipt's order (a category is
# listed when one of its fields is filled; the email always is).
DATA_CATEGORIES: dict[str, tuple[str, ...]] = {
    "identity": ("first_name", "last_name"),
    "contact_details": ("email", "phone"),
    "postal_address": ("address_line1", "address_line2", "postal_code", "city", "country"),
    "professional": ("company", "job_title"),
    "commercial_relationship": ("customer_since", "customer_until"),
    "age": ("birth_year", "is_minor"),
    "preferences": ("language",),
}
# GDPR Art. 15-18, 20, 21: what the person may ask the DPO for
RIGHTS = ["access", "rectification", "erasure", "restriction", "portability", "objection"]


def receipt_consent_type(record: ConsentRecord) -> str:
    """What kind of consent (or objection) a record is, for its receipt."""
    basis = record.purpose.legal_basis
    if basis == LegalBasis.LEGITIMATE_INTERESTS:
        if record.action == ConsentAction.WITHDRAW:
            return CONSENT_TYPE_OBJECTION
        if record.purpose.similar_products:
            return CONSENT_TYPE_SOFT_OPT_IN
        return CONSENT_TYPE_LEGITIMATE_INTEREST
    if basis != LegalBasis.CONSENT:
        return CONSENT_TYPE_NONE
    if record.actor in GUARDIAN_ACTORS:
        return CONSENT_TYPE_GUARDIAN
    return CONSENT_TYPE_EXPLICIT


def contact_data_categories(contact: Contact) -> list[str]:
    """The categories of personal data held on the contact (the fields that are filled)."""
    categories = []
    for category, names in DATA_CATEGORIES.items():
        if any(getattr(contact, name) not in (None, "", False) for name in names):
            categories.append(category)
    chose_interests = contact.pk is not None and contact.interests.exists()
    if chose_interests and "preferences" not in categories:
        categories.append("preferences")
    return categories


def consent_receipt(
    record: ConsentRecord,
    *,
    categories: list[str] | None = None,
    notices: Mapping[str, PrivacyNotice] | None = None,
) -> dict[str, Any]:
    """The record as a receipt shaped after ISO/IEC TS 27560 and the Kantara consent receipt.

    `categories` and `notices` (the stored notice versions by version): what the caller read
    once for many receipts of one person.
    """
    purpose, version = record.purpose, record.purpose_version
    if categories is None:
        categories = contact_data_categories(record.contact)
    dpo = settings.DPO_CONTACT
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
        "privacy_notice": privacy_notice_of_record(record, notices),
        "processing": {
            "purposes": [
                {
                    "purpose": purpose.slug,
                    "name": purpose.name,
                    "legal_basis": purpose.legal_basis,
                    "legitimate_interest": purpose.legitimate_interest,
                    "channel": record.channel,
                    "consent_type": receipt_consent_type(record),
                    "retention_days": purpose.retention_days,
                }
            ],
            "data_categories": categories,
            # the processors the data goes to, with their jurisdictions (Art. 13(1)(e)-(f))
            "recipients": [
                {
                    "name": recipient["name"],
                    "role": recipient["role"],
                    "jurisdiction": recipient["country"],
                    "outside_eu": recipient["outside_eu"],
                    "safeguard": recipient["safeguard"],
                }
                for recipient in data_recipients()
            ],
        },
        "event": {
            "event_time": record.given_at.isoformat(),
            "event_recorded_time": record.recorded_at.isoformat(),
            "event_type": EVENT_TYPES[record.action],
            "event_state": record.status,
            "collection_method": record.source_kind,
            "source_reference": record.source_reference,
            # where the person acted: the original form or event for a second-hand record
            "collection_reference": record.collection_reference or record.source_reference,
            "second_hand": record.second_hand,
            # who acted; null on records written before the ledger kept it (hash version < 3)
            "actor": record.actor or None,
            "unticked_by_default": record.unticked_by_default,
        },
        "rights": {
            # the preference center link is personal (it opens the person's page): every
            # message carries it; a receipt, which an API client may hold, names the DPO
            "withdrawal": _("The link at the foot of every message, or a request to the DPO."),
            "dpo_contact": dpo,
            "rights": RIGHTS,
            "complaint": {
                "authority": settings.COMPLAINT_AUTHORITY_NAME,
                "url": settings.COMPLAINT_AUTHORITY_URL,
            },
        },
        "integrity": {
            "algorithm": "SHA-256 per-contact hash chain, HMAC-sealed",
            "hash": record.hash,
            "previous_hash": record.previous_hash,
            "evidence_digest": record.evidence_digest,
        },
    }


def contact_consent_receipts(contact: Contact) -> list[dict[str, Any]]:
    """Every ledger record of the person as a receipt, oldest first (their download from the
    preference center: Art. 7(1), 15)."""
    categories = contact_data_categories(contact)
    records = list(contact_consent_history(contact))
    notices = privacy_notices_by_version(record.policy_version for record in records)
    return [consent_receipt(record, categories=categories, notices=notices) for record in records]


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
    record: ConsentRecord, notices: Mapping[str, PrivacyNotice] | None = None
) -> dict[str, Any]:
    """The privacy notice a record says the person was shown: the stored version it names,
    or the version as given and flagged unknown (none when the record names none).
    `notices`: the stored versions read once for many records (else read here)."""
    version = record.policy_version
    if not version:
        return {"version": "", "status": "none"}
    if notices is None:
        notices = privacy_notices_by_version([version])
    notice = notices.get(version)
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


@dataclass(frozen=True)
class CapsInForce:
    """A channel's marketing caps (0: no cap) and whether they are the settings' defaults
    (the channel has no `FrequencyCap` row)."""

    per_day: int
    per_week: int
    is_default: bool


def frequency_caps_stored(*, cached: bool = True) -> dict[str, tuple[int, int]]:
    """The channels' own caps, `{channel: (per_day, per_week)}`: `cached`, from the cache,
    or read (a handful of rows) and cached; else read only (the admin, inside the transaction
    that changes them: what it reads may not be committed yet)."""
    if cached:
        found = cache.get(FREQUENCY_CAPS_CACHE_KEY)
        if found is not None:
            return found
    stored = {
        channel: (per_day, per_week)
        for channel, per_day, per_week in FrequencyCap.objects.values_list(
            "channel", "per_day", "per_week"
        )
    }
    if cached:
        cache.set(FREQUENCY_CAPS_CACHE_KEY, stored, FREQUENCY_CAPS_CACHE_SECONDS)
    return stored


def frequency_caps_in_force(channel: str | None, *, cached: bool = True) -> CapsInForce:
    """The marketing caps of `channel`: its own (edited in the admin), else the defaults of
    `settings.MARKETING_CAPS`; `channel` None: the defaults."""
    stored = frequency_caps_stored(cached=cached) if channel is not None else {}
    return _caps_of(stored, channel)


def frequency_caps_by_channel(*, cached: bool = True) -> dict[str, CapsInForce]:
    """The caps in force on every channel (`frequency_caps_in_force`), read once."""
    stored = frequency_caps_stored(cached=cached)
    return {channel: _caps_of(stored, channel) for channel in Channel.values}


def _caps_of(stored: Mapping[str, tuple[int, int]], channel: str | None) -> CapsInForce:
    own = stored.get(channel) if channel is not None else None
    if own is not None:
        return CapsInForce(per_day=own[0], per_week=own[1], is_default=False)
    defaults = settings.MARKETING_CAPS
    return CapsInForce(
        per_day=defaults.get("day", 0), per_week=defaults.get("week", 0), is_default=True
    )


# The contact page's consent grid (the admin): one row per purpose, one cell per channel.


class Standing(TextChoices):
    """Where a contact stands for one (purpose, channel), in the words staff read: the state
    in the ledger, as the consent-status rule (`consent.status`) reads it for the purpose's
    legal basis."""

    GRANTED = "granted", gettext_lazy("granted")
    OUTDATED_WORDING = "outdated_wording", gettext_lazy("granted, on a replaced wording")
    PENDING = "pending", gettext_lazy("pending confirmation")
    WITHDRAWN = "withdrawn", gettext_lazy("withdrawn")
    EXPIRED = "expired", gettext_lazy("expired")
    OBJECTED = "objected", gettext_lazy("objected")
    NOT_ASKED = "not_asked", gettext_lazy("not asked")
    LEGITIMATE_INTEREST = "legitimate_interest", gettext_lazy("legitimate interest")
    NO_CONSENT_NEEDED = "no_consent_needed", gettext_lazy("no consent needed")
    NOT_USED = "not_used", gettext_lazy("not used on this channel")


@dataclass(frozen=True)
class ConsentCell:
    """One channel of a purpose: where the contact stands, and the state and the ledger record
    behind it (None when nothing was ever recorded)."""

    channel: str
    standing: Standing
    state: ConsentState | None

    @property
    def record(self) -> ConsentRecord | None:
        return self.state.record if self.state is not None else None


@dataclass(frozen=True)
class ConsentGridRow:
    purpose: Purpose
    cells: list[ConsentCell]


_STATE_STANDINGS = {
    ConsentStatus.PENDING: Standing.PENDING,
    ConsentStatus.WITHDRAWN: Standing.WITHDRAWN,
    ConsentStatus.EXPIRED: Standing.EXPIRED,
}


def consent_standing(
    contact: Contact, purpose: Purpose, channel: str, state: ConsentState | None
) -> Standing:
    """Where the contact stands for (purpose, channel) (`Standing`); `purpose` with its
    versions loaded (`purposes_with_versions`) reads nothing more."""
    if state is None and channel not in purpose.channels:
        return Standing.NOT_USED
    problem = consent_problem(contact, purpose, state)
    if problem == ConsentProblem.OBJECTED:
        return Standing.OBJECTED
    if state is None:
        if purpose.legal_basis == LegalBasis.LEGITIMATE_INTERESTS:
            return Standing.LEGITIMATE_INTEREST
        if purpose.legal_basis == LegalBasis.CONSENT:
            return Standing.NOT_ASKED
        return Standing.NO_CONSENT_NEEDED
    if state.status == ConsentStatus.GRANTED:
        if problem == ConsentProblem.OUTDATED_WORDING:
            return Standing.OUTDATED_WORDING
        return Standing.GRANTED
    return _STATE_STANDINGS[ConsentStatus(state.status)]


def contact_consent_grid(contact: Contact) -> list[ConsentGridRow]:
    """The contact's current consents, a row per purpose (the active ones and any other the
    contact has a state for) and a cell per channel, with the record behind each state (its
    `given_at`, source and wording version). Three statements, however many purposes."""
    states = list(
        ConsentState.objects.filter(contact=contact).select_related("record", "purpose_version")
    )
    by_pair = {(state.purpose_id, state.channel): state for state in states}
    purposes = purposes_with_versions().filter(
        Q(is_active=True) | Q(pk__in={state.purpose_id for state in states})
    )
    return [
        ConsentGridRow(
            purpose=purpose,
            cells=[
                ConsentCell(
                    channel=channel,
                    standing=consent_standing(
                        contact, purpose, channel, by_pair.get((purpose.pk, channel))
                    ),
                    state=by_pair.get((purpose.pk, channel)),
                )
                for channel in Channel.values
            ],
        )
        for purpose in sorted(purposes, key=lambda purpose: purpose.name.lower())
    ]


@dataclass(frozen=True)
class LatestRecords:
    """The latest ledger records of a contact (and of the contacts merged into it), the latest
    first, and how many there are in all."""

    records: list[ConsentRecord]
    total: int


def contact_latest_consent_records(contact: Contact, *, limit: int) -> LatestRecords:
    """The contact's `limit` latest ledger records, with those of the contacts merged into it,
    and their total, in one statement however long the history."""
    person = Contact.objects.filter(Q(pk=contact.pk) | Q(merged_into=contact)).values("pk")
    records = list(
        ConsentRecord.objects.filter(contact_id__in=person)
        .select_related("contact", "purpose", "purpose_version")
        .annotate(
            in_all=Window(expression=Count("pk")),
            # the stored privacy notice the record names (`consent.admin.notice_link`)
            notice_pk=Subquery(
                PrivacyNotice.objects.filter(version=OuterRef("policy_version")).values("pk")[:1]
            ),
        )
        .order_by("-recorded_at", "-id")[:limit]
    )
    return LatestRecords(records=records, total=records[0].in_all if records else 0)
