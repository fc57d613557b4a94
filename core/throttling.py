"""Per-client request rate of the API, counted in the shared cache (Redis in production)."""

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from core.models import ApiClient


class ApiClientRateThrottle(SimpleRateThrottle):
    """`API_THROTTLE_RATE` requests per API client; past it, 429 with `Retry-After`."""

    scope = "api_client"

    def get_rate(self) -> str | None:
        # read per request, not at import: tests and operators may change it
        return settings.API_THROTTLE_RATE or None

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if not isinstance(request.auth, ApiClient):
            return None  # refused before this, or a public page such as the schema
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}
