"""`/`: a small page pointing a visitor to the admin, the API docs and the health check."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def landing(request: HttpRequest) -> HttpResponse:
    """The landing page: no personal data, no script."""
    return render(request, "core/landing.html")
