"""Consent, purpose and form representations for the REST API (SPEC §4)."""

from typing import Any

from django.utils.translation import gettext as _
from rest_framework import serializers

from consent.ledger import evidence_digest
from consent.minors import GUARDIAN_ACTORS
from consent.models import (
    Actor,
    Channel,
    ConsentAction,
    ConsentRecord,
    ConsentState,
    ConsentStatus,
    Purpose,
    SourceKind,
)
from consent.services import LIST_SOURCES, UNTICKED_REQUIRED_SOURCES, Evidence
from contacts.api.serializers import ContactInputSerializer, ContactSerializer

MAX_BATCH = 500

# What an API client may declare as the origin of a consent it relays.
API_SOURCE_KINDS = [
    (kind.value, kind.label)
    for kind in (SourceKind.API, SourceKind.WEB_FORM, SourceKind.CRM, SourceKind.IMPORT)
]


class PurposeSerializer(serializers.ModelSerializer):
    """A purpose with its current wording, in the language the client asked for."""

    name = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    # GDPR Art. 13(1)(d), for the web forms that collect on this purpose; "" unless the purpose
    # rests on legitimate interests (a field added to SPEC §4's list: clients ignore unknowns)
    legitimate_interest = serializers.CharField(read_only=True)
    channels = serializers.ListField(child=serializers.ChoiceField(choices=Channel.choices))
    version = serializers.SerializerMethodField()
    wording = serializers.SerializerMethodField()

    class Meta:
        model = Purpose
        fields = (
            "slug",
            "name",
            "description",
            "legal_basis",
            "legitimate_interest",
            "channels",
            "double_opt_in",
            "version",
            "wording",
        )
        read_only_fields = fields

    def get_version(self, purpose: Purpose) -> int | None:
        version = purpose.current_version
        return version.number if version else None

    def get_wording(self, purpose: Purpose) -> str:
        version = purpose.current_version
        return version.wording if version else ""


# A ledger record's fields, the same in the history and in the answers of writes.
RECORD_FIELDS = (
    "id",
    "contact",
    "purpose",
    "version",
    "channel",
    "action",
    "status",
    "given_at",
    "recorded_at",
    "source_kind",
    "source_reference",
    "wording",
    "unticked_by_default",
    "policy_version",
    "actor",
    "second_hand",
    "collection_reference",
    "previous_hash",
    "hash",
)
# Who an API client may say acted: the person, or a child's guardian (GDPR Art. 8); staff
# and jobs act through the admin and the jobs, never through a client.
API_ACTORS = [
    (actor.value, actor.label)
    for actor in (Actor.PERSON, Actor.GUARDIAN, Actor.PERSON_AND_GUARDIAN)
]
UNTICKED_REQUIRED = (
    "Required, and true, for a grant from a form or the API: the box was unticked by default "
    "(a pre-ticked box is not consent, CJEU Planet49, C-673/17)."
)


class ConsentRecordSerializer(serializers.ModelSerializer):
    """A ledger record as answered by writes and the history."""

    id = serializers.UUIDField(source="uuid", read_only=True)
    contact = serializers.UUIDField(source="contact.public_id", read_only=True)
    purpose = serializers.SlugField(source="purpose.slug", read_only=True)
    version = serializers.IntegerField(source="purpose_version.number", read_only=True)

    class Meta:
        model = ConsentRecord
        fields: tuple[str, ...] = RECORD_FIELDS
        read_only_fields: tuple[str, ...] = fields


PENDING_SIGNUP_HELP = (
    "Null when the grant was for a suppressed address that has no contact (an erased person "
    "signing up again): nothing is stored, `status` is `pending`, and the record is written "
    "only when the person follows the link emailed to the address."
)


class ConsentWriteAnswerSerializer(serializers.ModelSerializer):
    """A record as answered by `POST /consents/` and form submissions.

    Its own field list (not the history's): a grant for a suppressed address with no contact
    is answered `pending` with no stored record, so `id`, `contact`, `recorded_at`,
    `previous_hash` and `hash` may be null. A grant or withdrawal older than the change behind
    the current state is kept in the ledger but changes nothing: its `status` is the current
    one, unchanged (SPEC §3, "State follows time").
    """

    id = serializers.UUIDField(
        source="uuid", read_only=True, allow_null=True, help_text=PENDING_SIGNUP_HELP
    )
    contact = serializers.UUIDField(
        source="contact.public_id", read_only=True, allow_null=True, help_text=PENDING_SIGNUP_HELP
    )
    purpose = serializers.SlugField(source="purpose.slug", read_only=True)
    version = serializers.IntegerField(source="purpose_version.number", read_only=True)
    status = serializers.ChoiceField(
        choices=ConsentStatus.choices,
        read_only=True,
        help_text=(
            "The status of (contact, purpose, channel) after this record: `pending` while the "
            "double opt-in or a suppressed address waits for the person's confirmation; the "
            "unchanged current status when the record is older than the change behind it."
        ),
    )
    recorded_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text=PENDING_SIGNUP_HELP
    )
    previous_hash = serializers.CharField(
        read_only=True, allow_null=True, help_text=PENDING_SIGNUP_HELP
    )
    hash = serializers.CharField(read_only=True, allow_null=True, help_text=PENDING_SIGNUP_HELP)

    class Meta:
        model = ConsentRecord
        fields = RECORD_FIELDS


class DocumentReferenceSerializer(serializers.Serializer):
    """A signed paper form, by reference only: the file itself never leaves through the API."""

    sha256 = serializers.CharField(help_text="SHA-256 of the document, as recorded.")
    stored = serializers.BooleanField(help_text="Whether the file is still kept.")


class GuardianSerializer(serializers.Serializer):
    """The holder of parental responsibility who consented for a child (GDPR Art. 8): kept as
    personal evidence, apart from the chained record, and erased with the person."""

    name = serializers.CharField(max_length=200)
    contact = serializers.CharField(max_length=254, help_text="The guardian's email or phone.")


class RecordEvidenceSerializer(serializers.Serializer):
    """What proves a record; its personal part only for clients holding `evidence:read`."""

    PERSONAL_FIELDS = ("ip", "user_agent", "document", "guardian", "digest_matches")
    PERSONAL_HELP = " Only for clients with the `evidence:read` scope; null once erased."

    wording = serializers.CharField(read_only=True, help_text="The exact wording shown.")
    unticked_by_default = serializers.BooleanField(read_only=True, allow_null=True)
    policy_version = serializers.CharField(read_only=True)
    digest = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text="Digest of the personal evidence, chained in the record's hash.",
    )
    # Not read-only, so that the schema shows them as optional: absent without the scope.
    ip = serializers.IPAddressField(
        required=False, allow_null=True, help_text="The person's IP address." + PERSONAL_HELP
    )
    user_agent = serializers.CharField(
        required=False, allow_null=True, help_text="The person's browser." + PERSONAL_HELP
    )
    document = DocumentReferenceSerializer(
        required=False, allow_null=True, help_text="The signed document." + PERSONAL_HELP
    )
    guardian = GuardianSerializer(
        required=False,
        allow_null=True,
        help_text="Who consented for a child (GDPR Art. 8); null when none." + PERSONAL_HELP,
    )
    digest_matches = serializers.BooleanField(
        required=False,
        allow_null=True,
        help_text="Whether the personal evidence kept still matches `digest`; null when none "
        "is kept." + PERSONAL_HELP,
    )

    def to_representation(self, record: ConsentRecord) -> dict[str, Any]:
        data: dict[str, Any] = {
            "wording": record.wording,
            "unticked_by_default": record.unticked_by_default,
            "policy_version": record.policy_version,
            "digest": record.evidence_digest or None,
        }
        if self.context.get("evidence_read"):
            data.update(self._personal(record))
        return data

    @staticmethod
    def _personal(record: ConsentRecord) -> dict[str, Any]:
        # Erasure deletes the personal evidence row; the record and its digest stay.
        personal = getattr(record, "personal_evidence", None)
        if personal is None:
            return dict.fromkeys(RecordEvidenceSerializer.PERSONAL_FIELDS)
        document = None
        if personal.document:
            document = {
                "sha256": personal.document_sha256,
                "stored": personal.document.storage.exists(personal.document.name),
            }
        guardian = None
        if personal.guardian_name or personal.guardian_contact:
            guardian = {"name": personal.guardian_name, "contact": personal.guardian_contact}
        return {
            "ip": personal.ip,
            "user_agent": personal.user_agent or None,
            "document": document,
            "guardian": guardian,
            "digest_matches": evidence_digest(personal) == record.evidence_digest,
        }


class ConsentHistoryRecordSerializer(ConsentRecordSerializer):
    """A ledger record in a contact's history, with its evidence (SPEC §4)."""

    evidence = RecordEvidenceSerializer(source="*", read_only=True)

    class Meta(ConsentRecordSerializer.Meta):
        fields = (*ConsentRecordSerializer.Meta.fields, "evidence")
        read_only_fields = fields


class ConsentStateSerializer(serializers.ModelSerializer):
    purpose = serializers.SlugField(source="purpose.slug", read_only=True)
    record = serializers.UUIDField(source="record.uuid", read_only=True)

    class Meta:
        model = ConsentState
        fields = ("purpose", "channel", "status", "since", "record")
        read_only_fields = fields


class SourceSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=API_SOURCE_KINDS,
        default=SourceKind.API,
        help_text=(
            "Where the consent was collected. Whatever the kind, a grant for a suppressed "
            "address (unsubscribed, complained, bounced, erased) is answered `pending` and "
            "takes effect only when the person follows the link emailed to that address; "
            "`import` and `crm` grants for one are refused."
        ),
    )
    reference = serializers.CharField(max_length=500, allow_blank=True, required=False)


class EvidenceSerializer(serializers.Serializer):
    wording = serializers.CharField(allow_blank=True, required=False, max_length=10000)
    unticked_by_default = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text=UNTICKED_REQUIRED
    )
    policy_version = serializers.CharField(max_length=50, allow_blank=True, required=False)
    ip = serializers.IPAddressField(required=False, allow_null=True)
    user_agent = serializers.CharField(max_length=2000, allow_blank=True, required=False)
    collection_reference = serializers.CharField(
        max_length=500,
        allow_blank=True,
        required=False,
        help_text=(
            "Where the person consented, when this grant relays it (`source.kind` `crm` or "
            "`import`: this or `source.reference` is required, with `given_at`)."
        ),
    )
    guardian = GuardianSerializer(
        required=False, help_text="Required when `actor` is `guardian` or `person_and_guardian`."
    )

    @staticmethod
    def to_evidence(data: dict[str, Any], **overrides: Any) -> Evidence:
        guardian = data.get("guardian") or {}
        values = {
            "wording": data.get("wording", ""),
            "unticked_by_default": data.get("unticked_by_default"),
            "policy_version": data.get("policy_version", ""),
            "ip": data.get("ip") or None,
            "user_agent": data.get("user_agent", ""),
            "collection_reference": data.get("collection_reference", ""),
            "guardian_name": guardian.get("name", ""),
            "guardian_contact": guardian.get("contact", ""),
        }
        values.update(overrides)
        return Evidence(**values)


class ConsentInputSerializer(serializers.Serializer):
    """One consent to record: who (`email` or `contact`), for what, and its proof."""

    email = serializers.CharField(max_length=254, required=False)
    contact = serializers.UUIDField(required=False)
    purpose = serializers.SlugField(max_length=50)
    channel = serializers.ChoiceField(choices=Channel.choices)
    action = serializers.ChoiceField(choices=[("grant", _("Grant")), ("withdraw", _("Withdraw"))])
    given_at = serializers.DateTimeField(
        required=False,
        help_text="When the person acted (default: now); required for `crm` and `import` grants.",
    )
    # DRF's metaclass moves declared fields off the class: no clash with `Field.source`
    source = SourceSerializer(required=False)  # type: ignore[assignment]
    evidence = EvidenceSerializer(required=False)
    actor = serializers.ChoiceField(
        choices=API_ACTORS,
        required=False,
        help_text=(
            "Who acted (default `person`); `guardian` or `person_and_guardian` for a child "
            "under the age of digital consent, with `evidence.guardian`."
        ),
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs.get("email")) == bool(attrs.get("contact")):
            raise serializers.ValidationError(
                {"email": [_("Give either `email` or `contact`, not both nor neither.")]}
            )
        if attrs["action"] == ConsentAction.GRANT:
            _check_grant_evidence(attrs)
        return attrs


class FormConsentSerializer(serializers.Serializer):
    purpose = serializers.SlugField(max_length=50)
    channel = serializers.ChoiceField(choices=Channel.choices)
    granted = serializers.BooleanField()
    wording = serializers.CharField(max_length=10000, allow_blank=True)


class FormEvidenceSerializer(serializers.Serializer):
    unticked_by_default = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text=UNTICKED_REQUIRED
    )
    policy_version = serializers.CharField(max_length=50, allow_blank=True, required=False)
    ip = serializers.IPAddressField(required=False, allow_null=True)
    user_agent = serializers.CharField(max_length=2000, allow_blank=True, required=False)


class FormSubmissionSerializer(serializers.Serializer):
    """A web form posted by a person: their contact data and every consent box."""

    form = serializers.CharField(max_length=500, help_text="The form's URL or identifier.")
    contact = ContactInputSerializer()
    consents = serializers.ListField(child=FormConsentSerializer(), max_length=50, allow_empty=True)
    evidence = FormEvidenceSerializer(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if any(box["granted"] for box in attrs["consents"]):
            evidence = attrs.get("evidence") or {}
            if evidence.get("unticked_by_default") is None:  # false: the write path's Planet49
                raise serializers.ValidationError(
                    {"evidence": {"unticked_by_default": [_unticked_message()]}}
                )
        return attrs


def _unticked_message() -> str:
    return _(
        "Required, and true: a grant is valid only if the box was unticked by default "
        "(CJEU, Planet49, C-673/17)."
    )


def _check_grant_evidence(attrs: dict[str, Any]) -> None:
    """The proof a grant needs at its source, as field errors (the write path refuses the
    same, for every caller): an unticked box from a form or the API; the original date and
    where it was collected from an import or a CRM; the guardian for a guardian's grant."""
    kind = attrs.get("source", {}).get("kind", SourceKind.API)
    evidence = attrs.get("evidence") or {}
    errors: dict[str, Any] = {}
    # missing; false is refused by the write path (a pre-ticked box, Planet49)
    if kind in UNTICKED_REQUIRED_SOURCES and evidence.get("unticked_by_default") is None:
        errors["evidence"] = {"unticked_by_default": [_unticked_message()]}
    if kind in LIST_SOURCES:
        if attrs.get("given_at") is None:
            errors["given_at"] = [
                _("Required for a grant from a CRM or an import: the date the person consented.")
            ]
        if not (evidence.get("collection_reference") or attrs["source"].get("reference")):
            errors["source"] = {
                "reference": [
                    _(
                        "Required for a grant from a CRM or an import: where the person "
                        "consented (or `evidence.collection_reference`)."
                    )
                ]
            }
    if attrs.get("actor") in GUARDIAN_ACTORS and not evidence.get("guardian"):
        errors.setdefault("evidence", {})["guardian"] = [
            _("Required when the holder of parental responsibility consents (GDPR Art. 8).")
        ]
    if errors:
        raise serializers.ValidationError(errors)


class FormSubmissionResultSerializer(serializers.Serializer):
    contact = ContactSerializer(
        allow_null=True,
        help_text=(
            "Null when the address is suppressed and has no contact (an erased person): nobody "
            "is created until the person follows the link emailed to the address."
        ),
    )
    consents = ConsentWriteAnswerSerializer(many=True)
