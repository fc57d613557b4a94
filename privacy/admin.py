"""Admin for the DPO's register of privacy requests: deadlines, handling, exports."""

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.functional import Promise
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from consent.models import SourceKind
from core.admin import ReadOnlyInlineMixin, adopt_saved_instance
from core.management.commands.setup_roles import DPO
from core.models import AuditAction
from core.services import audit_record
from privacy.models import (
    ErasureAcknowledgement,
    PrivacyRequest,
    PrivacyRequestEvent,
    PrivacyRequestStatus,
    PrivacyRequestType,
    ProofArchiveEntry,
)
from privacy.proof import proof_archive_read
from privacy.selectors import request_deadline_in_words
from privacy.services import OPEN_STATUSES as OPEN_REQUEST_STATUSES
from privacy.services import TRANSITIONS as REQUEST_TRANSITIONS
from privacy.services import (
    privacy_request_extend,
    privacy_request_extension_check,
    privacy_request_file,
    privacy_request_file_check,
    privacy_request_transition,
    privacy_request_transition_check,
)


class ErasureAcknowledgementInline(ReadOnlyInlineMixin, admin.TabularInline):
    """Which CRMs erased the person, and which are still awaited (GDPR Art. 17(2), 19)."""

    model = ErasureAcknowledgement
    fields = ("connection", "status", "attempts", "next_attempt_at", "at", "error")
    readonly_fields = fields
    verbose_name_plural = _("CRM acknowledgements of the erasure")


class PrivacyRequestEventInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = PrivacyRequestEvent
    fields = ("status", "at", "by", "note", "person_notified_at")
    readonly_fields = fields


def _add_service_errors(
    form: forms.BaseForm, error: ValidationError, fields: dict[str, str | None] | None = None
) -> None:
    """Show a service's errors next to the form fields they name (`fields` maps the service's
    names to the form's; None: above the form). A field that failed its own validation shows
    only that error."""
    valid = set(form.cleaned_data)
    for name, messages_ in error.message_dict.items():
        field = (fields or {}).get(name, name)
        if field is None or field in valid:
            for message in messages_:
                form.add_error(field, message)


class PrivacyRequestAddForm(forms.ModelForm):
    class Meta:
        model = PrivacyRequest
        fields = ["contact", "type", "details", "received_at"]
        help_texts = {
            "received_at": _(
                "When the request reached us (a letter's date of receipt, say): the one-month "
                "deadline runs from it."
            )
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["received_at"].initial = timezone.now
        # only the API keeps a request without a contact (an unknown email); the DPO names one
        self.fields["contact"].required = True

    def clean(self) -> dict[str, Any]:
        # The service refuses it too, but only a form error shows next to the field (not a 500).
        super().clean()
        data = self.cleaned_data
        try:
            privacy_request_file_check(
                contact=data.get("contact"),
                type=data.get("type", ""),
                received_at=data.get("received_at"),
            )
        except ValidationError as error:
            _add_service_errors(self, error)
        return data


class PrivacyRequestHandleForm(forms.ModelForm):
    """What the DPO does with a request: move its status, extend its deadline (Art. 12(3))."""

    next_status = forms.ChoiceField(label=_("New status"), required=False)
    note = forms.CharField(
        label=_("Note"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    extend_months = forms.TypedChoiceField(
        label=_("Extend the deadline by"),
        coerce=int,
        required=False,
        empty_value=0,  # type: ignore[arg-type]  # Django takes any value; the stubs say str
        choices=[(0, "-"), (1, _("one month")), (2, _("two months"))],
    )
    new_extension_reason = forms.CharField(
        label=_("Reason for the extension"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    class Meta:
        model = PrivacyRequest
        fields: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        allowed = REQUEST_TRANSITIONS.get(self.instance.status, set())
        labels = dict(PrivacyRequestStatus.choices)
        next_status = self.fields["next_status"]
        assert isinstance(next_status, forms.ChoiceField)
        next_status.choices = [("", "-")] + [
            (status, labels[status]) for status in PrivacyRequestStatus.values if status in allowed
        ]

    def clean(self) -> dict[str, Any]:
        """The services' own rules, before anything is saved (the status change included)."""
        super().clean()
        data = self.cleaned_data
        if data.get("next_status"):
            try:
                privacy_request_transition_check(
                    request=self.instance, status=data["next_status"], note=data.get("note", "")
                )
            except ValidationError as error:
                _add_service_errors(self, error, {"status": "next_status"})
        if data.get("extend_months"):
            try:
                privacy_request_extension_check(
                    request=self.instance,
                    months=data["extend_months"],
                    reason=data.get("new_extension_reason") or "",
                )
            except ValidationError as error:
                fields = {"extension_reason": "new_extension_reason", "months": "extend_months"}
                _add_service_errors(self, error, {**fields, "status": None})
        return data


def _is_open(obj: PrivacyRequest) -> bool:
    return obj.status in OPEN_REQUEST_STATUSES


def deadline_class(due_at: datetime, now: datetime) -> str:
    """The CSS class of an open request's deadline: late, due within 7 days, or later."""
    if due_at < now:
        return "deadline-late"
    return "deadline-soon" if due_at <= now + timedelta(days=7) else "deadline-later"


class DeadlineFilter(admin.SimpleListFilter):
    title = _("deadline")
    parameter_name = "deadline"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [
            ("late", _("Late")),
            ("week", _("Due within 7 days")),
            ("later", _("Due later")),
            ("closed", _("Closed")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        open_requests = queryset.filter(status__in=OPEN_REQUEST_STATUSES)
        return {
            "late": open_requests.filter(due_at__lt=now),
            "week": open_requests.filter(due_at__gte=now, due_at__lte=now + timedelta(days=7)),
            "later": open_requests.filter(due_at__gt=now + timedelta(days=7)),
            "closed": queryset.exclude(status__in=OPEN_REQUEST_STATUSES),
        }.get(self.value() or "", queryset)


@admin.register(PrivacyRequest)
class PrivacyRequestAdmin(admin.ModelAdmin):
    """The DPO's register of requests: open ones first, the earliest deadline (late) on top.

    Filed here, a request counts as verified by the DPO. Every change goes through the
    privacy services, with its history; exports are downloaded through an audited view.
    """

    inlines = [ErasureAcknowledgementInline, PrivacyRequestEventInline]
    # Narrow enough for a 1,366 px screen: the deadline in words first, the held flag with
    # the status, the exact due date in the deadline's tooltip and on the request's page.
    list_display = ("deadline", "type", "contact", "status_and_hold", "received_at")
    list_display_links = ("type",)  # a closed request has no deadline to click
    list_filter = (
        DeadlineFilter,
        "status",
        "type",
        "source_kind",
        ("held_reason", admin.EmptyFieldListFilter),
    )
    search_fields = ("contact__email", "=id")
    list_select_related = ("contact",)
    autocomplete_fields = ("contact",)
    actions = None
    readonly_fields = (
        "contact",
        "type",
        "status",
        "details",
        "source_kind",
        "source_reference",
        "received_at",
        "due_at",
        "extension_reason",
        "held_reason",
        "handled_by",
        "completed_at",
        "exports",
    )

    def get_ordering(self, request: HttpRequest) -> list:
        # An ordering of the queryset alone would come after the model's (due_at) in the
        # change list: the open-first rule has to be the admin's own ordering.
        open_first = Case(
            When(status__in=OPEN_REQUEST_STATUSES, then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        )
        return [open_first.asc(), "due_at"]

    def get_form(
        self,
        request: HttpRequest,
        obj: PrivacyRequest | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> type[forms.ModelForm]:
        kwargs["form"] = PrivacyRequestHandleForm if obj else PrivacyRequestAddForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: PrivacyRequest | None = None) -> Any:
        if obj is None:
            return ["contact", "type", "details", "received_at"]
        handling = ["next_status", "note", "extend_months", "new_extension_reason"]
        return [*self.get_readonly_fields(request, obj), *(handling if _is_open(obj) else [])]

    def get_readonly_fields(self, request: HttpRequest, obj: PrivacyRequest | None = None) -> Any:
        if obj is None:
            return ()
        return (
            ("no_contact", *self.readonly_fields)
            if obj.contact_id is None
            else self.readonly_fields
        )

    @admin.display(description=_("contact"))
    def no_contact(self, obj: PrivacyRequest) -> str | Promise:
        return _(
            "No contact had the email given: we hold nothing on this person, so there is "
            "nothing to carry out. The API client was answered as for any request."
        )

    def has_delete_permission(
        self, request: HttpRequest, obj: PrivacyRequest | None = None
    ) -> bool:
        return False  # the register of requests is evidence of compliance

    @admin.display(description=_("deadline"), ordering="due_at")
    def deadline(self, obj: PrivacyRequest) -> str:
        """ "due in 3 days" / "4 days late", highlighted when late or due within 7 days."""
        if not _is_open(obj):
            return "-"
        now = timezone.now()
        due = timezone.localtime(obj.due_at)
        return format_html(
            '<time class="deadline {}" datetime="{}" title="{}">{}</time>',
            deadline_class(obj.due_at, now),
            due.isoformat(),
            date_format(due, "DATETIME_FORMAT"),
            request_deadline_in_words(due_at=obj.due_at, now=now),
        )

    @admin.display(description=_("status"), ordering="status")
    def status_and_hold(self, obj: PrivacyRequest) -> str:
        if not self.is_held(obj):
            return obj.get_status_display()
        return format_html(
            '{} <span class="request-held">{}</span>', obj.get_status_display(), _("held")
        )

    @admin.display(description=_("late"), boolean=True)
    def is_late(self, obj: PrivacyRequest) -> bool:
        return _is_open(obj) and obj.due_at < timezone.now()

    @admin.display(description=_("due within 7 days"), boolean=True)
    def due_soon(self, obj: PrivacyRequest) -> bool:
        now = timezone.now()
        return _is_open(obj) and now <= obj.due_at <= now + timedelta(days=7)

    @admin.display(description=_("held for the DPO"), boolean=True)
    def is_held(self, obj: PrivacyRequest) -> bool:
        return bool(obj.held_reason) and _is_open(obj)

    @admin.display(description=_("exports"))
    def exports(self, obj: PrivacyRequest) -> str:
        if not obj.export_json or not obj.export_expires_at:
            return "-"
        links = [
            format_html(
                '<a href="{}">{}</a>',
                reverse("admin:privacy_privacyrequest_export", args=[obj.pk, kind]),
                label,
            )
            for kind, label in (("json", "JSON"), ("zip", _("CSV archive")))
        ]
        until = date_format(timezone.localtime(obj.export_expires_at), "DATETIME_FORMAT")
        return format_html("{} · {} ({} {})", links[0], links[1], _("available until"), until)

    def get_urls(self) -> list:
        return [
            path(
                "<uuid:request_id>/export/<str:kind>/",
                self.admin_site.admin_view(self.export_view),
                name="privacy_privacyrequest_export",
            ),
            *super().get_urls(),
        ]

    def export_view(self, request: HttpRequest, request_id: str, kind: str) -> FileResponse:
        """Download an access or portability export, while available; the download is logged."""
        privacy_request = get_object_or_404(PrivacyRequest, pk=request_id)
        if not self.has_view_permission(request, privacy_request):
            raise PermissionDenied
        export = {"json": privacy_request.export_json, "zip": privacy_request.export_archive}.get(
            kind
        )
        expires = privacy_request.export_expires_at
        if not export or expires is None or expires < timezone.now():
            raise Http404(_("This export is no longer available."))
        audit_record(
            request=request,
            action=AuditAction.EXPORT,
            contact=privacy_request.contact,
            details={"request": str(privacy_request.pk), "format": kind},
        )
        return FileResponse(
            export.open("rb"), as_attachment=True, filename=export.name.split("/")[-1]
        )

    def save_model(
        self, request: HttpRequest, obj: PrivacyRequest, form: forms.ModelForm, change: bool
    ) -> None:
        by = request.user.get_username()
        if change:
            self._handle(request, obj, form.cleaned_data, by)
            return
        filed = privacy_request_file(
            contact=form.cleaned_data["contact"],
            type=form.cleaned_data["type"],
            details=form.cleaned_data["details"],
            source_kind=SourceKind.ADMIN,
            source_reference=by,
            verified=True,
            by=by,
            received_at=form.cleaned_data["received_at"],
        )
        # A restriction filed here restricts at once (verified): it is audited as one.
        audit_record(
            request=request,
            action=AuditAction.RESTRICTION
            if filed.type == PrivacyRequestType.RESTRICTION
            else AuditAction.REQUEST_CHANGE,
            contact=filed.contact,
            details={"request": str(filed.pk), "filed": filed.type},
        )
        adopt_saved_instance(obj, filed)

    def _handle(
        self, request: HttpRequest, obj: PrivacyRequest, data: dict[str, Any], by: str
    ) -> None:
        closing = obj.status == PrivacyRequestStatus.AWAITING_CRMS and bool(data.get("next_status"))
        if closing and not request.user.has_perm("privacy.close_privacyrequest"):
            self.message_user(
                request,
                _("Only the DPO may close an erasure before every CRM acknowledged it."),
                messages.ERROR,
            )
            return
        try:
            self._apply(obj, data, by)
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return
        audit_record(
            request=request,
            action=AuditAction.REQUEST_CHANGE,
            contact=obj.contact,
            details={"request": str(obj.pk), **{k: str(v) for k, v in data.items() if v}},
        )
        obj.refresh_from_db()

    @staticmethod
    def _apply(obj: PrivacyRequest, data: dict[str, Any], by: str) -> None:
        if data.get("extend_months"):
            privacy_request_extend(
                request=obj,
                months=data["extend_months"],
                reason=data["new_extension_reason"],
                by=by,
            )
        if data.get("next_status"):
            privacy_request_transition(
                request=obj, status=data["next_status"], by=by, note=data.get("note", "")
            )


class ProofReadForm(forms.Form):
    why = forms.CharField(
        label=_("Why you read it"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("The complaint or claim it answers: kept in the audit log with your name."),
    )


@admin.register(ProofArchiveEntry)
class ProofArchiveEntryAdmin(admin.ModelAdmin):
    """The proof archive: whose proof is kept, since when and until when. The content is
    never listed: the DPO decrypts one entry at a time through an audited read, and it is
    shown once, in that answer only (GDPR Art. 5(2), 32)."""

    list_display = ("__str__", "contact", "reason", "erased_at", "delete_after")
    list_filter = ("reason",)
    search_fields = ("=contact__public_id",)
    list_select_related = ("contact",)
    actions = None
    fields = ("contact", "reason", "erased_at", "delete_after", "read_link")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: ProofArchiveEntry | None = None
    ) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: ProofArchiveEntry | None = None
    ) -> bool:
        return False  # the beat job deletes it at the end of the proof period, nobody else

    def has_read_permission(self, request: HttpRequest) -> bool:
        """The DPO's alone: the permission, held as a member of the DPO group (a superuser's
        blanket rights do not stand in for it)."""
        user = request.user
        return user.has_perm("privacy.read_proofarchiveentry") and (
            user.groups.filter(name=DPO).exists()
        )

    @admin.display(description=_("content"))
    def read_link(self, obj: ProofArchiveEntry) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:privacy_proofarchiveentry_read", args=[obj.pk]),
            _("Read the proof (logged)"),
        )

    def get_urls(self) -> list:
        return [
            path(
                "<int:entry_id>/read/",
                self.admin_site.admin_view(self.read_view),
                name="privacy_proofarchiveentry_read",
            ),
            *super().get_urls(),
        ]

    def read_view(self, request: HttpRequest, entry_id: int) -> TemplateResponse:
        """Ask why, then decrypt and show the entry once; the read is logged before it."""
        if not self.has_read_permission(request):
            raise PermissionDenied
        entry = get_object_or_404(ProofArchiveEntry.objects.select_related("contact"), pk=entry_id)
        form = ProofReadForm(request.POST if request.method == "POST" else None)
        content = None
        if form.is_valid():
            content = proof_archive_read(entry=entry, request=request, why=form.cleaned_data["why"])
        # never cached: admin_view's never_cache sends no-store
        return TemplateResponse(
            request,
            "admin/privacy/proofarchiveentry/read.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": _("Proof archive entry %(entry)s") % {"entry": entry},
                "entry": entry,
                "form": form,
                "content": content,
            },
        )


# the registers (GDPR Art. 28, 30, 33)
from privacy import breaches_admin, registers_admin  # noqa: E402, F401
