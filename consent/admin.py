"""Admin for purposes and their wording, the consent ledger (read-only) and privacy requests."""

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.functional import Promise
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from consent.ledger import record_hash
from consent.models import (
    Channel,
    ConsentRecord,
    ConsentState,
    PrivacyRequest,
    PrivacyRequestEvent,
    PrivacyRequestStatus,
    PrivacyRequestType,
    Purpose,
    PurposeVersion,
    SourceKind,
)
from consent.services import (
    privacy_request_extend,
    privacy_request_extension_check,
    privacy_request_file,
    privacy_request_transition,
    purpose_wording_update,
)
from consent.services.privacy import OPEN_STATUSES as OPEN_REQUEST_STATUSES
from consent.services.privacy import TRANSITIONS as REQUEST_TRANSITIONS
from contacts.models import Contact, ContactStatus
from core.admin import ReadOnlyAdminMixin, ReadOnlyInlineMixin, adopt_saved_instance
from core.models import AuditAction
from core.services import audit_record


def _record_link(record: ConsentRecord) -> str:
    url = reverse("admin:consent_consentrecord_change", args=[record.pk])
    return format_html('<a href="{}">{}</a>', url, record.uuid)


# Inlines of the contact change page (registered by contacts/admin.py).


class ConsentStateInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = ConsentState
    verbose_name = _("current consent")
    verbose_name_plural = _("current consent state (per purpose and channel)")
    fields = ("purpose", "channel", "status", "version", "since", "record_link")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConsentState]:
        return (
            super()
            .get_queryset(request)
            .select_related("purpose", "purpose_version", "record")
            .order_by("purpose__slug", "channel")
        )

    @admin.display(description=_("version"))
    def version(self, obj: ConsentState) -> int:
        return obj.purpose_version.number

    @admin.display(description=_("record"))
    def record_link(self, obj: ConsentState) -> str:
        return _record_link(obj.record)


class ConsentRecordInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = ConsentRecord
    fk_name = "contact"
    verbose_name = _("consent record")
    verbose_name_plural = _("consent history (ledger, oldest first)")
    fields = (
        "record_link",
        "purpose",
        "version",
        "channel",
        "action",
        "status",
        "given_at",
        "recorded_at",
        "source",
        "wording",
        "hash_prefix",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConsentRecord]:
        return (
            super()
            .get_queryset(request)
            .select_related("purpose", "purpose_version")
            .order_by("id")
        )

    @admin.display(description=_("id"))
    def record_link(self, obj: ConsentRecord) -> str:
        return _record_link(obj)

    @admin.display(description=_("version"))
    def version(self, obj: ConsentRecord) -> int:
        return obj.purpose_version.number

    @admin.display(description=_("source"))
    def source(self, obj: ConsentRecord) -> str:
        kind = obj.get_source_kind_display()
        return f"{kind}: {obj.source_reference}" if obj.source_reference else kind

    @admin.display(description=_("hash"))
    def hash_prefix(self, obj: ConsentRecord) -> str:
        return obj.hash[:12]


# Purposes and their wording versions.


def _normalize_newlines(text: str) -> str:
    # Browsers send textarea line breaks as CRLF: without this, saving an unchanged form
    # would look like a new wording and create a version.
    return text.replace("\r\n", "\n").replace("\r", "\n")


class PurposeAdminForm(forms.ModelForm):
    """The purpose, plus its current wording; a changed wording becomes a new version."""

    channels = forms.MultipleChoiceField(
        label=_("channels"), choices=Channel.choices, widget=forms.CheckboxSelectMultiple
    )
    wording_fr = forms.CharField(label=_("wording (French)"), widget=forms.Textarea)
    wording_en = forms.CharField(label=_("wording (English)"), widget=forms.Textarea)
    is_material = forms.BooleanField(
        label=_("material change"),
        required=False,
        initial=True,
        help_text=_(
            "Tick when the new wording changes what people agree to: their earlier consents "
            "will need re-consent. Leave unticked for a typo or a style fix."
        ),
    )

    class Meta:
        model = Purpose
        fields = [
            "slug",
            "name_fr",
            "name_en",
            "description_fr",
            "description_en",
            "legal_basis",
            "channels",
            "double_opt_in",
            "retention_days",
            "is_active",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = self.instance.current_version if self.instance.pk else None
        if current is not None:
            self.initial.setdefault("wording_fr", current.wording_fr)
            self.initial.setdefault("wording_en", current.wording_en)
        else:
            # The first version is material by definition: nothing to choose.
            del self.fields["is_material"]

    def clean_wording_fr(self) -> str:
        return _normalize_newlines(self.cleaned_data["wording_fr"])

    def clean_wording_en(self) -> str:
        return _normalize_newlines(self.cleaned_data["wording_en"])


class PurposeVersionInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = PurposeVersion
    verbose_name_plural = _("wording versions (never edited: a change adds a version)")
    fields = ("number", "wording_fr", "wording_en", "is_material", "created_at", "created_by")
    readonly_fields = fields
    ordering = ("-number",)


@admin.register(Purpose)
class PurposeAdmin(admin.ModelAdmin):
    form = PurposeAdminForm
    inlines = [PurposeVersionInline]
    list_display = (
        "slug",
        "name_fr",
        "name_en",
        "legal_basis",
        "channel_list",
        "double_opt_in",
        "current_version_number",
        "is_active",
    )
    list_filter = ("legal_basis", "double_opt_in", "is_active")
    search_fields = ("slug", "name_fr", "name_en")
    actions = None

    def get_fieldsets(self, request: HttpRequest, obj: Purpose | None = None) -> list:
        wording = ["wording_fr", "wording_en"]
        if obj is not None and self.has_change_permission(request, obj):
            wording.append("is_material")
        return [
            (None, {"fields": ["slug", "name_fr", "name_en", "description_fr", "description_en"]}),
            (
                _("Processing"),
                {
                    "fields": [
                        "legal_basis",
                        "channels",
                        "double_opt_in",
                        "retention_days",
                        "is_active",
                    ]
                },
            ),
            (_("Current wording"), {"fields": wording}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Purpose | None = None) -> tuple:
        # The slug names the purpose in the public API and in every integration.
        return ("slug",) if obj else ()

    def has_delete_permission(self, request: HttpRequest, obj: Purpose | None = None) -> bool:
        return False  # consents point at it; deactivate it instead

    # Shown in place of the form fields to those who may only view purposes.
    @admin.display(description=_("wording (French)"))
    def wording_fr(self, obj: Purpose) -> str:
        version = obj.current_version
        return version.wording_fr if version else ""

    @admin.display(description=_("wording (English)"))
    def wording_en(self, obj: Purpose) -> str:
        version = obj.current_version
        return version.wording_en if version else ""

    @admin.display(description=_("channels"))
    def channel_list(self, obj: Purpose) -> str:
        return ", ".join(obj.channels)

    @admin.display(description=_("version"))
    def current_version_number(self, obj: Purpose) -> int | None:
        version = obj.current_version
        return version.number if version else None

    def save_model(
        self, request: HttpRequest, obj: Purpose, form: forms.ModelForm, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        version = purpose_wording_update(
            purpose=obj,
            wording_fr=form.cleaned_data["wording_fr"],
            wording_en=form.cleaned_data["wording_en"],
            is_material=form.cleaned_data.get("is_material", True),
            by=request.user.get_username(),
        )
        if version is not None and change:
            self.message_user(
                request, _("Wording version %(number)d created.") % {"number": version.number}
            )


@admin.register(PurposeVersion)
class PurposeVersionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("purpose", "number", "is_material", "created_at", "created_by")
    list_filter = ("purpose", "is_material")
    fields = (
        "purpose",
        "number",
        "wording_fr",
        "wording_en",
        "is_material",
        "created_at",
        "created_by",
    )
    readonly_fields = fields
    list_select_related = ("purpose",)


# The ledger and the current state: read-only for everyone.


@admin.register(ConsentRecord)
class ConsentRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "uuid",
        "contact",
        "purpose",
        "version",
        "channel",
        "action",
        "status",
        "given_at",
        "recorded_at",
        "source_kind",
        "hash_prefix",
    )
    list_filter = ("purpose", "channel", "action", "status", "source_kind")
    search_fields = ("uuid", "contact__email")
    date_hierarchy = "recorded_at"
    list_select_related = ("contact", "purpose", "purpose_version")
    fields = (
        "uuid",
        "contact",
        "purpose",
        "version",
        "channel",
        "action",
        "status",
        "resolves",
        "given_at",
        "recorded_at",
        "source_kind",
        "source_reference",
        "wording",
        "language",
        "unticked_by_default",
        "policy_version",
        "evidence_digest",
        "previous_hash",
        "hash",
        "hash_matches",
    )
    readonly_fields = (*fields, "evidence_details")

    def get_fields(self, request: HttpRequest, obj: ConsentRecord | None = None) -> tuple:
        # IP address and user agent are personal data: only for those allowed to see them.
        if request.user.has_perm("consent.view_consentevidence"):
            return (*self.fields, "evidence_details")
        return self.fields

    @admin.display(description=_("version"))
    def version(self, obj: ConsentRecord) -> int:
        return obj.purpose_version.number

    @admin.display(description=_("hash"))
    def hash_prefix(self, obj: ConsentRecord) -> str:
        return obj.hash[:12]

    @admin.display(description=_("content matches its hash"), boolean=True)
    def hash_matches(self, obj: ConsentRecord) -> bool:
        return record_hash(obj) == obj.hash

    @admin.display(description=_("personal evidence"))
    def evidence_details(self, obj: ConsentRecord) -> str:
        evidence = getattr(obj, "personal_evidence", None)
        if evidence is None:
            return "-"
        parts = [
            f"{_('IP address')}: {evidence.ip or '-'}",
            f"{_('user agent')}: {evidence.user_agent or '-'}",
        ]
        if evidence.document:
            parts.append(f"{_('signed document')}: {evidence.document.name}")
        return " | ".join(parts)


@admin.register(ConsentState)
class ConsentStateAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("contact", "purpose", "channel", "status", "version", "since")
    list_filter = ("purpose", "channel", "status")
    search_fields = ("contact__email",)
    list_select_related = ("contact", "purpose", "purpose_version")
    fields = ("contact", "purpose", "channel", "status", "version", "since", "record")
    readonly_fields = fields

    @admin.display(description=_("version"))
    def version(self, obj: ConsentState) -> int:
        return obj.purpose_version.number


# Data-subject requests.


class PrivacyRequestEventInline(ReadOnlyInlineMixin, admin.TabularInline):
    model = PrivacyRequestEvent
    fields = ("status", "at", "by", "note")
    readonly_fields = fields


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

    def clean_received_at(self) -> Any:
        received_at = self.cleaned_data["received_at"]
        if received_at > timezone.now():
            raise ValidationError(_("A request cannot be received in the future."))
        return received_at

    def clean_contact(self) -> Contact:
        # The service refuses it too, but only a form error shows next to the field (not a 500).
        contact = self.cleaned_data["contact"]
        if contact.status == ContactStatus.ERASED:
            raise ValidationError(_("This contact was erased."))
        return contact


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
        super().clean()
        data = self.cleaned_data
        if data.get("next_status") == PrivacyRequestStatus.REJECTED and not data.get("note"):
            self.add_error("note", _("Say why the request is rejected."))
        if data.get("extend_months"):
            self._check_extension(data["extend_months"], data.get("new_extension_reason") or "")
        return data

    def _check_extension(self, months: int, reason: str) -> None:
        """The service's own rules, before anything is saved (the status change included)."""
        try:
            privacy_request_extension_check(request=self.instance, months=months, reason=reason)
        except ValidationError as error:
            fields = {"extension_reason": "new_extension_reason", "months": "extend_months"}
            for field, messages_ in error.message_dict.items():
                for message in messages_:
                    self.add_error(fields.get(field), message)


def _is_open(obj: PrivacyRequest) -> bool:
    return obj.status in OPEN_REQUEST_STATUSES


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

    inlines = [PrivacyRequestEventInline]
    list_display = (
        "type",
        "contact",
        "status",
        "received_at",
        "due_at",
        "is_late",
        "due_soon",
        "is_held",
    )
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
                reverse("admin:consent_privacyrequest_export", args=[obj.pk, kind]),
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
                name="consent_privacyrequest_export",
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
