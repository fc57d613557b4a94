"""`/api/v1/privacy-requests/`: data-subject requests filed and followed by integrators."""

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from contacts.api.views import IDEMPOTENCY_PARAMETER
from contacts.models import Contact
from contacts.selectors import contact_find
from core.api import idempotent
from core.authentication import api_client
from core.models import Scope
from privacy.api.serializers import PrivacyRequestInputSerializer, PrivacyRequestSerializer
from privacy.models import PrivacyRequest
from privacy.services import privacy_request_file_by_client


class PrivacyRequestViewSet(viewsets.GenericViewSet):
    queryset = PrivacyRequest.objects.select_related("contact").prefetch_related("history")
    serializer_class = PrivacyRequestSerializer
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"
    required_scopes = {"POST": [Scope.PRIVACY_WRITE], "GET": [Scope.PRIVACY_WRITE]}

    @extend_schema(
        request=PrivacyRequestInputSerializer,
        responses={201: PrivacyRequestSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def create(self, request: Request) -> Response:
        """File a data-subject request; filed by an integrator, it counts as verified."""
        serializer = PrivacyRequestInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        privacy_request = privacy_request_file_by_client(
            client=api_client(request),
            email=data.get("email", ""),
            contact=self._contact(data),
            type=data["type"],
            details=data.get("details", ""),
        )
        privacy_request = self.get_queryset().get(pk=privacy_request.pk)
        return Response(self.get_serializer(privacy_request).data, status=status.HTTP_201_CREATED)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(self.get_serializer(self.get_object()).data)

    @staticmethod
    def _contact(data: dict[str, Any]) -> Contact | None:
        if not data.get("contact"):
            return None  # by email: the service looks it up
        contact = contact_find(public_id=data["contact"])
        if contact is None:
            raise serializers.ValidationError({"contact": [_("Unknown contact.")]})
        return contact
