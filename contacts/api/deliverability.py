"""`POST /api/v1/deliverability-events/`: feedback from an ESP, SMS provider or mail house."""

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from consent.models import SourceKind
from contacts.api.views import IDEMPOTENCY_PARAMETER
from contacts.deliverability import deliverability_event_apply
from contacts.models import DeliverabilityEventType
from core.api import idempotent
from core.models import Scope


class DeliverabilityEventInputSerializer(serializers.Serializer):
    email = serializers.CharField(max_length=254, required=False)
    phone = serializers.CharField(max_length=30, required=False)
    type = serializers.ChoiceField(choices=DeliverabilityEventType.choices)
    reason = serializers.CharField(max_length=255, allow_blank=True, required=False)
    campaign = serializers.CharField(
        max_length=100,
        allow_blank=True,
        required=False,
        help_text="The campaign the message belonged to, kept for attribution.",
    )
    occurred_at = serializers.DateTimeField(required=False)
    event_id = serializers.CharField(
        max_length=200,
        allow_blank=True,
        required=False,
        help_text="The provider's id of the event: the same id is applied once.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("email") and not attrs.get("phone"):
            raise serializers.ValidationError({"email": [_("Give `email` or `phone`.")]})
        if attrs["type"] == DeliverabilityEventType.SMS_STOP and not attrs.get("phone"):
            raise serializers.ValidationError({"phone": [_("An SMS STOP needs the `phone`.")]})
        return attrs


class DeliverabilityEventSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=DeliverabilityEventType.choices, read_only=True)
    status = serializers.ChoiceField(
        choices=[("accepted", "accepted")],
        read_only=True,
        help_text="Always `accepted`: an unknown or erased address is accepted and changes "
        "nothing (whether we hold an address does not show).",
    )


class DeliverabilityEventViewSet(viewsets.GenericViewSet):
    serializer_class = DeliverabilityEventInputSerializer
    required_scopes = {"POST": [Scope.DELIVERABILITY_WRITE]}

    @extend_schema(
        request=DeliverabilityEventInputSerializer,
        responses={201: DeliverabilityEventSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def create(self, request: Request) -> Response:
        """Apply a bounce, complaint, delivery, returned mail or SMS STOP (SPEC §3 feedback)."""
        serializer = DeliverabilityEventInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            deliverability_event_apply(
                type=data["type"],
                email=data.get("email", ""),
                phone=data.get("phone", ""),
                reason=data.get("reason", ""),
                campaign=data.get("campaign", ""),
                occurred_at=data.get("occurred_at"),
                event_id=data.get("event_id", ""),
                source_kind=SourceKind.API,
            )
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict) from None
        return Response(
            {"type": data["type"], "status": "accepted"}, status=status.HTTP_201_CREATED
        )
