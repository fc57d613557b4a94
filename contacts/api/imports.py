"""`/api/v1/imports/`: upload a contact list (202, loaded by the worker) and follow it."""

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import parsers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from contacts.api.serializers import (
    ImportInputSerializer,
    ImportSerializer,
    ImportStartedSerializer,
)
from contacts.imports import contacts_import
from contacts.models import ContactImport
from core.authentication import api_client
from core.models import Scope
from core.parsers import JSONParser


class ImportViewSet(viewsets.GenericViewSet):
    """Imports of the calling API client: another client's import answers 404."""

    serializer_class = ImportSerializer
    # JSON is parsed too (and answered 400: a list comes as a file), as on every write
    parser_classes = [parsers.MultiPartParser, parsers.FormParser, JSONParser]
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"
    required_scopes = {"GET": [Scope.IMPORTS_WRITE], "POST": [Scope.IMPORTS_WRITE]}

    def get_queryset(self) -> QuerySet[ContactImport]:
        return ContactImport.objects.filter(api_client=api_client(self.request))

    @extend_schema(request=ImportInputSerializer, responses={202: ImportStartedSerializer})
    def create(self, request: Request) -> Response:
        """Check the list, its mapping and declared consent, and queue it for the worker."""
        serializer = ImportInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        contact_import = contacts_import(
            file=upload,
            file_name=upload.name or "",
            mapping=serializer.validated_data.get("mapping"),
            consent=serializer.declared_consent(),
            api_client=api_client(request),
        )
        return Response(
            ImportStartedSerializer(contact_import).data, status=status.HTTP_202_ACCEPTED
        )

    def retrieve(self, request: Request, id: str) -> Response:  # noqa: A002 - URL kwarg
        """Progress and counters; `rejected` lists the refused rows with line and reason."""
        try:
            contact_import = self.get_object()
        except (ValueError, ContactImport.DoesNotExist) as error:
            raise Http404 from error
        return Response(ImportSerializer(contact_import).data)
