"""`/api/v1/`: purposes, consents, receipts and form submissions."""

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiTypes, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from consent.api.serializers import (
    MAX_BATCH,
    ConsentInputSerializer,
    ConsentRecordSerializer,
    ConsentWriteAnswerSerializer,
    EvidenceSerializer,
    FormSubmissionResultSerializer,
    FormSubmissionSerializer,
    PurposeSerializer,
)
from consent.intake import ConsentInput, FormConsent, consents_record_batch, form_submission_record
from consent.models import ConsentRecord, Purpose, SourceKind
from consent.selectors import consent_receipt, purposes_active
from consent.services import LIST_SOURCES
from contacts.api.serializers import ContactSerializer, contact_service_kwargs
from contacts.api.views import IDEMPOTENCY_PARAMETER
from contacts.models import Contact
from core.api import idempotent
from core.authentication import api_client
from core.errors import StructuredValidationError
from core.models import Scope


class PurposeViewSet(viewsets.ReadOnlyModelViewSet):
    """Purposes with their current wording, in the `Accept-Language` language."""

    serializer_class = PurposeSerializer
    lookup_field = "slug"
    required_scopes: dict[str, list[str]] = {"GET": []}

    def get_queryset(self) -> QuerySet[Purpose]:
        return purposes_active().order_by("slug")


class ConsentViewSet(viewsets.GenericViewSet):
    queryset = ConsentRecord.objects.select_related("contact", "purpose", "purpose_version")
    serializer_class = ConsentRecordSerializer
    lookup_field = "uuid"
    lookup_url_kwarg = "id"
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"
    required_scopes = {"POST": [Scope.CONSENTS_WRITE], "GET": [Scope.CONTACTS_READ]}

    @extend_schema(
        request=ConsentInputSerializer,
        responses={201: ConsentWriteAnswerSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def create(self, request: Request) -> Response:
        """Record one consent, or an array of consents all or nothing; 201 with the records."""
        many = isinstance(request.data, list)
        if many and len(request.data) > MAX_BATCH:
            raise serializers.ValidationError(
                {"non_field_errors": [_("At most %d consents per request.") % MAX_BATCH]}
            )
        serializer = (
            ConsentInputSerializer(data=request.data, many=True, allow_empty=False)
            if many
            else ConsentInputSerializer(data=request.data)
        )
        serializer.is_valid(raise_exception=True)
        items = serializer.validated_data if many else [serializer.validated_data]
        try:
            records = consents_record_batch(
                items=[self._to_input(item) for item in items],
                may_create_contacts=api_client(request).has_scope(Scope.CONTACTS_WRITE),
            )
        except StructuredValidationError as error:
            if many:
                raise
            # One object in, one object of errors out: `{"purpose": [...]}`, not a list.
            raise serializers.ValidationError(error.detail[0]) from error
        data = ConsentWriteAnswerSerializer(records, many=True).data
        return Response(data if many else data[0], status=status.HTTP_201_CREATED)

    def _to_input(self, item: dict[str, Any]) -> ConsentInput:
        source = item.get("source", {})
        evidence = item.get("evidence", {})
        # a relayed consent names where it was collected: the evidence's, or the source's own
        # reference when the client gave one (never our default `api:<client>`)
        kind = source.get("kind", SourceKind.API)
        relayed = source.get("reference", "") if kind in LIST_SOURCES else ""
        collected_at = evidence.get("collection_reference") or relayed
        return ConsentInput(
            email=item.get("email"),
            contact=item.get("contact"),
            purpose=item["purpose"],
            channel=item["channel"],
            action=item["action"],
            given_at=item.get("given_at"),
            source_kind=kind,
            source_reference=source.get("reference") or f"api:{api_client(self.request).name}",
            evidence=EvidenceSerializer.to_evidence(evidence, collection_reference=collected_at),
            actor=item.get("actor", ""),
        )

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def receipt(self, request: Request, id: str) -> Response:  # noqa: A002 - URL kwarg
        """The record as a consent receipt after ISO/IEC TS 27560."""
        return Response(consent_receipt(self.get_object()))


class FormSubmissionView(APIView):
    required_scopes = {"POST": [Scope.CONTACTS_WRITE, Scope.CONSENTS_WRITE]}

    @extend_schema(
        request=FormSubmissionSerializer,
        responses={201: FormSubmissionResultSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        """Upsert the contact and record every consent of a web form atomically."""
        serializer = FormSubmissionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        kwargs = contact_service_kwargs(data["contact"])
        result = form_submission_record(
            form=data["form"],
            email=kwargs["email"],
            contact_fields=kwargs["fields"],
            interests=kwargs.get("interests"),
            consents=[FormConsent(**box) for box in data["consents"]],
            evidence=EvidenceSerializer.to_evidence(data.get("evidence", {})),
        )
        contact = None
        if result.contact is not None:
            contact = Contact.objects.prefetch_related("interests").get(pk=result.contact.pk)
        return Response(
            {
                "contact": ContactSerializer(contact).data if contact else None,
                "consents": ConsentWriteAnswerSerializer(result.records, many=True).data,
            },
            status=status.HTTP_201_CREATED,
        )
