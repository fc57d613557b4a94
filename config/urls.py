from csp.decorators import csp_replace
from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from contacts.webhooks import twilio_inbound
from core.landing import landing
from core.views import health

urlpatterns = [
    path("", landing, name="landing"),
    path("health/", health, name="health"),
    path("api/v1/", include("config.api_urls")),
    # ESP tracking webhooks (signatures checked by django-anymail; contacts/webhooks.py)
    path("anymail/", include("anymail.urls")),
    path("sms/twilio/inbound/", twilio_inbound, name="twilio-inbound"),
    # the CRMs' change notifications, signed or with a URL token (crmsync/notifications.py)
    path("crm/notify/", include("crmsync.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI's start-up script as a file of its own (the split view), so that the page's
    # CSP needs no inline script; its inline <style> needs inline styles (without the admin's
    # hash, which would void 'unsafe-inline').
    path(
        "api/docs/",
        csp_replace({"style-src": ["'self'", "'unsafe-inline'"]})(
            SpectacularSwaggerSplitView.as_view(url_name="schema")
        ),
        name="api-docs",
    ),
    path("admin/", admin.site.urls),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("preferences.urls")),
]

# JSON under /api/, Django's pages elsewhere
handler400 = "core.error_views.bad_request"
handler403 = "core.error_views.permission_denied"
handler404 = "core.error_views.page_not_found"
handler500 = "core.error_views.server_error"

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
