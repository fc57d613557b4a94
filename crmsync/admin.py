"""Admin for the CRM outbox: what was queued for the CRMs, and whether it went out."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from contacts.selectors import contact_find
from core.admin import ReadOnlyAdminMixin
from core.models import AuditAction
from core.services import audit_record
from crmsync.models import OutboxEvent


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "topic",
        "contact_public_id",
        "processed_at",
        "attempts",
        "error_excerpt",
    )
    list_filter = ("topic", ("processed_at", admin.EmptyFieldListFilter))
    search_fields = ("=contact_public_id",)
    date_hierarchy = "created_at"
    fields = (
        "id",
        "topic",
        "contact_public_id",
        "payload",
        "created_at",
        "processed_at",
        "attempts",
        "last_error",
    )
    readonly_fields = fields

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """A payload holds a person's data: each opening is in the audit log."""
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method != "GET" or response.status_code != 200:
            return response
        event = self.get_object(request, object_id)
        if event is not None:
            audit_record(
                request=request,
                action=AuditAction.VIEW_OUTBOX_EVENT,
                contact=contact_find(public_id=event.contact_public_id),
                details={"outbox_event": str(event.pk), "topic": event.topic},
            )
        return response

    @admin.display(description=_("last error"))
    def error_excerpt(self, obj: OutboxEvent) -> str:
        return obj.last_error[:80]
