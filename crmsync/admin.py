"""Admin for the CRM outbox: what was queued for the CRMs, and whether it went out."""

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from contacts.selectors import contact_find
from core.admin import AuditedModelAdmin, ReadOnlyAdminMixin
from core.models import AuditAction
from core.services import audit_record
from crmsync.models import OutboxEvent


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdminMixin, AuditedModelAdmin):
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

    def audit_view(self, request: HttpRequest, obj: OutboxEvent) -> None:
        """A payload holds a person's data: each opening is in the audit log."""
        audit_record(
            request=request,
            action=AuditAction.VIEW_OUTBOX_EVENT,
            contact=contact_find(public_id=obj.contact_public_id),
            details={"outbox_event": str(obj.pk), "topic": obj.topic},
        )

    @admin.display(description=_("last error"))
    def error_excerpt(self, obj: OutboxEvent) -> str:
        return obj.last_error[:80]
