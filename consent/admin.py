"""Admin for purposes and their wording, and the consent ledger and state (read-only)."""

import csv
from collections.abc import Iterator
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone, translation
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from consent.ledger import record_hash
from consent.models import (
    Actor,
    Channel,
    ConsentAction,
    ConsentRecord,
    ConsentState,
    FrequencyCap,
    LedgerSeal,
    LedgerVerification,
    PrivacyNotice,
    Purpose,
    PurposeVersion,
    SourceKind,
)
from consent.selectors import (
    CapsInForce,
    frequency_caps_by_channel,
    frequency_caps_in_force,
    ledger_seal_heads,
    privacy_notice_in_use,
    privacy_notice_versions_unknown,
)
from consent.services import (
    ConsentWrite,
    Evidence,
    frequency_cap_delete,
    frequency_cap_save,
    privacy_notice_save,
    purpose_wording_update,
)
from contacts.models import Contact
from core.admin import ReadOnlyAdminMixin, ReadOnlyInlineMixin, adopt_saved_instance
from core.csvfiles import csv_cell
from core.models import AuditAction
from core.services import audit_record


def with_notice(records: QuerySet[ConsentRecord]) -> QuerySet[ConsentRecord]:
    """Records with the id of the stored privacy notice their `policy_version` names."""
    stored = PrivacyNotice.objects.filter(version=OuterRef("policy_version")).values("pk")[:1]
    return records.annotate(notice_pk=Subquery(stored))


def notice_link(record: ConsentRecord) -> str:
    """The privacy notice version a record names (GDPR Art. 13): a link to the stored version,
    or flagged as unknown for the DPO to add it (`with_notice` loads what this needs)."""
    if not record.policy_version:
        return "-"
    notice_pk = getattr(record, "notice_pk", None)
    if notice_pk is None:
        return format_html(
            '<strong class="errornote">{}</strong>',
            _("unknown notice: %(version)s") % {"version": record.policy_version},
        )
    url = reverse("admin:consent_privacynotice_change", args=[notice_pk])
    return format_html('<a href="{}">{}</a>', url, record.policy_version)


class PersonFilter(admin.SimpleListFilter):
    """One person's whole history: the records of a contact and of the contacts merged into
    it (`?person=<contact id>`, the contact page's "see the full history" link)."""

    title = _("person")
    parameter_name = "person"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        # offered only when asked for: a filter without choices would be dropped, its
        # parameter then refused
        contact = self._contact()
        return [(str(contact.pk), str(contact))] if contact is not None else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        contact = self._contact()
        if contact is None:
            return queryset if self.value() is None else queryset.none()
        return queryset.filter(Q(contact=contact) | Q(contact__merged_into=contact))

    def _contact(self) -> Contact | None:
        if not hasattr(self, "_person"):
            value = self.value()
            found = str(value).isdigit() and Contact.objects.filter(pk=int(str(value))).first()
            self._person = found or None
        return self._person


class NoticeKnownFilter(admin.SimpleListFilter):
    """Records by the privacy notice they name: a stored version, an unknown one, none."""

    title = _("privacy notice")
    parameter_name = "notice"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [
            ("known", _("stored version")),
            ("unknown", _("unknown version")),
            ("none", _("no version")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        stored = PrivacyNotice.objects.values("version")
        if self.value() == "known":
            return queryset.filter(policy_version__in=stored)
        if self.value() == "unknown":
            return queryset.exclude(policy_version="").exclude(policy_version__in=stored)
        if self.value() == "none":
            return queryset.filter(policy_version="")
        return queryset


# Consents staff enter from the contact page, with their proof: a guardian's for a child
# (GDPR Art. 8, an action on one contact), and what a person signed on paper or said on the
# phone (the contact page's "Record a consent" button).


class StaffConsentForm(forms.Form):
    """What every consent staff enter names: the purpose and channel, when it was given, the
    wording the person saw or heard, and the signed form if there is one."""

    purpose = forms.ModelChoiceField(
        label=_("Purpose"), queryset=Purpose.objects.filter(is_active=True).order_by("slug")
    )
    channel = forms.ChoiceField(label=_("Channel"), choices=Channel.choices)
    given_at = forms.DateTimeField(
        label=_("Given at"), help_text=_("When the guardian consented (YYYY-MM-DD HH:MM).")
    )
    wording = forms.CharField(
        label=_("Wording shown"),
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text=_("Empty: the purpose's current wording."),
    )
    document = forms.FileField(label=_("Signed form"), required=False)


class GuardianConsentForm(StaffConsentForm):
    """What staff record when a guardian consents for a child: the purpose and channel, who
    consented (the guardian, or with the child as France requires under 15), the guardian's
    name and email or phone, when, and the signed form if there is one."""

    actor = forms.ChoiceField(
        label=_("Who consented"),
        choices=[
            (Actor.PERSON_AND_GUARDIAN.value, Actor.PERSON_AND_GUARDIAN.label),
            (Actor.GUARDIAN.value, Actor.GUARDIAN.label),
        ],
        help_text=_("In France, under 15, the child and the guardian consent together."),
    )
    guardian_name = forms.CharField(label=_("Guardian's name"), max_length=200)
    guardian_contact = forms.CharField(label=_("Guardian's email or phone"), max_length=254)
    field_order = [
        "purpose",
        "channel",
        "actor",
        "guardian_name",
        "guardian_contact",
        "given_at",
        "wording",
        "document",
    ]


def guardian_consent_write(*, contact: Contact, data: dict[str, Any], by: str) -> ConsentWrite:
    """The ledger write for a guardian's consent entered in the admin: by staff (source
    admin, their name as reference), the guardian as the actor, the guardian's details and
    the signed form as personal evidence (erased with the person)."""
    return ConsentWrite(
        contact=contact,
        purpose=data["purpose"],
        channel=data["channel"],
        action=ConsentAction.GRANT,
        source_kind=SourceKind.ADMIN,
        source_reference=f"admin:{by}",
        evidence=Evidence(
            wording=data.get("wording") or "",
            guardian_name=data["guardian_name"],
            guardian_contact=data["guardian_contact"],
            document=data.get("document"),
        ),
        given_at=data["given_at"],
        actor=data["actor"],
    )


# The kinds of consent staff enter from what the person signed or said, and what each must
# carry: the signed form (stored apart with its SHA-256), or the call's reference.
OFFLINE_KINDS = (SourceKind.PAPER_FORM, SourceKind.PHONE_CALL)


class OfflineConsentForm(StaffConsentForm):
    """A consent (or its withdrawal) the person gave on a paper form or in a phone call:
    a paper form needs the signed form, a phone call its reference; the wording printed or
    read out defaults to the purpose's current wording."""

    kind = forms.ChoiceField(
        label=_("Given on"),
        choices=[(kind.value, kind.label) for kind in OFFLINE_KINDS],
        widget=forms.RadioSelect,
    )
    action = forms.ChoiceField(
        label=_("The person"),
        choices=[
            (ConsentAction.GRANT.value, _("gives consent")),
            (ConsentAction.WITHDRAW.value, _("withdraws consent")),
        ],
        widget=forms.RadioSelect,
    )
    reference = forms.CharField(
        label=_("Reference"),
        max_length=200,
        required=False,
        help_text=_(
            "The call's reference (required for a phone call), or the paper form's (optional)."
        ),
    )
    field_order = [
        "kind",
        "purpose",
        "channel",
        "action",
        "given_at",
        "document",
        "reference",
        "wording",
    ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # a withdrawal stays possible once a purpose is retired (GDPR Art. 7(3)); the write
        # path refuses a grant of a retired purpose, under this field
        purpose = self.fields["purpose"]
        assert isinstance(purpose, forms.ModelChoiceField)  # noqa: S101 - declared above
        purpose.queryset = Purpose.objects.order_by("slug")
        self.fields["given_at"].help_text = _(
            "When the person signed the form or made the call (YYYY-MM-DD HH:MM)."
        )
        self.fields["wording"].label = _("Wording printed or read out")
        self.fields["document"].help_text = _(
            "Required for a paper form: the scan of the signed form, kept apart from the "
            "ledger with its SHA-256 digest."
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind = cleaned.get("kind")
        if kind == SourceKind.PAPER_FORM and not cleaned.get("document"):
            self.add_error("document", _("A paper form needs the scan of the signed form."))
        if kind == SourceKind.PHONE_CALL and not (cleaned.get("reference") or "").strip():
            self.add_error("reference", _("A phone call needs its reference."))
        return cleaned


def offline_consent_write(*, contact: Contact, data: dict[str, Any], by: str) -> ConsentWrite:
    """The ledger write for a consent given on paper or by phone: the person as the actor,
    the form's or call's reference and the staff member who entered it ("CALL-42 /
    admin:jdoe", as the guardian's path names its author) as the source, the signed form as
    personal evidence, and the purpose's current wording (in the person's language) unless
    another was given."""
    wording = data.get("wording") or ""
    version = data["purpose"].current_version
    if not wording and version is not None:
        with translation.override(contact.language or None):
            wording = version.wording
    return ConsentWrite(
        contact=contact,
        purpose=data["purpose"],
        channel=data["channel"],
        action=data["action"],
        source_kind=data["kind"],
        source_reference=" / ".join(
            part for part in ((data.get("reference") or "").strip(), f"admin:{by}") if part
        ),
        evidence=Evidence(wording=wording, document=data.get("document")),
        given_at=data["given_at"],
        actor=Actor.PERSON,
    )


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
            "legitimate_interest_fr",
            "legitimate_interest_en",
            "channels",
            "similar_products",
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
                        "legitimate_interest_fr",
                        "legitimate_interest_en",
                        "channels",
                        "similar_products",
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


@admin.register(PrivacyNotice)
class PrivacyNoticeAdmin(admin.ModelAdmin):
    """The DPO adds each version of the privacy notice; one that consent records name is the
    evidence of what people were shown, and stays as it is (GDPR Art. 7(1), 13)."""

    list_display = ("version", "published_at", "url", "created_by", "in_use")
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    search_fields = ("version",)
    fields = ("version", "text_fr", "text_en", "url", "published_at", "created_by", "created_at")
    readonly_fields = ("created_by", "created_at")
    actions = None

    def get_readonly_fields(
        self, request: HttpRequest, obj: PrivacyNotice | None = None
    ) -> tuple[str, ...]:
        if obj is None:
            return self.readonly_fields
        # the version names it in consent records: never renamed
        return ("version", *self.readonly_fields)

    def has_change_permission(self, request: HttpRequest, obj: PrivacyNotice | None = None) -> bool:
        if obj is not None and privacy_notice_in_use(obj.version):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: PrivacyNotice | None = None) -> bool:
        return False  # a version may have been shown; a new version replaces it

    @admin.display(description=_("named by consent records"), boolean=True)
    def in_use(self, obj: PrivacyNotice) -> bool:
        return privacy_notice_in_use(obj.version)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        unknown = list(privacy_notice_versions_unknown())
        if unknown and request.method == "GET":
            self.message_user(
                request,
                _(
                    "Consent records name privacy notice versions that are not stored: %(list)s. "
                    "Add them here."
                )
                % {
                    "list": ", ".join(
                        f"{row['policy_version']} ({row['records']})" for row in unknown
                    )
                },
                level=messages.WARNING,
            )
        return super().changelist_view(request, extra_context)

    def save_model(
        self, request: HttpRequest, obj: PrivacyNotice, form: forms.ModelForm, change: bool
    ) -> None:
        try:
            privacy_notice_save(notice=obj, by=request.user.get_username())
        except ValidationError as error:
            # a record named it between the form and the save: nothing is written
            raise PermissionDenied(" ".join(error.messages)) from error


# The channels' marketing caps (SPEC §4 caps).


class FrequencyCapForm(forms.ModelForm):
    """A channel's caps; a new row is offered only for the channels that have none."""

    class Meta:
        model = FrequencyCap
        fields = ["channel", "per_day", "per_week"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        channel = self.fields.get("channel")
        if isinstance(channel, forms.ChoiceField):
            taken = set(FrequencyCap.objects.values_list("channel", flat=True))
            channel.choices = [
                (value, label) for value, label in Channel.choices if value not in taken
            ]


@admin.register(FrequencyCap)
class FrequencyCapAdmin(admin.ModelAdmin):
    """Every channel with the caps in force (its own, or the settings' defaults), editable
    by staff with the change permission, which also sets a channel's own caps (adding its
    row) and removes them (deleting it: the defaults apply again). Each change goes through
    `frequency_cap_save` / `frequency_cap_delete` and into the audit log."""

    form = FrequencyCapForm
    list_display = ("channel", "per_day", "per_week", "updated_at", "updated_by")
    list_select_related = ("updated_by",)
    readonly_fields = ("updated_at", "updated_by")
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: FrequencyCap | None = None) -> bool:
        return self.has_change_permission(request, obj)

    def get_readonly_fields(
        self, request: HttpRequest, obj: FrequencyCap | None = None
    ) -> tuple[str, ...]:
        if obj is None:
            return tuple(self.readonly_fields)
        return ("channel", *self.readonly_fields)  # another channel: another row

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """A new row starts from the defaults (and the channel `?channel=` names)."""
        defaults = frequency_caps_in_force(None)
        return {
            "per_day": defaults.per_day,
            "per_week": defaults.per_week,
            **super().get_changeform_initial_data(request),
        }

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "caps_in_force": self._caps_in_force(request)}
        return super().changelist_view(request, extra_context)

    def _caps_in_force(self, request: HttpRequest) -> list[dict[str, Any]]:
        """Every channel with its caps in force and where to edit them."""
        editable = self.has_change_permission(request)
        rows = dict(FrequencyCap.objects.values_list("channel", "pk"))
        in_force = frequency_caps_by_channel(cached=False)
        lines = []
        for channel, label in Channel.choices:
            caps = in_force[channel]
            url = ""
            if editable and channel in rows:
                url = reverse("admin:consent_frequencycap_change", args=[rows[channel]])
            elif editable:
                url = f"{reverse('admin:consent_frequencycap_add')}?channel={channel}"
            lines.append({"channel": label, "caps": caps, "url": url})
        return lines

    def save_model(
        self, request: HttpRequest, obj: FrequencyCap, form: forms.ModelForm, change: bool
    ) -> None:
        before = frequency_caps_in_force(obj.channel, cached=False)
        saved = frequency_cap_save(
            channel=obj.channel, per_day=obj.per_day, per_week=obj.per_week, by=request.user
        )
        adopt_saved_instance(obj, saved)
        self._audit(request, obj.channel, before)

    def delete_model(self, request: HttpRequest, obj: FrequencyCap) -> None:
        before = frequency_caps_in_force(obj.channel, cached=False)
        frequency_cap_delete(channel=obj.channel)
        self._audit(request, obj.channel, before)

    def _audit(self, request: HttpRequest, channel: str, before: CapsInForce) -> None:
        after = frequency_caps_in_force(channel, cached=False)
        audit_record(
            request=request,
            action=AuditAction.FREQUENCY_CAP,
            details={
                "channel": channel,
                "before": {"per_day": before.per_day, "per_week": before.per_week},
                "after": {"per_day": after.per_day, "per_week": after.per_week},
                "default": after.is_default,
            },
        )


# The ledger and the current state: read-only for everyone.


@admin.register(ConsentRecord)
class ConsentRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # the version, the time it was written and its hash are on the record's page: the list
    # stays within a 1,366 px screen
    list_display = (
        "uuid",
        "contact",
        "purpose",
        "channel",
        "action",
        "status",
        "given_at",
        "source_kind",
    )
    list_filter = (
        "purpose",
        "channel",
        "action",
        "status",
        "source_kind",
        NoticeKnownFilter,
        PersonFilter,
    )
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
        "actor",
        "second_hand",
        "collection_reference",
        "wording",
        "language",
        "unticked_by_default",
        "privacy_notice",
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

    def get_queryset(self, request: HttpRequest) -> QuerySet[ConsentRecord]:
        return with_notice(super().get_queryset(request))

    @admin.display(description=_("version"))
    def version(self, obj: ConsentRecord) -> int:
        return obj.purpose_version.number

    @admin.display(description=_("privacy policy version"))
    def privacy_notice(self, obj: ConsentRecord) -> str:
        return notice_link(obj)

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


# Seals of the ledger.

SEAL_HEAD_COLUMNS = ("number", "sealed_at", "total_count", "seal_hash", "signature", "key_id")
DOWNLOAD_HEADS_PERMISSION = "consent.download_heads_ledgerseal"


class _Echo:
    """A file-like object whose write answers the line, for a streamed CSV."""

    def write(self, value: str) -> str:
        return value


@admin.register(LedgerVerification)
class LedgerVerificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every full check of the ledger (`verify_ledger`), read-only: what the DPO shows an
    auditor to prove the proof is checked."""

    list_display = ("checked_at", "problem_count", "records", "seals", "first_problem")
    date_hierarchy = "checked_at"


@admin.register(LedgerSeal)
class LedgerSealAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The signed seals, read-only; the DPO downloads their heads to keep them elsewhere."""

    # the total and the signing key are on each seal's page: the list fits 1,366 px
    list_display = ("number", "kind", "period", "sealed_at", "record_count", "hash_prefix")
    list_filter = ("kind",)
    ordering = ("-number",)
    show_full_result_count = False

    @admin.display(description=_("seal hash"))
    def hash_prefix(self, obj: LedgerSeal) -> str:
        return obj.seal_hash[:12]

    def get_urls(self) -> list:
        return [
            path(
                "heads.csv",
                self.admin_site.admin_view(self.heads_view),
                name="consent_ledgerseal_heads",
            ),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse | TemplateResponse:
        extra_context = {
            **(extra_context or {}),
            "can_download_heads": request.user.has_perm(DOWNLOAD_HEADS_PERMISSION),
        }
        return super().changelist_view(request, extra_context)

    def heads_view(self, request: HttpRequest) -> StreamingHttpResponse:
        """Every seal head as CSV, streamed; the download is written to the audit log."""
        if not request.user.has_perm(DOWNLOAD_HEADS_PERMISSION):
            raise PermissionDenied
        heads = ledger_seal_heads()
        last = LedgerSeal.objects.order_by("-number").values_list("number", flat=True).first()
        audit_record(
            request=request,
            action=AuditAction.EXPORT,
            details={"export": "ledger_seal_heads", "last_seal": last},
        )

        def lines() -> Iterator[str]:
            writer = csv.writer(_Echo())
            yield writer.writerow(SEAL_HEAD_COLUMNS)
            for head in heads.iterator(chunk_size=2000):
                yield writer.writerow([csv_cell(head[column]) for column in SEAL_HEAD_COLUMNS])

        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        return StreamingHttpResponse(
            lines(),
            content_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="seal-heads-{stamp}.csv"'},
        )
