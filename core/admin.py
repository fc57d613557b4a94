"""Admin for API clients; also names the admin site and holds helpers the other admins share."""

from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from contacts.models import ContactStatus
from core.models import ApiClient, AuditEvent, Scope

admin.site.site_header = _("Consent Desk")
admin.site.site_title = _("Consent Desk")


def adopt_saved_instance(form_instance: models.Model, saved: models.Model) -> None:
    """Make the admin's unsaved form instance stand for the row a service created.

    The admin logs, links and redirects with the object it handed to `save_model`; when a
    service did the write, that object must carry the saved row's values and primary key.
    """
    for field in saved._meta.concrete_fields:
        setattr(form_instance, field.attname, getattr(saved, field.attname))
    form_instance._state.adding = False
    form_instance._state.db = saved._state.db


class ReadOnlyAdminMixin:
    """Rows written only by services (or never): viewable, never added, changed or deleted."""

    actions: Sequence[Any] | None = None

    def has_add_permission(self, request: HttpRequest, *args: object) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


class AuditedModelAdmin(admin.ModelAdmin):
    """An admin whose rows hold a person's data: each opening of a row's page by staff is
    written to the audit log the DPO reads, as `audit_view` says."""

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and response.status_code == 200:
            obj = self.get_object(request, unquote(object_id))
            if obj is not None:
                self.audit_view(request, obj)
        return response

    def audit_view(self, request: HttpRequest, obj: Any) -> None:
        raise NotImplementedError


class ReadOnlyInlineMixin(ReadOnlyAdminMixin):
    extra = 0
    can_delete = False


class ApiClientForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        label=_("scopes"), choices=Scope.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ApiClient
        fields = ["name", "scopes", "is_active"]


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    form = ApiClientForm
    list_display = ("name", "key_prefix", "scope_list", "is_active", "last_used_at", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "key_prefix")
    readonly_fields = ("key_prefix", "created_at", "last_used_at")
    actions = ["generate_new_keys"]

    @admin.display(description=_("scopes"))
    def scope_list(self, obj: ApiClient) -> str:
        return ", ".join(obj.scopes)

    def save_model(
        self, request: HttpRequest, obj: ApiClient, form: forms.ModelForm, change: bool
    ) -> None:
        key = None if change else obj.set_new_key()
        super().save_model(request, obj, form, change)
        if key is not None:
            self._show_key_once(request, obj, key)

    @admin.action(
        description=_("Generate a new key (the old one stops working)"), permissions=["change"]
    )
    def generate_new_keys(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> None:
        for client in queryset:
            key = client.set_new_key()
            client.save(update_fields=["key_hash", "key_prefix"])
            self._show_key_once(request, client, key)

    def _show_key_once(self, request: HttpRequest, client: ApiClient, key: str) -> None:
        self.message_user(
            request,
            _("Key of “%(name)s”, shown only this once: store it now. %(key)s")
            % {"name": client.name, "key": key},
            level=messages.WARNING,
        )


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The DPO's view of what staff did with personal data: by user, contact and date."""

    list_display = ("at", "username", "action", "contact_link", "ip")
    list_filter = ("action", ("user", admin.RelatedOnlyFieldListFilter))
    date_hierarchy = "at"
    search_fields = ("username", "=contact_public_id", "contact__email", "contact__last_name")
    fields = ("at", "username", "action", "contact_link", "contact_public_id", "details", "ip")
    readonly_fields = fields
    list_select_related = ("contact",)

    @admin.display(description=_("contact"))
    def contact_link(self, obj: AuditEvent) -> str:
        """The person by name and email (the DPO reads people, not UUIDs), or that they left."""
        if obj.contact is None:
            return str(_("erased contact")) if obj.contact_public_id else "-"
        if obj.contact.status == ContactStatus.ERASED:
            label = str(_("erased contact"))
        else:
            label = str(obj.contact)
        url = reverse("admin:core_auditevent_changelist") + f"?contact__id__exact={obj.contact_id}"
        return format_html('<a href="{}">{}</a>', url, label)


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    """Django's user admin, for the Administrators role too: only a superuser makes or changes
    a superuser or grants a permission outside the roles (groups from `setup_roles`)."""

    SUPERUSER_ONLY_FIELDS = ("is_superuser", "user_permissions")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser:
            return fieldsets
        return [
            (name, {**options, "fields": self._allowed(options["fields"])})
            for name, options in fieldsets
        ]

    def _allowed(self, fields: Sequence[str]) -> tuple[str, ...]:
        return tuple(field for field in fields if field not in self.SUPERUSER_ONLY_FIELDS)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)
