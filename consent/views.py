"""The page behind the double opt-in confirmation link."""

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.views.decorators.http import require_http_methods

from consent.selectors import pending_states_for_confirmation
from consent.services import confirmation_token_read, consent_confirm
from consent.services.signups import (
    signup_confirm,
    signup_items,
    signup_link_used,
    signup_token_read,
)
from core.http import client_ip
from preferences.ratelimit import rate_limited
from preferences.views import private_page


# A recipient page like those of the preference center: private headers, rate limits, and
# its signed token masked in the logs (preferences.logging).
@private_page
@rate_limited
@require_http_methods(["GET", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows what is to be confirmed; POST confirms it (link scanners only GET)."""
    try:
        contact, record_uuids = confirmation_token_read(token)
    except signing.BadSignature:
        return render(request, "consent/confirm.html", {"invalid": True}, status=404)
    language = contact.reading_language(request)
    translation.activate(language)
    context: dict = {"confirmed": None}
    if request.method == "POST":
        context["confirmed"] = consent_confirm(
            contact=contact,
            record_uuids=record_uuids,
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
    else:
        context["pending"] = pending_states_for_confirmation(
            contact=contact, record_uuids=record_uuids
        )
        if not context["pending"]:
            context["confirmed"] = []
    response = render(request, "consent/confirm.html", context)
    response.headers["Content-Language"] = language
    return response


@private_page
@rate_limited
@require_http_methods(["GET", "POST"])
def confirm_signup(request: HttpRequest, token: str) -> HttpResponse:
    """The link emailed to a suppressed address with no contact: GET shows the grants it asks
    for; POST records them, lifts the suppression and brings the person back."""
    try:
        signup = signup_token_read(token)
    except signing.BadSignature:
        return render(request, "consent/confirm_signup.html", {"invalid": True}, status=404)
    language = signup.language or settings.LANGUAGE_CODE
    translation.activate(language)
    context: dict = {"confirmed": None}
    if request.method == "POST":
        context["confirmed"] = signup_confirm(
            request=signup,
            ip=client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
    else:
        context["items"] = [] if signup_link_used(signup) else signup_items(signup)
        if not context["items"]:
            context["confirmed"] = []
    response = render(request, "consent/confirm_signup.html", context)
    response.headers["Content-Language"] = language
    return response
