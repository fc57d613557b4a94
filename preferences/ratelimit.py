"""Rate limits of the recipient pages: per token and per IP, answered with a 429 page."""

import hashlib
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_ratelimit.core import is_ratelimited

GROUP = "preferences"


def _token_key(group: str, request: HttpRequest) -> str:
    token = request.resolver_match.kwargs.get("token", "") if request.resolver_match else ""
    return hashlib.sha256(token.encode()).hexdigest()


def rate_limited(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Refuse with 429 once a token or an IP made too many requests (counts every request)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        limits = (
            (_token_key, settings.PREFERENCES_RATE_PER_TOKEN),
            ("ip", settings.PREFERENCES_RATE_PER_IP),
        )
        limited = False
        for key, rate in limits:
            # evaluate both so that each counter counts every request
            limited |= is_ratelimited(
                request, group=GROUP, key=key, rate=rate, method=is_ratelimited.ALL, increment=True
            )
        if limited:
            response = render(request, "preferences/limited.html", status=429)
            response["Retry-After"] = "60"
            return response
        return view(request, *args, **kwargs)

    return wrapper
