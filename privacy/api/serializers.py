"""Privacy-request representations for the REST API (SPEC §4)."""

from typing import Any

from django.utils.translation import gettext as _
from rest_framework import serializers

from core.models import ApiClient, Scope
from privacy.models import PrivacyRequest, PrivacyRequestEvent, PrivacyRequestType


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

    # Not read-only, so that the schema shows it as optional: absent without `contacts:read`
    # (this serializer only ever answers; requests are read by PrivacyRequestInputSerializer).
    contact = serializers.UUIDField(
        source="contact.public_id",
        required=False,
        allow_null=True,
        help_text="Only for clients with the `contacts:read` scope; null when the email named "
        "no contact.",
    )
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
