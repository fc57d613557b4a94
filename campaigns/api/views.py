"""`/api/v1/campaigns/`: create a draft, send or schedule it, read it with its statistics,
preview its audience, list its recipients, download the mail house's file."""

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns.api.serializers import (
    AudienceSerializer,
    CampaignInputSerializer,
    CampaignSerializer,
    RecipientSerializer,
    SegmentInputSerializer,
    SendInputSerializer,
    StepInputSerializer,
)
from campaigns.models import NOTICE_KINDS, Campaign
from campaigns.postal import postal_file_response
from campaigns.selectors import campaign_audience, campaign_recipients, campaign_stats
from campaigns.sending import campaign_send
from campaigns.services import campaign_create
from contacts.api.views import IDEMPOTENCY_PARAMETER
from core.api import idempotent
from core.models import Scope


class CampaignViewSet(viewsets.GenericViewSet):
    serializer_class = CampaignSerializer
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    lookup_value_regex = "[0-9a-fA-F-]{32,36}"
    required_scopes = {"GET": [Scope.CAMPAIGNS_READ], "POST": [Scope.CAMPAIGNS_WRITE]}

    def get_queryset(self) -> QuerySet[Campaign]:
        return Campaign.objects.select_related("purpose", "segment").prefetch_related(
            "steps", "segment__interests"
        )

    def _answer(self, campaign: Campaign, code: int = status.HTTP_200_OK) -> Response:
        campaign = self.get_queryset().get(pk=campaign.pk)
        context = {"stats": campaign_stats(campaign)}
        return Response(CampaignSerializer(campaign, context=context).data, status=code)

    @extend_schema(
        request=CampaignInputSerializer,
        responses={201: CampaignSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @idempotent
    def create(self, request: Request) -> Response:
        """Create a draft campaign with its segment criteria and steps."""
        serializer = CampaignInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        segment = data.get("segment")
        campaign = campaign_create(
            name=data["name"],
            purpose=data["purpose"],
            criteria=SegmentInputSerializer().to_criteria(segment) if segment else None,
            steps=[StepInputSerializer.to_step(step) for step in data["steps"]],
        )
        return self._answer(campaign, status.HTTP_201_CREATED)

    def retrieve(self, request: Request, id: str) -> Response:  # noqa: A002 - URL kwarg
        """The campaign with its status and statistics."""
        return self._answer(self.get_object())

    @extend_schema(responses={200: AudienceSerializer})
    @action(detail=True, methods=["get"])
    def audience(self, request: Request, id: str) -> Response:  # noqa: A002 - URL kwarg
        """Per step, the eligible count and the count excluded per reason, now."""
        steps = campaign_audience(self.get_object())
        return Response(AudienceSerializer({"steps": steps}).data)

    @extend_schema(
        parameters=[OpenApiParameter("email", str, description="Normalised match on the email.")],
        responses={200: RecipientSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], serializer_class=RecipientSerializer)
    def recipients(self, request: Request, id: str) -> Response:  # noqa: A002 - URL kwarg
        """The campaign's recipients, with the consent record or legal basis of each."""
        recipients = campaign_recipients(self.get_object(), email=request.query_params.get("email"))
        page = self.paginate_queryset(recipients)
        return self.get_paginated_response(RecipientSerializer(page, many=True).data)

    @extend_schema(
        request=SendInputSerializer,
        responses={202: CampaignSerializer},
        parameters=[IDEMPOTENCY_PARAMETER],
    )
    @action(detail=True, methods=["post"], serializer_class=SendInputSerializer)
    @idempotent
    def send(self, request: Request, id: str) -> Response:  # noqa: A002 - URL kwarg
        """Send the draft now, or at `at` (scheduled): 202, the work goes on in the workers."""
        serializer = SendInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        campaign = self.get_object()
        if campaign.kind in NOTICE_KINDS:
            raise PermissionDenied(_("A notice is sent from the admin by someone allowed to."))
        campaign = campaign_send(campaign=campaign, at=serializer.validated_data.get("at"))
        return self._answer(campaign, status.HTTP_202_ACCEPTED)

    @extend_schema(responses={(200, "text/csv"): str})
    @action(detail=True, methods=["get"], url_path="postal-file")
    def postal_file(self, request: Request, id: str) -> StreamingHttpResponse:  # noqa: A002
        """The mail house's CSV: one line per letter of the postal steps, addresses normalised,
        without undeliverable or incomplete addresses."""
        return postal_file_response(self.get_object())
