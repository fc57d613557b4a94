"""Admin for the CRM outbox: what was queued for the CRMs, and whether it went out."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from core.admin import ReadOnlyAdminMixin
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

    @admin.display(description=_("last error"))
    def error_excerpt(self, obj: OutboxEvent) -> str:
        return obj.last_error[:80]
