"""Rate limits of the recipient pages: per token and per IP, answered with a 429 page.

The IP is `core.http.client_ip` (django-ratelimit's `RATELIMIT_IP_META_KEY`): behind a trusted
proxy, the client named in `X-Forwarded-For`; otherwise the peer, whatever header it sends.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_ratelimit.core import is_ratelimited

from core.tokens import token_hash

GROUP = "preferences"


def _token_key(group: str, request: HttpRequest) -> str:
    token = request.resolver_match.kwargs.get("token", "") if request.resolver_match else ""
    return token_hash(token)


def _over(request: HttpRequest, key: Any, rate: str) -> bool:
    return is_ratelimited(
        request, group=GROUP, key=key, rate=rate, method=is_ratelimited.ALL, increment=True
    )


def _limited_page(request: HttpRequest) -> HttpResponse:
    response = render(request, "preferences/limited.html", status=429)
    response["Retry-After"] = "60"
    return response


def is_one_click(request: HttpRequest) -> bool:
    """An RFC 8058 one-click unsubscribe: a POST whose body is `List-Unsubscribe=One-Click`."""
    return request.method == "POST" and request.POST.get("List-Unsubscribe") == "One-Click"


View = Callable[..., HttpResponse]


def rate_limited(
    view: View | None = None, *, ip_exempt: Callable[[HttpRequest], bool] | None = None
) -> Any:
    """Refuse with 429 once a token or an IP made too many requests (counts every request).

    `ip_exempt`: requests the per-IP limit never refuses (mailbox providers send one-click
    unsubscribes by the thousand from a few addresses). The token limit still applies to them,
    and one that finds no live link (a guess) still counts towards, and is refused by, the
    IP limit.
    """

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            token_rate, ip_rate = (
                settings.PREFERENCES_RATE_PER_TOKEN,
                settings.PREFERENCES_RATE_PER_IP,
            )
            if ip_exempt is not None and ip_exempt(request):
                if _over(request, _token_key, token_rate):
                    return _limited_page(request)
                response = view(request, *args, **kwargs)
                if response.status_code == 404 and _over(request, "ip", ip_rate):
                    return _limited_page(request)
                return response
            # evaluate both so that each counter counts every request
            limited = _over(request, _token_key, token_rate)
            limited |= _over(request, "ip", ip_rate)
            if limited:
                return _limited_page(request)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate
