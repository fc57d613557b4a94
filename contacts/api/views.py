"""`/api/v1/contacts/`: upsert by email, read, update, consent state and history."""

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from consent.api.serializers import ConsentHistoryRecordSerializer, ConsentStateSerializer
from consent.selectors import contact_consent_history, contact_consent_states
from contacts.api.serializers import ContactInputSerializer, ContactSerializer
from contacts.models import Contact
from contacts.selectors import contacts_by_email
from contacts.services import contact_update, contact_upsert
from core.api import IDEMPOTENCY_HEADER, idempotent
from core.authentication import api_client
from core.models import Scope

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    str,
    OpenApiParameter.HEADER,
    required=False,
    description="Replays the first answer to a retried write; another body with it is 422.",
)


class ContactViewSet(viewsets.GenericViewSet):
    serializer_class = ContactSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"
    required_scopes = {
        "GET": [Scope.CONTACTS_READ],
        "POST": [Scope.CONTACTS_WRITE],
        "PATCH": [Scope.CONTACTS_WRITE],
    }

    def get_queryset(self) -> QuerySet[Contact]:
        contacts = Contact.objects.prefetch_related("interests").order_by("-created_at", "-id")
        if self.action == "list" and "email" in self.request.query_params:
            return contacts_by_email(self.request.query_params["email"]).prefetch_related(
                "interests"
            )
        return contacts

    @extend_schema(
        parameters=[OpenApiParameter("email", str, description="Normalised match on the email.")]
    )
    def list(self, request: Request) -> Response:
        """Contacts, newest first; `?email=` finds the one with that (normalised) email."""
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ContactSerializer(page, many=True).data)

    def get_object(self) -> Contact:
        """The contact of the URL or, when it was merged into another, that other one (which
        holds the person and both consent histories since the merge)."""
        contact: Contact = super().get_object()
        if contact.merged_into_id is not None:
            contact = self.get_queryset().get(pk=contact.merged_into_id)
        return contact

    def retrieve(self, request: Request, id: str) -> Response:  # noqa: A002 - URL kwarg
        return Response(ContactSerializer(self.get_object()).data)

    @extend_schema(
        request=ContactInputSerializer,
        responses={200: ContactSerializer, 201: ContactSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def create(self, request: Request) -> Response:
        """Upsert by email: 201 when the contact was created, 200 when it was updated."""
        serializer = ContactInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        contact, created = contact_upsert(**serializer.to_service_kwargs())
        contact = Contact.objects.prefetch_related("interests").get(pk=contact.pk)
        return Response(
            ContactSerializer(contact).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        request=ContactInputSerializer(partial=True),
        responses=ContactSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def partial_update(self, request: Request, id: str) -> Response:  # noqa: A002
        serializer = ContactInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        contact = contact_update(contact=self.get_object(), **serializer.to_service_kwargs())
        contact = Contact.objects.prefetch_related("interests").get(pk=contact.pk)
        return Response(ContactSerializer(contact).data)

    @extend_schema(responses=ConsentStateSerializer(many=True))
    @action(detail=True, methods=["get"])
    def consents(self, request: Request, id: str) -> Response:  # noqa: A002
        """Current consent state per purpose and channel."""
        page = self.paginate_queryset(contact_consent_states(self.get_object()))
        return self.get_paginated_response(ConsentStateSerializer(page, many=True).data)

    @extend_schema(responses=ConsentHistoryRecordSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="consent-history")
    def consent_history(self, request: Request, id: str) -> Response:  # noqa: A002
        """Every ledger record of the contact, oldest first, with its evidence; the IP address,
        user agent and signed document only for clients with `evidence:read`."""
        page = self.paginate_queryset(contact_consent_history(self.get_object()))
        context = {"evidence_read": api_client(request).has_scope(Scope.EVIDENCE_READ)}
        return self.get_paginated_response(
            ConsentHistoryRecordSerializer(page, many=True, context=context).data
        )
