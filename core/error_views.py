"""Django's error pages, answered as JSON under `/api/` (integrators never get an HTML page).

Errors raised inside a DRF view go through `core.api.exception_handler`; these cover the rest:
an unknown path or a malformed id (the URL resolver's 404), a body refused before the view
(400/413), a refused permission or CSRF check (403) and an unhandled exception (500).

People get a page in their language (LocaleMiddleware has already picked it) saying what
happened and what to do; inside the admin it looks like the admin.
"""

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views import defaults

API_PREFIX = "/api/"
ADMIN_PREFIX = "/admin/"


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse({"detail": body_too_big_message()}, status=413)
    return JsonResponse({"detail": _("Bad request.")}, status=400)


def is_admin(request: HttpRequest) -> bool:
    return request.path.startswith(ADMIN_PREFIX)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if is_api(request):
        return JsonResponse(
            {"detail": _("You do not have permission to perform this action.")}, status=403
        )
    template = "admin/403.html" if is_admin(request) else "403.html"
    return render(request, template, error_page_context(request), status=403)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a form sent without a valid security token (expired page, cookies off)."""
    if is_api(request):
        return JsonResponse({"detail": _("CSRF check failed.")}, status=403)
    context = error_page_context(request)
    context["base_template"] = "admin/base_site.html" if context["in_admin"] else "base.html"
    return render(request, "403_csrf.html", context, status=403)


def error_page_context(request: HttpRequest) -> dict[str, Any]:
    """What an error page needs: the admin's header (user tools) and whom to ask for help."""
    context: dict[str, Any] = {"dpo_contact": settings.DPO_CONTACT, "in_admin": is_admin(request)}
    if context["in_admin"]:
        context.update(admin.site.each_context(request))
    return context


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_api(request):
        return defaults.page_not_found(request, exception)
    return JsonResponse({"detail": _("Not found.")}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if not is_api(request):
        return defaults.server_error(request)
    return JsonResponse({"detail": _("A server error occurred.")}, status=500)


def body_too_big_message() -> str:
    return _("The request body is too large.")
