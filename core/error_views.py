"""Django's error pages, answered as JSON under `/api/` (integrators never get an HTML page).

Errors raised inside a DRF view go through `core.api.exception_handler`; these cover the rest:
an unknown path or a malformed id (the URL resolver's 404), a body refused before the view
(400/413) and an unhandled exception (500).
"""

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views import defaults

API_PREFIX = "/api/"


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse({"detail": body_too_big_message()}, status=413)
    return JsonResponse({"detail": _("Bad request.")}, status=400)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not is_api(request):
        return defaults.permission_denied(request, exception)
    return JsonResponse(
        {"detail": _("You do not have permission to perform this action.")}, status=403
    )


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
