"""Consent, purpose, form and privacy-request representations for the REST API (SPEC §4)."""

from typing import Any

from django.utils.translation import gettext as _
from rest_framework import serializers

from consent.models import (
    Channel,
    ConsentRecord,
    ConsentState,
    PrivacyRequest,
    PrivacyRequestEvent,
    PrivacyRequestType,
    Purpose,
    SourceKind,
)
from consent.services import Evidence
from contacts.api.serializers import ContactInputSerializer, ContactSerializer
from core.models import ApiClient, Scope

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


class ConsentRecordSerializer(serializers.ModelSerializer):
    """A ledger record as answered by writes and the history."""

    id = serializers.UUIDField(source="uuid", read_only=True)
    contact = serializers.UUIDField(source="contact.public_id", read_only=True)
    purpose = serializers.SlugField(source="purpose.slug", read_only=True)
    version = serializers.IntegerField(source="purpose_version.number", read_only=True)

    class Meta:
        model = ConsentRecord
        fields = (
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
            "previous_hash",
            "hash",
        )
        read_only_fields = fields


class ConsentStateSerializer(serializers.ModelSerializer):
    purpose = serializers.SlugField(source="purpose.slug", read_only=True)
    record = serializers.UUIDField(source="record.uuid", read_only=True)

    class Meta:
        model = ConsentState
        fields = ("purpose", "channel", "status", "since", "record")
        read_only_fields = fields


class SourceSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=API_SOURCE_KINDS, default=SourceKind.API)
    reference = serializers.CharField(max_length=500, allow_blank=True, required=False)


class EvidenceSerializer(serializers.Serializer):
    wording = serializers.CharField(allow_blank=True, required=False, max_length=10000)
    unticked_by_default = serializers.BooleanField(required=False, allow_null=True, default=None)
    policy_version = serializers.CharField(max_length=50, allow_blank=True, required=False)
    ip = serializers.IPAddressField(required=False, allow_null=True)
    user_agent = serializers.CharField(max_length=2000, allow_blank=True, required=False)

    @staticmethod
    def to_evidence(data: dict[str, Any], **overrides: Any) -> Evidence:
        values = {
            "wording": data.get("wording", ""),
            "unticked_by_default": data.get("unticked_by_default"),
            "policy_version": data.get("policy_version", ""),
            "ip": data.get("ip") or None,
            "user_agent": data.get("user_agent", ""),
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
    given_at = serializers.DateTimeField(required=False)
    source = SourceSerializer(required=False)
    evidence = EvidenceSerializer(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs.get("email")) == bool(attrs.get("contact")):
            raise serializers.ValidationError(
                {"email": [_("Give either `email` or `contact`, not both nor neither.")]}
            )
        return attrs


class FormConsentSerializer(serializers.Serializer):
    purpose = serializers.SlugField(max_length=50)
    channel = serializers.ChoiceField(choices=Channel.choices)
    granted = serializers.BooleanField()
    wording = serializers.CharField(max_length=10000, allow_blank=True)


class FormEvidenceSerializer(serializers.Serializer):
    unticked_by_default = serializers.BooleanField(required=False, allow_null=True, default=None)
    policy_version = serializers.CharField(max_length=50, allow_blank=True, required=False)
    ip = serializers.IPAddressField(required=False, allow_null=True)
    user_agent = serializers.CharField(max_length=2000, allow_blank=True, required=False)


class FormSubmissionSerializer(serializers.Serializer):
    """A web form posted by a person: their contact data and every consent box."""

    form = serializers.CharField(max_length=500, help_text="The form's URL or identifier.")
    contact = ContactInputSerializer()
    consents = serializers.ListField(child=FormConsentSerializer(), max_length=50, allow_empty=True)
    evidence = FormEvidenceSerializer(required=False)


class FormSubmissionResultSerializer(serializers.Serializer):
    contact = ContactSerializer()
    consents = ConsentRecordSerializer(many=True)


class PrivacyRequestInputSerializer(serializers.Serializer):
    email = serializers.CharField(max_length=254, required=False)
    contact = serializers.UUIDField(required=False)
    type = serializers.ChoiceField(choices=PrivacyRequestType.choices)
    details = serializers.CharField(max_length=5000, allow_blank=True, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs.get("email")) == bool(attrs.get("contact")):
            raise serializers.ValidationError(
                {"email": [_("Give either `email` or `contact`, not both nor neither.")]}
            )
        return attrs


class PrivacyRequestEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = PrivacyRequestEvent
        fields = ("status", "at", "note")
        read_only_fields = fields


class PrivacyRequestSerializer(serializers.ModelSerializer):
    """A request; its `contact` only for clients that may read contacts."""

    contact = serializers.UUIDField(source="contact.public_id", read_only=True, allow_null=True)
    history = PrivacyRequestEventSerializer(many=True, read_only=True)

    def to_representation(self, instance: PrivacyRequest) -> dict[str, Any]:
        data = super().to_representation(instance)
        request = self.context.get("request")
        client = getattr(request, "auth", None)
        if not isinstance(client, ApiClient) or not client.has_scope(Scope.CONTACTS_READ):
            # whether the email named a contact must not show: the same answer either way
            data.pop("contact")
        return data

    class Meta:
        model = PrivacyRequest
        fields = (
            "id",
            "contact",
            "type",
            "status",
            "details",
            "received_at",
            "due_at",
            "history",
        )
        read_only_fields = fields
