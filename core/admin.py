"""Admin for API clients; also names the admin site and holds helpers the other admins share."""

import json
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import AdminSplitDateTime
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst, format_lazy
from django.utils.translation import gettext_lazy as _
from django_celery_beat import admin as celery_beat_admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

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


class LabelledDateTimeMixin:
    """Django's date-and-time input is two boxes that its field's label does not reach
    (a MultiWidget has no id for the label): name each box after its field, so a screen
    reader announces "Aware at (date)" rather than nothing (WCAG 1.3.1, 4.1.2)."""

    def formfield_for_dbfield(
        self, db_field: models.Field, request: HttpRequest, **kwargs: Any
    ) -> forms.Field | None:
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)  # type: ignore[misc]
        widget = getattr(formfield, "widget", None)
        if isinstance(widget, AdminSplitDateTime):
            field = capfirst(db_field.verbose_name)
            date_box, time_box = widget.widgets
            date_box.attrs["aria-label"] = format_lazy(_("{field} (date)"), field=field)
            time_box.attrs["aria-label"] = format_lazy(_("{field} (time)"), field=field)
        return formfield


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


# The request of the audit log page being drawn: its columns link to a user's or a contact's
# page only when the viewer may open it (list_display methods get the row, not the request).
_audit_viewer: ContextVar[HttpRequest | None] = ContextVar("audit_viewer", default=None)

# The details' keys, in words (others are shown with their underscores as spaces).
DETAIL_LABELS = {
    "search": _("search"),
    "filters": _("filters"),
    "via": _("via"),
    "by": _("by"),
    "merged": _("merged contact"),
    "survivor": _("kept contact"),
    "request": _("privacy request"),
    "format": _("format"),
    "filed": _("request filed"),
    "export": _("export"),
    "campaign": _("campaign"),
    "outbox_event": _("outbox event"),
    "topic": _("topic"),
    "entry": _("archive entry"),
    "why": _("reason"),
    "dead_letters": _("dead letters"),
    "resolved": _("resolved"),
}


def _viewer_may(permission: str) -> bool:
    request = _audit_viewer.get()
    return request is not None and request.user.has_perm(permission)


def detail_value_in_words(value: Any) -> str | None:
    """A detail's value as text, or None when it is not simple (then the JSON is shown)."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return str(_("yes") if value else _("no"))
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(item, str | int) for item in value):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict) and all(isinstance(item, str | int) for item in value.values()):
        return ", ".join(f"{key}={item}" for key, item in value.items())
    return None


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The DPO's view of what staff did with personal data: by user, contact and date."""

    list_display = ("at", "staff_user", "action", "contact_link", "details_in_words", "ip")
    list_filter = ("action", ("user", admin.RelatedOnlyFieldListFilter))
    date_hierarchy = "at"
    search_fields = ("username", "=contact_public_id", "contact__email", "contact__last_name")
    fields = (
        "at",
        "staff_user",
        "action",
        "contact_link",
        "contact_public_id",
        "details_in_words",
        "details",
        "ip",
    )
    readonly_fields = fields
    list_select_related = ("contact", "user")

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        token = _audit_viewer.set(request)
        try:
            return _rendered(super().changelist_view(request, extra_context))
        finally:
            _audit_viewer.reset(token)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        token = _audit_viewer.set(request)
        try:
            return _rendered(super().change_view(request, object_id, form_url, extra_context))
        finally:
            _audit_viewer.reset(token)

    @admin.display(description=_("staff user"), ordering="username")
    def staff_user(self, obj: AuditEvent) -> str:
        """Full name (username), linked to the user's page when the viewer may open it."""
        user = obj.user
        if user is None:  # the account was deleted since: its username stays
            return obj.username or "-"
        full_name = user.get_full_name()
        label = f"{full_name} ({obj.username})" if full_name else obj.username
        if not _viewer_may("auth.view_user"):
            return label
        url = reverse("admin:auth_user_change", args=[user.pk])
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description=_("contact"))
    def contact_link(self, obj: AuditEvent) -> str:
        """The person by name and email (the DPO reads people, not UUIDs), or that they left."""
        if obj.contact is None:
            return str(_("erased contact")) if obj.contact_public_id else "-"
        if obj.contact.status == ContactStatus.ERASED:
            return str(_("erased contact"))
        events = reverse("admin:core_auditevent_changelist")
        events += f"?contact__id__exact={obj.contact_id}"
        if not _viewer_may("contacts.view_contact"):
            return format_html('{} <a href="{}">({})</a>', obj.contact, events, _("events"))
        page = reverse("admin:contacts_contact_change", args=[obj.contact_id])
        return format_html(
            '<a href="{}">{}</a> <a href="{}" class="audit-events-link">({})</a>',
            page,
            obj.contact,
            events,
            _("events"),
        )

    @admin.display(description=_("details"))
    def details_in_words(self, obj: AuditEvent) -> str:
        """Each detail as "label: value"; what is not simple keeps its JSON."""
        details = obj.details
        if not isinstance(details, dict):
            return str(details) if details else "-"
        if not details:
            return "-"
        lines = []
        for key, value in details.items():
            text = detail_value_in_words(value)
            if text is None:
                text = json.dumps(value, ensure_ascii=False, cls=DjangoJSONEncoder)
            lines.append((DETAIL_LABELS.get(key, key.replace("_", " ")), text))
        return format_html_join("", '<span class="audit-detail">{}: {}</span>', lines)


def _rendered(response: HttpResponse) -> HttpResponse:
    """Render a template response now, while the audit viewer is known."""
    if isinstance(response, TemplateResponse):
        response.render()
    return response


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

    def _allowed(self, fields: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(field for field in fields if field not in self.SUPERUSER_ONLY_FIELDS)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)


# django-celery-beat's admin, with names for what it leaves unnamed (its column "scheduler",
# its read-only "crontab_translation" and "human_readable", its field "Task Name" that is not
# marked for translation): the Administrators read these pages in French too. The rest of
# its French comes from core/third_party_labels.py.


class TaskNameListFilter(admin.AllValuesFieldListFilter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.title = str(_("task name"))


class PeriodicTaskInline(celery_beat_admin.PeriodicTaskInline):
    """The tasks a schedule runs, with the task's name in words ("Task Name" is not marked
    for translation by the app)."""

    fields = ("name", "task_name", "args", "kwargs")
    readonly_fields = fields

    @admin.display(description=_("task name"))
    def task_name(self, obj: PeriodicTask) -> str:
        return obj.task


for schedule_model in (
    PeriodicTask,
    CrontabSchedule,
    IntervalSchedule,
    SolarSchedule,
    ClockedSchedule,
):
    admin.site.unregister(schedule_model)


@admin.register(IntervalSchedule)
class IntervalScheduleAdmin(celery_beat_admin.IntervalScheduleAdmin):
    inlines = [PeriodicTaskInline]


@admin.register(SolarSchedule)
class SolarScheduleAdmin(celery_beat_admin.SolarScheduleAdmin):
    inlines = [PeriodicTaskInline]


@admin.register(ClockedSchedule)
class ClockedScheduleAdmin(celery_beat_admin.ClockedScheduleAdmin):
    inlines = [PeriodicTaskInline]


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(celery_beat_admin.PeriodicTaskAdmin):
    list_display = ("name", "enabled", "schedule", "start_time", "last_run_at", "one_off")
    list_filter = ["enabled", "one_off", ("task", TaskNameListFilter), "start_time", "last_run_at"]

    @admin.display(description=_("schedule"))
    def schedule(self, obj: PeriodicTask) -> str:
        return str(obj.scheduler)

    @admin.display(description=_("cron schedule in words"))
    def crontab_translation(self, obj: PeriodicTask) -> str:
        return super().crontab_translation(obj)


@admin.register(CrontabSchedule)
class CrontabScheduleAdmin(celery_beat_admin.CrontabScheduleAdmin):
    inlines = [PeriodicTaskInline]
    list_display = ("__str__", "in_words")
    fields = (
        "in_words",
        "minute",
        "hour",
        "day_of_month",
        "month_of_year",
        "day_of_week",
        "timezone",
    )
    readonly_fields = ("in_words",)

    @admin.display(description=_("in words"))
    def in_words(self, obj: CrontabSchedule) -> str:
        return obj.human_readable
