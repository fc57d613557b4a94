"""Admin for API clients; also names the admin site and holds helpers the other admins share."""

import json
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import django_otp.plugins.otp_totp.admin  # noqa: F401 - registers the model's admin, replaced below
from cron_descriptor import (
    ExpressionDescriptor,
    FormatException,
    MissingFieldException,
    Options,
    WrongArgumentException,
)
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import AdminSplitDateTime
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst, format_lazy
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from django_celery_beat import admin as celery_beat_admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
    cronexp,
)
from django_otp.plugins.otp_totp.models import TOTPDevice

from consent.models import Channel, ConsentAction, SourceKind
from contacts.models import ContactStatus, NoteStatus
from contacts.screening import SpecialCategory
from core.models import ApiClient, AuditAction, AuditEvent, Scope, StaffDevice
from core.services import audit_record
from crmsync.models import OutboxTopic
from privacy.models import PrivacyRequestStatus, PrivacyRequestType

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

# The details' keys, in words: every key an `audit_record` call writes (others, from older
# entries, are shown with their underscores as spaces).
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
    "failed": _("failed"),
    "busy": _("busy"),
    "connection": _("connection"),
    "created": _("created"),
    "changed": _("fields changed"),
    "channel": _("channel"),
    "before": _("before"),
    "after": _("after"),
    "default": _("the default"),
    "last_seal": _("last seal"),
    "file": _("file"),
    "applied": _("applied"),
    "unknown": _("unknown"),
    "rejected": _("rejected"),
    "import": _("import"),
    "sha256": _("file fingerprint (SHA-256)"),
    "rows": _("rows"),
    "consent": _("consent"),
    "record": _("consent record"),
    "note": _("note"),
    "status": _("status"),
    "categories": _("special categories"),
    "comment": _("comment"),
    "source": _("source"),
    "reference": _("reference"),
    "purpose": _("purpose"),
    "action": _("action"),
    "given_at": _("given at"),
    "document_sha256": _("signed document fingerprint (SHA-256)"),
    "next_status": _("new status"),
    "extend_months": _("deadline extended by (months)"),
    "new_extension_reason": _("reason for the extension"),
    "account": _("staff account"),
    "fields": _("fields changed"),
    "added": _("roles added"),
    "removed": _("roles removed"),
    "device": _("device"),
    "superuser_before": _("superuser before"),
    "superuser_after": _("superuser after"),
    "permissions_added": _("permissions added"),
    "permissions_removed": _("permissions removed"),
    "job": _("periodic job"),
    "jobs": _("periodic jobs"),
    "done": _("what was done"),
}


class JobChange(models.TextChoices):
    """What was done to periodic jobs, in the audit log."""

    CREATED = "created", _("added")
    CHANGED = "changed", _("changed")
    DELETED = "deleted", _("deleted")
    ENABLED = "enabled", _("enabled")
    DISABLED = "disabled", _("disabled")
    TOGGLED = "toggled", _("switched on or off")
    RUN = "run", _("run now")


# The details whose values are a known choice: shown by the choice's label, not its code.
DETAIL_CHOICES: dict[str, type[models.TextChoices]] = {
    "source": SourceKind,
    "action": ConsentAction,
    "channel": Channel,
    "status": NoteStatus,
    "categories": SpecialCategory,
    "filed": PrivacyRequestType,
    "next_status": PrivacyRequestStatus,
    "topic": OutboxTopic,
    "done": JobChange,
}


def detail_in_words(key: str, value: Any) -> str | None:
    """A detail's value as text, its choices by their labels; None when it is not simple."""
    choices = DETAIL_CHOICES.get(key)
    if choices is not None:
        if isinstance(value, str) and value in choices.values:
            return str(choices(value).label)
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            labels = [
                str(choices(item).label) if item in choices.values else item for item in value
            ]
            return ", ".join(labels) if labels else "-"
    return detail_value_in_words(value)


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
            text = detail_in_words(key, value)
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
    """Django's user admin, for the Administrators role too. Whoever assigns roles can take any
    role, so only a superuser changes anyone's groups (their own too), superuser status or
    loose permissions, sets another person's password, or touches a superuser's account; an
    account a non-superuser creates has no password until a superuser sets one. Each change
    to an account is written to the audit log."""

    # never part of a non-superuser's form; a POST that carries one is refused
    SUPERUSER_ONLY_FIELDS = ("is_superuser", "user_permissions", "groups")
    # shown to a non-superuser, read-only: which roles the person has
    SHOWN_READ_ONLY = ("groups",)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser:
            return fieldsets
        if obj is None:
            return ((None, {"fields": StaffAccountCreationForm.Meta.fields}),)
        hidden = set(self.SUPERUSER_ONLY_FIELDS) - set(self.SHOWN_READ_ONLY)
        if obj is not None and obj.pk != request.user.pk:
            hidden.add("password")  # its link leads to setting the password: superusers only
        return [
            (name, {**options, "fields": tuple(f for f in options["fields"] if f not in hidden)})
            for name, options in fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = tuple(super().get_readonly_fields(request, obj))
        if request.user.is_superuser or obj is None:
            return readonly
        return readonly + self.SHOWN_READ_ONLY

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        # UserAdmin.get_form takes no `change` (it is passed on in kwargs)
        if obj is None and not request.user.is_superuser:
            kwargs["form"] = StaffAccountCreationForm
        return super().get_form(request, obj, change=change, **kwargs)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        forged = set(self.SUPERUSER_ONLY_FIELDS) & set(request.POST)
        if request.method == "POST" and forged and not request.user.is_superuser:
            raise PermissionDenied
        return super().changeform_view(request, object_id, form_url, extra_context)

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        user = self.get_object(request, unquote(id))
        if not request.user.is_superuser and (user is None or user.pk != request.user.pk):
            raise PermissionDenied
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302 and user is not None:
            audit_record(
                request=request,
                action=AuditAction.STAFF_PASSWORD_SET,
                details={"account": user.get_username()},
            )
        return response

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(
        self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        account = obj.get_username()
        if not change:
            audit_record(
                request=request,
                action=AuditAction.STAFF_ACCOUNT_CREATED,
                details={"account": account},
            )
            return
        changed = [
            name
            for name in form.changed_data
            if name not in self.SUPERUSER_ONLY_FIELDS and _really_changed(form, name)
        ]
        if "is_active" in changed and not obj.is_active:
            changed.remove("is_active")
            audit_record(
                request=request,
                action=AuditAction.STAFF_ACCOUNT_DEACTIVATED,
                details={"account": account},
            )
        if changed:
            audit_record(
                request=request,
                action=AuditAction.STAFF_ACCOUNT_CHANGED,
                details={"account": account, "fields": changed},
            )

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)
        self._audit_privileges(request, form)
        if "groups" not in form.changed_data:
            return
        before = {group.name for group in form.initial.get("groups") or []}
        after = {group.name for group in form.cleaned_data["groups"]}
        audit_record(
            request=request,
            action=AuditAction.STAFF_GROUPS_CHANGED,
            details={
                "account": form.instance.get_username(),
                "added": sorted(after - before),
                "removed": sorted(before - after),
            },
        )

    def _audit_privileges(self, request: HttpRequest, form: forms.ModelForm) -> None:
        """Superuser status and loose permissions, before and after: each takes every role."""
        details: dict[str, Any] = {}
        if "is_superuser" in form.changed_data:
            details["superuser_before"] = bool(form.initial.get("is_superuser"))
            details["superuser_after"] = form.cleaned_data["is_superuser"]
        if "user_permissions" in form.changed_data:
            before = {_permission_name(p) for p in form.initial.get("user_permissions") or []}
            after = {_permission_name(p) for p in form.cleaned_data["user_permissions"]}
            details["permissions_added"] = sorted(after - before)
            details["permissions_removed"] = sorted(before - after)
        if details:
            audit_record(
                request=request,
                action=AuditAction.STAFF_PRIVILEGES_CHANGED,
                details={"account": form.instance.get_username(), **details},
            )


def _permission_name(permission: Any) -> str:
    """A permission as "app_label.codename" (the form's initial value may be a primary key)."""
    if not isinstance(permission, Permission):
        permission = Permission.objects.select_related("content_type").get(pk=permission)
    return f"{permission.content_type.app_label}.{permission.codename}"


class StaffAccountCreationForm(forms.ModelForm):
    """A new account made by a non-superuser: no password (it cannot log in) until a
    superuser sets one, so that its maker never knows the password of a future role."""

    class Meta:
        model = User
        fields = ("username", "first_name", "last_name", "email")

    def save(self, commit: bool = True) -> Any:
        user = super().save(commit=False)
        user.set_unusable_password()
        if commit:
            user.save()
        return user


def _really_changed(form: forms.ModelForm, name: str) -> bool:
    """Whether a changed field holds another value: a date and time shown to the second
    (the date joined, say) comes back without its microseconds, and is not a change."""
    before, after = form.initial.get(name), form.cleaned_data.get(name)
    if isinstance(before, datetime) and isinstance(after, datetime):
        return before.replace(microsecond=0) != after.replace(microsecond=0)
    return True


admin.site.unregister(TOTPDevice)


@admin.register(StaffDevice)
class StaffDeviceAdmin(admin.ModelAdmin):
    """Second factors: a lost phone's device is deleted and its owner enrols a new one at the
    next login, with their own password. Not one's own device (it would drop one's own second
    factor), a superuser's, nor that of an account with a role or permission one does not
    hold oneself (whoever knows its password would enrol and take the role), unless one is a
    superuser; each deletion is audited."""

    list_display = ("owner", "device_name", "device_created", "device_last_used", "ready")
    list_filter = ("confirmed",)
    search_fields = ("user__username", "user__email", "name")
    list_select_related = ("user",)
    # nobody types a device in: each person enrols their own at login (/admin/otp/enrol/),
    # and its secret key is never shown again
    fields = ("owner", "device_name", "device_created", "device_last_used", "ready", "failures")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("staff member"), ordering="user__username")
    def owner(self, obj: TOTPDevice) -> str:
        return str(obj.user)

    @admin.display(description=_("device name"), ordering="name")
    def device_name(self, obj: TOTPDevice) -> str:
        return obj.name

    @admin.display(description=_("enrolled at"), ordering="created_at")
    def device_created(self, obj: TOTPDevice) -> Any:
        return obj.created_at

    @admin.display(description=_("last used at"), ordering="last_used_at")
    def device_last_used(self, obj: TOTPDevice) -> Any:
        return obj.last_used_at

    @admin.display(description=_("ready for use"), boolean=True)
    def ready(self, obj: TOTPDevice) -> bool:
        return bool(obj.confirmed)

    @admin.display(description=_("failed codes in a row"))
    def failures(self, obj: TOTPDevice) -> int:
        return int(obj.throttling_failure_count)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        protected = obj is not None and (
            obj.user_id == request.user.pk
            or obj.user.is_superuser
            or _holds_more_than(obj.user, request.user)
        )
        if protected and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: TOTPDevice) -> None:
        self.delete_queryset(request, TOTPDevice.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[TOTPDevice]) -> None:
        devices = list(queryset.select_related("user"))
        if not all(self.has_delete_permission(request, device) for device in devices):
            raise PermissionDenied
        super().delete_queryset(request, queryset)
        for device in devices:
            audit_record(
                request=request,
                action=AuditAction.STAFF_DEVICE_DELETED,
                details={"account": device.user.get_username(), "device": device.name},
            )


def _holds_more_than(account: Any, staff: Any) -> bool:
    """Whether an account has a group or a permission the staff user has not."""
    groups = set(account.groups.values_list("pk", flat=True))
    if groups - set(staff.groups.values_list("pk", flat=True)):
        return True
    return bool(account.get_all_permissions() - staff.get_all_permissions())


# django-celery-beat's admin, with names for what it leaves unnamed (its column "scheduler",
# its read-only "crontab_translation" and "human_readable", its field "Task Name" that is not
# marked for translation): the Administrators read these pages in French too. The rest of
# its French comes from core/third_party_labels.py.


CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
CRON_LOCALES = {"fr": "fr_FR", "en": "en_US"}


def cron_in_words(schedule: CrontabSchedule) -> str:
    """A cron schedule in words in the reader's language ("À 03:00 Europe/Paris"):
    django-celery-beat's own `human_readable` is always English."""
    expression = " ".join(cronexp(getattr(schedule, name)) for name in CRON_FIELDS)
    options = Options()
    options.locale_code = CRON_LOCALES.get((get_language() or "fr")[:2], "fr_FR")
    options.use_24hour_time_format = True
    try:
        words = ExpressionDescriptor(expression, options).get_description()
    except (FormatException, MissingFieldException, WrongArgumentException):
        words = expression
    return f"{words} {schedule.timezone}"


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


class ProductScheduleMixin:
    """A schedule one of the product's own jobs runs on is a superuser's to change: an
    interval of one second, or one year, would change that job too."""

    def _runs_a_product_job(self, request: HttpRequest, obj: Any) -> bool:
        if obj is None or request.user.is_superuser:
            return False
        return obj.periodictask_set.filter(name__in=list(settings.CELERY_BEAT_SCHEDULE)).exists()

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self._runs_a_product_job(request, obj):
            return False
        return super().has_change_permission(request, obj)  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if self._runs_a_product_job(request, obj):
            return False
        return super().has_delete_permission(request, obj)  # type: ignore[misc]


@admin.register(IntervalSchedule)
class IntervalScheduleAdmin(ProductScheduleMixin, celery_beat_admin.IntervalScheduleAdmin):
    inlines = [PeriodicTaskInline]


@admin.register(SolarSchedule)
class SolarScheduleAdmin(ProductScheduleMixin, celery_beat_admin.SolarScheduleAdmin):
    inlines = [PeriodicTaskInline]


@admin.register(ClockedSchedule)
class ClockedScheduleAdmin(ProductScheduleMixin, celery_beat_admin.ClockedScheduleAdmin):
    inlines = [PeriodicTaskInline]


class ScheduleOnlyPeriodicTaskForm(celery_beat_admin.PeriodicTaskForm):
    """A periodic task's schedule, its task and arguments left as they are."""

    regtask = None
    task = None

    def clean(self) -> dict[str, Any]:
        data = forms.ModelForm.clean(self) or {}
        if data.get("expire_seconds") is not None and data.get("expires"):
            raise forms.ValidationError(
                _("Set either when the task expires or after how many seconds, not both.")
            )
        return data


def is_product_job(job: PeriodicTask) -> bool:
    """Whether a periodic job is one of the product's own (settings.CELERY_BEAT_SCHEDULE):
    sealing and verifying the ledger, retention, a request's deadline reminders..."""
    return job.name in settings.CELERY_BEAT_SCHEDULE


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(celery_beat_admin.PeriodicTaskAdmin):
    """Beat's schedules. A task with its arguments can do anything Celery can (send a
    confirmation link to any address, say): only a superuser adds one, changes what it runs
    or runs it now; the Administrators change when it runs, except for the product's own
    jobs (read-only to them: sealing the ledger, retention...). Every change is audited."""

    list_display = ("name", "enabled", "schedule", "start_time", "last_run_at", "one_off")
    list_filter = ["enabled", "one_off", ("task", TaskNameListFilter), "start_time", "last_run_at"]
    # the task is shown by `task_name`: the model's own label is not marked for translation
    WHAT_IT_RUNS = (
        "task_name",
        "args",
        "kwargs",
        "queue",
        "exchange",
        "routing_key",
        "headers",
        "priority",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and is_product_job(obj) and not request.user.is_superuser:
            return False  # shown read-only
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and is_product_job(obj) and not request.user.is_superuser:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if not request.user.is_superuser:
            actions.pop("run_tasks", None)
        return actions

    def _jobs_one_may_change(
        self, request: HttpRequest, queryset: QuerySet[PeriodicTask]
    ) -> QuerySet[PeriodicTask]:
        """The selected jobs, less the product's own ones for a non-superuser (with a word)."""
        if request.user.is_superuser:
            return queryset
        kept = queryset.exclude(name__in=list(settings.CELERY_BEAT_SCHEDULE))
        if kept.count() != queryset.count():
            self.message_user(
                request,
                _("The product's own jobs were left as they are: only a superuser changes them."),
                level=messages.WARNING,
            )
        return kept

    def _bulk(
        self, request: HttpRequest, queryset: QuerySet[PeriodicTask], done: str, action: Any
    ) -> None:
        queryset = self._jobs_one_may_change(request, queryset)
        jobs = sorted(queryset.values_list("name", flat=True))
        if not jobs:
            return
        action(self, request, queryset)
        audit_record(
            request=request,
            action=AuditAction.PERIODIC_TASK_CHANGED,
            details={"jobs": jobs, "done": done},
        )

    @admin.action(description=_("Enable selected tasks"))
    def enable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        parent = celery_beat_admin.PeriodicTaskAdmin.enable_tasks
        self._bulk(request, queryset, JobChange.ENABLED, parent)

    @admin.action(description=_("Disable selected tasks"))
    def disable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        parent = celery_beat_admin.PeriodicTaskAdmin.disable_tasks
        self._bulk(request, queryset, JobChange.DISABLED, parent)

    @admin.action(description=_("Toggle activity of selected tasks"))
    def toggle_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        parent = celery_beat_admin.PeriodicTaskAdmin.toggle_tasks
        self._bulk(request, queryset, JobChange.TOGGLED, parent)

    @admin.action(description=_("Run selected tasks"))
    def run_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        parent = celery_beat_admin.PeriodicTaskAdmin.run_tasks
        self._bulk(request, queryset, JobChange.RUN, parent)

    def save_model(
        self, request: HttpRequest, obj: PeriodicTask, form: forms.ModelForm, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        audit_record(
            request=request,
            action=AuditAction.PERIODIC_TASK_CHANGED,
            details={
                "job": obj.name,
                "done": JobChange.CHANGED if change else JobChange.CREATED,
                "fields": [name for name in form.changed_data if _really_changed(form, name)],
            },
        )

    def delete_model(self, request: HttpRequest, obj: PeriodicTask) -> None:
        self.delete_queryset(request, PeriodicTask.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        jobs = list(queryset)
        if not all(self.has_delete_permission(request, job) for job in jobs):
            raise PermissionDenied
        super().delete_queryset(request, queryset)
        audit_record(
            request=request,
            action=AuditAction.PERIODIC_TASK_CHANGED,
            details={"jobs": sorted(job.name for job in jobs), "done": JobChange.DELETED},
        )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser:
            return fieldsets
        shown = {"regtask": None, "task": "task_name"}
        return [
            (
                name,
                {
                    **options,
                    "fields": tuple(
                        shown.get(field, field)
                        for field in options["fields"]
                        if shown.get(field, field) is not None
                    ),
                },
            )
            for name, options in fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        readonly = tuple(super().get_readonly_fields(request, obj))
        if request.user.is_superuser:
            return readonly
        return readonly + self.WHAT_IT_RUNS

    @admin.display(description=_("task name"))
    def task_name(self, obj: PeriodicTask) -> str:
        return obj.task

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if not request.user.is_superuser:
            kwargs["form"] = ScheduleOnlyPeriodicTaskForm
        return super().get_form(request, obj, change, **kwargs)

    @admin.display(description=_("schedule"))
    def schedule(self, obj: PeriodicTask) -> str:
        return str(obj.scheduler)

    @admin.display(description=_("cron schedule in words"))
    def crontab_translation(self, obj: PeriodicTask) -> str:
        return cron_in_words(obj.crontab) if obj.crontab else ""


@admin.register(CrontabSchedule)
class CrontabScheduleAdmin(ProductScheduleMixin, celery_beat_admin.CrontabScheduleAdmin):
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
        return cron_in_words(obj)
