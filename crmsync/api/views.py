"""`GET /api/v1/events/?after=<cursor>`: the outbox as a feed, for integrators that poll."""

from urllib.parse import urlencode

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.models import Scope
from crmsync.adapters.webhook import change_item
from crmsync.api.serializers import EventPageSerializer, EventQuerySerializer
from crmsync.selectors import events_after
from crmsync.services import outbox_sequence


class EventFeedView(APIView):
    required_scopes = {"GET": [Scope.EVENTS_READ]}

    @extend_schema(parameters=[EventQuerySerializer], responses={200: EventPageSerializer})
    def get(self, request: Request) -> Response:
        """Changes to contacts and consents, oldest first, after the cursor `after`: each is
        served once in this order, whatever order their transactions committed in (the same
        items the signed webhook POSTs)."""
        query = EventQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        after, limit = query.validated_data["after"], query.validated_data["limit"]
        # numbers the events committed since the last call: only numbered ones are served
        outbox_sequence()
        changes = events_after(after=after, limit=limit)
        next_cursor = str(changes[-1].sequence) if changes else str(after)
        full = len(changes) == limit
        return Response(
            {
                "results": [change_item(change) for change in changes],
                "next_cursor": next_cursor,
                "next": self._page_url(request, next_cursor, limit) if full else None,
            }
        )

    @staticmethod
    def _page_url(request: Request, cursor: str, limit: int) -> str:
        return request.build_absolute_uri(
            request.path + "?" + urlencode({"after": cursor, "limit": limit})
        )
