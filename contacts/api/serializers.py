"""Contact representations for the REST API (SPEC §4)."""

from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from contacts.models import Contact, Language, LifecycleStage, Relationship

# API address keys -> model fields.
ADDRESS_FIELDS = {
    "line1": "address_line1",
    "line2": "address_line2",
    "postal_code": "postal_code",
    "city": "city",
    "country": "country",
}
PLAIN_FIELDS = ("first_name", "last_name", "phone", "company", "job_title", "source")
# The lawful basis of marketing to the person (CPCE L34-5): given as they are.
BASIS_FIELDS = ("b2b", "relationship", "customer_since", "customer_until")


def _model_max_length(field: str) -> int:
    model_field = Contact._meta.get_field(field)
    assert isinstance(model_field, models.CharField) and model_field.max_length is not None
    return model_field.max_length


def contact_service_kwargs(validated: dict[str, Any]) -> dict[str, Any]:
    """Split validated contact input into the keyword arguments of the contact services."""
    fields = {
        name: validated[name]
        for name in (*PLAIN_FIELDS, "language", "lifecycle_stage", *BASIS_FIELDS)
        if name in validated
    }
    if "birth_year" in validated:
        fields["birth_year"] = validated["birth_year"]
    for key, model_field in ADDRESS_FIELDS.items():
        if key in validated.get("address", {}):
            fields[model_field] = validated["address"][key]
    kwargs: dict[str, Any] = {"fields": fields}
    if "email" in validated:
        kwargs["email"] = validated["email"]
    if "interests" in validated:
        kwargs["interests"] = validated["interests"]
    return kwargs


class AddressSerializer(serializers.Serializer):
    line1 = serializers.CharField(
        max_length=_model_max_length("address_line1"), allow_blank=True, required=False
    )
    line2 = serializers.CharField(
        max_length=_model_max_length("address_line2"), allow_blank=True, required=False
    )
    postal_code = serializers.CharField(
        max_length=_model_max_length("postal_code"), allow_blank=True, required=False
    )
    city = serializers.CharField(
        max_length=_model_max_length("city"), allow_blank=True, required=False
    )
    country = serializers.CharField(
        max_length=2, allow_blank=True, required=False, help_text="ISO 3166-1 alpha-2 code."
    )


class ContactInputSerializer(serializers.Serializer):
    """What a web form or CRM sends about a person; every field but `email` is optional."""

    email = serializers.CharField(max_length=254)
    first_name = serializers.CharField(max_length=150, allow_blank=True, required=False)
    last_name = serializers.CharField(max_length=150, allow_blank=True, required=False)
    phone = serializers.CharField(
        max_length=40, allow_blank=True, required=False, help_text="E.164 or national format."
    )
    company = serializers.CharField(max_length=200, allow_blank=True, required=False)
    job_title = serializers.CharField(max_length=200, allow_blank=True, required=False)
    address = AddressSerializer(required=False)
    language = serializers.ChoiceField(choices=Language.choices, required=False)
    lifecycle_stage = serializers.ChoiceField(choices=LifecycleStage.choices, required=False)
    # DRF's metaclass moves declared fields off the class: no clash with `Field.source`
    source = serializers.CharField(  # type: ignore[assignment]
        max_length=200, allow_blank=True, required=False
    )
    interests = serializers.ListField(
        child=serializers.SlugField(max_length=50), required=False, max_length=100
    )
    b2b = serializers.BooleanField(
        required=False,
        help_text="A professional address, reached about the person's job (default false).",
    )
    relationship = serializers.ChoiceField(
        choices=Relationship.choices,
        required=False,
        help_text="`customer` once the person bought from you (default `prospect`).",
    )
    customer_since = serializers.DateField(required=False, allow_null=True)
    customer_until = serializers.DateField(
        required=False,
        allow_null=True,
        help_text="End of the contract; null while it runs. Not before `customer_since`.",
    )
    birth_year = serializers.IntegerField(
        min_value=1900,
        required=False,
        allow_null=True,
        help_text=(
            "Year of birth (null: unknown). Under the age of digital consent of the country "
            "(`address.country`; 15 in France), consent-based marketing needs the guardian's "
            "consent (GDPR Art. 8)."
        ),
    )

    def to_service_kwargs(self) -> dict[str, Any]:
        return contact_service_kwargs(self.validated_data)


class ContactSerializer(serializers.ModelSerializer):
    """A contact as the API answers it; `id` is the public UUID, never the database id."""

    id = serializers.UUIDField(source="public_id", read_only=True)
    address = serializers.SerializerMethodField()
    interests: serializers.Field = serializers.SlugRelatedField(
        slug_field="slug", many=True, read_only=True
    )

    class Meta:
        model = Contact
        fields = (
            "id",
            "email",
            "first_name",
            "last_name",
            "phone",
            "company",
            "job_title",
            "address",
            "language",
            "lifecycle_stage",
            "source",
            "interests",
            "b2b",
            "relationship",
            "customer_since",
            "customer_until",
            "birth_year",
            "status",
            "paused_until",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields

    @extend_schema_field(AddressSerializer)
    def get_address(self, contact: Contact) -> dict[str, str]:
        return {key: getattr(contact, field) for key, field in ADDRESS_FIELDS.items()}


CONSENT_DECLARATION_KEYS = ("purpose", "channel", "source_reference", "wording", "given_at_column")


class ImportInputSerializer(serializers.Serializer):
    """A list to import (multipart): the file, and optionally its mapping and consent."""

    file = serializers.FileField(help_text="CSV (UTF-8 or Windows-1252, `,` or `;`) or XLSX.")
    mapping = serializers.JSONField(
        binary=True,
        required=False,
        help_text='JSON {column: field}, e.g. {"Courriel": "email"}; without it, headers '
        "named like the fields (French or English) are mapped.",
    )
    consent = serializers.JSONField(
        binary=True,
        required=False,
        help_text="JSON {purpose, channel, source_reference, wording, given_at_column}: the "
        "consent every row grants, with its proof.",
    )

    # The same declaration as plain form fields, for clients that cannot send JSON in a part.
    purpose = serializers.CharField(required=False, allow_blank=True, help_text="Or `consent`.")
    channel = serializers.CharField(required=False, allow_blank=True, help_text="Or `consent`.")
    source_reference = serializers.CharField(
        required=False, allow_blank=True, help_text="Or `consent`."
    )
    wording = serializers.CharField(required=False, allow_blank=True, help_text="Or `consent`.")
    given_at_column = serializers.CharField(
        required=False, allow_blank=True, help_text="Or `consent`."
    )

    def declared_consent(self) -> dict[str, Any] | None:
        """`consent`, or the declaration given as plain fields (None: no consent)."""
        data = self.validated_data
        if "consent" in data:
            return data["consent"]
        flat = {key: data[key] for key in CONSENT_DECLARATION_KEYS if data.get(key)}
        return flat or None

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if "consent" in data and any(data.get(key) for key in CONSENT_DECLARATION_KEYS):
            raise serializers.ValidationError(
                {"consent": [_("Declare the consent either as `consent` or as plain fields.")]}
            )
        return data

    def validate_mapping(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict) or not all(
            isinstance(key, str) and isinstance(field, str | None) for key, field in value.items()
        ):
            raise serializers.ValidationError(_("Give a JSON object {column: field}."))
        return {key: field or "" for key, field in value.items()}

    def validate_consent(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise serializers.ValidationError(
                _(
                    "Give a JSON object {purpose, channel, source_reference, wording, "
                    "given_at_column}."
                )
            )
        return value


class ImportRejectionSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    reason = serializers.CharField()


class ImportStartedSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    status = serializers.CharField()


class ImportSerializer(ImportStartedSerializer):
    """An import's progress; `rejected` lists every refused row with its line and reason."""

    rows = serializers.IntegerField(allow_null=True)
    processed = serializers.IntegerField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    consents_recorded = serializers.IntegerField()
    rejected = serializers.SerializerMethodField()

    @extend_schema_field(ImportRejectionSerializer(many=True))
    def get_rejected(self, contact_import: Any) -> list[dict[str, Any]]:
        return list(contact_import.rejections.order_by("line", "id").values("line", "reason"))
