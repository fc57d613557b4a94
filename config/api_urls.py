"""The REST API `/api/v1/` (SPEC §4): each app's `api/urls.py`."""

from django.urls import include, path

urlpatterns = [
    path("", include("contacts.api.urls")),
    path("", include("consent.api.urls")),
    path("", include("campaigns.api.urls")),
    path("", include("privacy.api.urls")),
    path("", include("crmsync.api.urls")),
]
