"""Admin for contacts (edited through the contact services), interests and the suppression list."""

from collections.abc import Iterator
from typing import Any, cast
from uuid import UUID

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import (
    BooleanField,
    Case,
    Count,
    F,
    QuerySet,
    TextField,
    Value,
    When,
    Window,
)
from django.db.models.constants import LOOKUP_SEP
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.defaultfilters import linebreaksbr
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.timezone import localtime
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from campaigns.selectors import contact_campaigns_received
from consent.admin import (
    GuardianConsentForm,
    OfflineConsentForm,
    guardian_consent_write,
    notice_link,
    offline_consent_write,
)
from consent.models import (
    Channel,
    ConsentAction,
    ConsentRecord,
    ConsentStatus,
    Purpose,
    SourceKind,
)
from consent.selectors import (
    ConsentCell,
    consent_receipt,
    contact_consent_grid,
    contact_consent_history,
    contact_latest_consent_records,
)
from consent.services import consent_record
from contacts.deliverability import returned_mail_file_apply
from contacts.imports import IMPORT_FIELDS, contacts_import_upload, import_upload_preview
from contacts.models import (
    Contact,
    ContactImport,
    ContactStatus,
    ImportStatus,
    Interest,
    Note,
    NoteStatus,
    ReturnedMailReason,
    Suppression,
    SuppressionKind,
    TimelineEvent,
    TimelineKind,
)
from contacts.normalization import normalize_email
from contacts.selectors import (
    contact_timeline,
    suppression_digests,
)
from contacts.services import (
    EDITABLE_FIELDS,
    contact_restriction_set,
    contact_save_check,
    contact_update,
    contact_upsert,
    note_add,
    note_review,
)
from core.admin import (
    AuditedModelAdmin,
    ReadOnlyAdminMixin,
    adopt_saved_instance,
)
from core.models import AuditAction
from core.services import audit_record
from core.storage import private_storage
from crmsync.selectors import contact_crm_sync
from preferences.services import preference_link_renew
from privacy.merge import contact_merge
from privacy.models import PrivacyRequestType
from privacy.selectors import contact_privacy_requests
from privacy.services import contacts_erase_many

# Shown but never edited here: each has (or will have) its own service and audit trail.
STATUS_FIELDS = (
    "public_id",
    "status",
    "paused_until",
    "profiling_objected_at",
    "marketing_objected_at",
    "processing_restricted_at",
    "email_deliverability",
    "email_undeliverable_reason",
    "postal_deliverability",
    "postal_undeliverable_reason",
    "is_minor",
    "guardian_consent_evidence",
    "last_activity_at",
    "created_at",
    "updated_at",
)
CRM_FIELDS = ("crm_record_type", "hubspot_id", "salesforce_id")
MERGE_FIELDS = ("merged_into", "merged_consent_history")
READ_ONLY_FIELDS = STATUS_FIELDS + CRM_FIELDS + MERGE_FIELDS


class CountryListFilter(admin.AllValuesFieldListFilter):
    """The countries on file; contacts without one are offered as "No country", not as a
    link without a name (an unnamed link is what a screen reader cannot announce)."""

    def choices(self, changelist: Any) -> Iterator[Any]:
        for choice in super().choices(changelist):
            if choice["display"] == "":
                choice["display"] = _("No country")
            yield choice


class ContactAdminForm(forms.ModelForm):
    """Validates with the contact service's own rules, so a save never fails half-way."""

    class Meta:
        model = Contact
        fields = ["email", *EDITABLE_FIELDS, "interests"]
        # boxes to tick, not Django's two-list filter: its search icons carry ARIA labels
        # that axe reports, and a team has a few dozen interests at most
        widgets = {"interests": forms.CheckboxSelectMultiple}

    def clean_email(self) -> str:
        return normalize_email(self.cleaned_data["email"])

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if self.instance.status == ContactStatus.ERASED:
            raise ValidationError(_("This contact was erased: nothing about it can be changed."))
        if self.instance.status == ContactStatus.MERGED:
            raise ValidationError(
                _("This contact was merged into another one: change that one instead.")
            )
        fields = {name: cleaned[name] for name in EDITABLE_FIELDS if name in cleaned}
        try:
            # The services' own validation, without writing.
            contact_save_check(
                contact=None if self.instance._state.adding else self.instance,
                email=cleaned.get("email") or "",
                fields=fields,
            )
        except ValidationError as error:
            self.add_error(None, error)
        return cleaned


# --- the contact page: read-only panels in words (templates/admin/contacts/contact/) -------

# The latest rows of the timeline and of the campaigns received the page shows.
PAGE_ROWS = 50
OFFLINE_CONSENT_PERMISSION = "contacts.record_offline_consent_contact"
# Where a ledger record came from, in words (`%(reference)s`: its source reference).
SOURCE_WORDS: dict[str, tuple[Any, Any]] = {
    # (with a reference, without one)
    SourceKind.WEB_FORM: (_("the web form %(reference)s"), _("a web form")),
    SourceKind.PREFERENCE_CENTER: (_("the preference center"), _("the preference center")),
    SourceKind.API: (_("the API (%(reference)s)"), _("the API")),
    SourceKind.IMPORT: (_("the import %(reference)s"), _("an import")),
    SourceKind.CRM: (_("the CRM %(reference)s"), _("a CRM")),
    SourceKind.ADMIN: (_("an entry by staff (%(reference)s)"), _("an entry by staff")),
    SourceKind.PAPER_FORM: (_("a paper form (%(reference)s)"), _("a paper form")),
    SourceKind.PHONE_CALL: (_("a phone call (%(reference)s)"), _("a phone call")),
    SourceKind.EMAIL_CONFIRMATION: (
        _("the confirmation link emailed to the person"),
        _("the confirmation link emailed to the person"),
    ),
    SourceKind.ONE_CLICK_UNSUBSCRIBE: (
        _("a one-click unsubscribe link"),
        _("a one-click unsubscribe link"),
    ),
    SourceKind.SYSTEM: (_("an automatic job (%(reference)s)"), _("an automatic job")),
    SourceKind.MERGE: (_("a merge of contacts"), _("a merge of contacts")),
}
CHANNEL_WORDS: dict[str, Any] = {
    Channel.EMAIL: _("by email"),
    Channel.SMS: _("by SMS"),
    Channel.POSTAL: _("by post"),
    Channel.PHONE: _("by phone"),
    Channel.PUSH: _("by push notification"),
}
ACTION_WORDS: dict[str, Any] = {
    ConsentAction.GRANT: _("granted"),
    ConsentAction.WITHDRAW: _("withdrew"),
    ConsentAction.CONFIRM: _("confirmed"),
    ConsentAction.EXPIRE: _("expired"),
}
# Timeline events as sentences (`%(summary)s`: the event's summary); a consent change is told
# from its ledger record, a privacy request by its type.
TIMELINE_SENTENCES: dict[str, Any] = {
    TimelineKind.CREATED: _("The contact was created (source: %(summary)s)."),
    TimelineKind.UPDATED: _("The contact's details were changed (%(summary)s)."),
    TimelineKind.FORM_SUBMITTED: _("The person submitted the form %(summary)s."),
    TimelineKind.CONSENT_CHANGED: _("Consent changed: %(summary)s."),
    TimelineKind.EMAIL_CHANGED: _("The email address was changed to %(summary)s."),
    TimelineKind.CONFIRMATION_SENT: _("A confirmation email was sent (%(summary)s)."),
    TimelineKind.CAMPAIGN_SENT: _("A campaign was sent: %(summary)s."),
    TimelineKind.CRM_SYNCED: _("Synchronised with a CRM: %(summary)s."),
    TimelineKind.REQUEST_FILED: _("A privacy request was filed: %(summary)s."),
    TimelineKind.INTERESTS_CHANGED: _("The interests were changed to %(summary)s."),
    TimelineKind.PAUSED: _("The person paused our messages until %(summary)s."),
    TimelineKind.RESUMED: _("The person resumed our messages."),
    TimelineKind.UNSUBSCRIBED: _("The person unsubscribed from all marketing (%(summary)s)."),
    TimelineKind.RESUBSCRIBED: _("The person subscribed again (%(summary)s)."),
    TimelineKind.PROFILING_OBJECTION: _("The person objected to profiling."),
    TimelineKind.DATA_EXPORTED: _("The person downloaded their data (%(summary)s)."),
    TimelineKind.LINK_RENEWED: _("The preference link was renewed (by %(summary)s)."),
    TimelineKind.RESTRICTION: _("The processing restriction changed (%(summary)s)."),
    TimelineKind.OBJECTION: _(
        "The person objected to processing on legitimate interests (%(summary)s)."
    ),
    TimelineKind.ERASED: _("The personal data were erased (%(summary)s)."),
    TimelineKind.REQUEST_COMPLETED: _("A privacy request was completed: %(summary)s."),
    TimelineKind.REPERMISSION_SENT: _("The person was asked to renew their consent (%(summary)s)."),
    TimelineKind.KEPT: _("The person asked to keep receiving our messages."),
    TimelineKind.MERGED: _("%(summary)s."),
    TimelineKind.EMAIL_DELIVERED: _("An email was delivered (%(summary)s)."),
    TimelineKind.EMAIL_BOUNCED: _("An email bounced (%(summary)s)."),
    TimelineKind.COMPLAINT: _("The person marked an email as spam (%(summary)s)."),
    TimelineKind.MAIL_RETURNED: _("A letter came back (%(summary)s)."),
    TimelineKind.SMS_STOPPED: _("The person answered STOP to an SMS (%(summary)s)."),
    TimelineKind.DELIVERABILITY_RESET: _(
        "The address was corrected and is deliverable again (%(summary)s)."
    ),
    TimelineKind.NOTE_ADDED: _("A note was added."),
}
# a note held by the screen: said so, never why (the categories are for the DPO's eyes)
NOTE_HELD_SENTENCE = _("A note was held for the DPO's review.")
REQUEST_KINDS = frozenset({TimelineKind.REQUEST_FILED, TimelineKind.REQUEST_COMPLETED})
# written by contacts.deliverability: their summary starts with the provider's event code;
# the page gives the reason alone (the sentence already says what happened)
FEEDBACK_KINDS = frozenset(
    {
        TimelineKind.EMAIL_DELIVERED,
        TimelineKind.EMAIL_BOUNCED,
        TimelineKind.COMPLAINT,
        TimelineKind.MAIL_RETURNED,
        TimelineKind.SMS_STOPPED,
    }
)


def record_source_words(record: ConsentRecord) -> str:
    """Where a ledger record came from, in words: "the web form https://…", "a paper form",
    "a phone call (ref)", "the CRM HubSpot:123"."""
    with_reference, without = SOURCE_WORDS.get(
        record.source_kind, (record.get_source_kind_display(), record.get_source_kind_display())
    )
    if record.source_reference:
        return str(with_reference) % {"reference": record.source_reference}
    return str(without)


def record_what(record: ConsentRecord) -> str:
    """What a ledger record says happened, in words: "granted Newsletter by email via the web
    form https://…, wording v3"."""
    what = _("%(action)s %(purpose)s %(channel)s via %(source)s, wording v%(version)d") % {
        "action": ACTION_WORDS.get(record.action, record.get_action_display()),
        "purpose": record.purpose.name,
        "channel": CHANNEL_WORDS.get(record.channel, record.get_channel_display()),
        "source": record_source_words(record),
        "version": record.purpose_version.number,
    }
    if record.status == ConsentStatus.PENDING:
        return _("%(what)s (waiting for the person's confirmation)") % {"what": what}
    return what


def record_summary(record: ConsentRecord) -> str:
    """One ledger record as a line: "12 March 2026 14:03, granted Newsletter by email via the
    web form https://…, wording v3", dated when the person acted (not when it was recorded)."""
    return _("%(when)s, %(what)s") % {
        "when": date_format(localtime(record.given_at), "j F Y H:i"),
        "what": record_what(record),
    }


def timeline_sentence(event: TimelineEvent, records: dict[str, ConsentRecord]) -> str:
    """A timeline event in words; a consent change from its ledger record (`records`, by
    uuid) when the page holds it."""
    record = records.get(str(event.data.get("record", "")))
    if event.kind == TimelineKind.CONSENT_CHANGED and record is not None:
        return _("Consent: %(what)s.") % {"what": record_what(record)}
    summary = event.summary
    if event.kind in REQUEST_KINDS and summary in PrivacyRequestType.values:
        summary = str(PrivacyRequestType(summary).label)
    elif event.kind == TimelineKind.UNSUBSCRIBED and summary in SourceKind.values:
        summary = str(SourceKind(summary).label)
    elif event.kind in FEEDBACK_KINDS and "type" in event.data:
        summary = str(event.data.get("reason", ""))
    if event.kind == TimelineKind.NOTE_ADDED:
        # worded here, never from the stored summary (older rows named the categories)
        held = event.data.get("status") == NoteStatus.HELD
        return str(NOTE_HELD_SENTENCE if held else TIMELINE_SENTENCES[event.kind])
    sentence = TIMELINE_SENTENCES.get(event.kind)
    if sentence is None:
        return ": ".join((str(event.get_kind_display()), summary))
    return (str(sentence) % {"summary": summary}).replace(" ()", "")


# --- notes: screened for special categories of data (GDPR Art. 9, 10) ----------------------


def notes_as_seen_by(request: HttpRequest, queryset: QuerySet[Note]) -> QuerySet[Note]:
    """The notes with the text this user may read (`visible_text`): a held note's text only for
    those who review notes (the DPO); for others it never leaves the database."""
    may_review = request.user.has_perm("contacts.review_note")
    text = (
        F("body")
        if may_review
        else Case(
            When(status=NoteStatus.HELD, then=Value("")),
            default=F("body"),
            output_field=TextField(),
        )
    )
    return queryset.defer("body").annotate(
        visible_text=text, text_hidden=Value(not may_review, output_field=BooleanField())
    )


# Longer notes are shown folded: their first words, the rest a click away.
NOTE_PREVIEW_LENGTH = 160


def note_text(note: Note) -> str:
    """What a note says (a long one folded), or why it says nothing here (held, discarded)."""
    if note.pk is None:
        return "-"
    hidden = getattr(note, "text_hidden", True)
    if note.status == NoteStatus.HELD and hidden:
        return str(_("Held for DPO review"))  # which special category it may be: not said either
    if note.status == NoteStatus.DISCARDED and hidden:
        return str(_("Discarded after review"))
    if note.status == NoteStatus.DISCARDED:
        return _("Discarded after review (%(categories)s)") % {
            "categories": note.categories_in_words()
        }
    text = getattr(note, "visible_text", "")
    if len(text) <= NOTE_PREVIEW_LENGTH:
        return text
    return format_html(
        "<details><summary>{}…</summary>{}</details>",
        text[:NOTE_PREVIEW_LENGTH],
        linebreaksbr(text),
    )


def note_reasons(note: Note) -> str:
    """Why a note was held, in words; "-" for one the screen let through."""
    if note.pk is None:
        return "-"
    return note.categories_in_words() or "-"


def held_message(note: Note) -> str:
    return _(
        "Your note is held for the DPO's review: it looks like special categories of data "
        "(%(categories)s, GDPR Art. 9 and 10). Others will not read it until the DPO releases "
        "it; if it has no lawful basis, it will be discarded."
    ) % {"categories": note.categories_in_words()}


class NoteInlineForm(forms.ModelForm):
    """A new note's text (the model's `body` is never a form field: existing notes are shown
    through `NoteInline.text`, a held one's text to reviewers only)."""

    text = forms.CharField(
        label=_("note"),
        widget=forms.Textarea(
            attrs={"rows": 3, "cols": 50, "class": "note-text", "aria-label": _("New note")}
        ),
    )

    class Meta:
        model = Note
        fields: list[str] = []


# The notes a contact's page lists, the latest first (reviewers open the others in the list).
CONTACT_NOTE_ROWS = 50
REVIEW_NOTE_PERMISSION = "contacts.review_note"


class NoteInlineFormSet(forms.BaseInlineFormSet):
    """New notes go through `note_add` (screened: one that looks like a special category is
    held); existing notes are never edited."""

    request: HttpRequest | None = None  # set per request by `NoteInline.get_formset`

    def save_new(self, form: forms.ModelForm, commit: bool = True) -> Note:
        request = self.request
        author = request.user if request is not None and request.user.is_authenticated else None
        note = note_add(contact=self.instance, body=form.cleaned_data["text"], author=author)
        if request is not None and note.status == NoteStatus.HELD:
            messages.warning(request, held_message(note))
        return note

    def save_existing(self, form: forms.ModelForm, obj: Note, commit: bool = True) -> Note:
        return obj

    def get_queryset(self) -> QuerySet[Note]:
        """The contact's latest notes (`CONTACT_NOTE_ROWS`), the latest first, read once with
        how many there are in all."""
        if not hasattr(self, "_queryset"):
            latest = (
                cast(QuerySet[Note], self.queryset)
                .annotate(in_all=Window(expression=Count("pk")))
                .order_by("-created_at", "-id")[:CONTACT_NOTE_ROWS]
            )
            len(latest)  # read now: the forms take their note from this list, not one by one
            self._queryset = latest
        return self._queryset

    def notes_total(self) -> int:
        latest = self.get_queryset()
        return getattr(latest[0], "in_all", 0) if latest else 0

    def notes_not_shown(self) -> int:
        return max(self.notes_total() - len(self.get_queryset()), 0)

    def all_notes_url(self) -> str:
        """The notes list on this contact, for those who may open it (the reviewers)."""
        request = self.request
        if request is None or not request.user.has_perm(REVIEW_NOTE_PERMISSION):
            return ""
        filters = urlencode({"contact__id__exact": self.instance.pk, "status": "all"})
        return f"{reverse('admin:contacts_note_changelist')}?{filters}"


class NoteInline(admin.TabularInline):
    """Notes on the contact page, the latest `CONTACT_NOTE_ROWS`: listed with their status,
    added through the screen; without `review_note`, a held note says it is held, never its
    text nor the categories it looks like."""

    model = Note
    form = NoteInlineForm
    formset = NoteInlineFormSet
    verbose_name_plural = _("notes")
    fields = ("written_at", "author_name", "status_in_words", "reasons", "text")
    readonly_fields = ("written_at", "author_name", "status_in_words", "reasons")
    extra = 1
    can_delete = False
    classes = ["notes-inline"]
    template = "admin/contacts/contact/notes_inline.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Note]:
        return notes_as_seen_by(request, super().get_queryset(request))

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = super().get_fields(request, obj)
        if request.user.has_perm(REVIEW_NOTE_PERMISSION):
            return fields
        # which special category a held note may reveal is for the DPO's eyes: the author
        # is told when writing it (the warning after adding), others see it is held
        return [name for name in fields if name != "reasons"]

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = cast(type[NoteInlineFormSet], super().get_formset(request, obj, **kwargs))
        formset.request = request  # a new class per call: the request stays this request's
        return formset

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a note is never edited: the DPO releases or discards a held one

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # notes go with the person's erasure, or the DPO discards one

    @admin.display(description=_("written at"))
    def written_at(self, obj: Note) -> str:
        if obj.pk is None:
            return "-"
        return date_format(localtime(obj.created_at), "SHORT_DATETIME_FORMAT")

    @admin.display(description=_("status"))
    def status_in_words(self, obj: Note) -> str:
        return obj.get_status_display() if obj.pk is not None else "-"

    @admin.display(description=_("held because it looks like"))
    def reasons(self, obj: Note) -> str:
        return note_reasons(obj)

    @admin.display(description=_("note"))
    def text(self, obj: Note) -> str:
        return note_text(obj)


@admin.register(Contact)
class ContactAdmin(AuditedModelAdmin):
    form = ContactAdminForm
    # the consent grid, the ledger's lines and the timeline are the page's panels, in words
    # (`render_change_form`); notes are the one table
    inlines = [NoteInline]
    actions = [
        "renew_preference_link",
        "erase_contacts",
        "restrict_processing",
        "lift_restriction",
        "merge_contacts",
        "record_guardian_consent",
    ]
    list_display = (
        "email",
        "first_name",
        "last_name",
        "status",
        "lifecycle_stage",
        "language",
        "country",
        "last_activity_at",
        "created_at",
    )
    list_filter = (
        "status",
        "lifecycle_stage",
        "relationship",
        "b2b",
        "language",
        ("country", CountryListFilter),
    )
    search_fields = ("email", "first_name", "last_name")
    readonly_fields = READ_ONLY_FIELDS
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "email",
                    "first_name",
                    "last_name",
                    "phone",
                    "company",
                    "job_title",
                    "language",
                ]
            },
        ),
        (
            _("Postal address"),
            {"fields": ["address_line1", "address_line2", "postal_code", "city", "country"]},
        ),
        (_("Marketing"), {"fields": ["lifecycle_stage", "source", "interests", "frequency"]}),
        (_("Age (GDPR Art. 8)"), {"fields": ["birth_year"]}),
        (
            _("Lawful basis"),
            {
                "fields": ["b2b", "relationship", "customer_since", "customer_until"],
                "description": _(
                    "On legitimate interest, a consumer is reached by email or SMS only as a "
                    "customer, with offers of similar products (soft opt-in), and by phone only "
                    "during a current contract; a professional contact (B2B) is reached about "
                    "their job."
                ),
            },
        ),
        (
            _("Status and deliverability"),
            {
                "fields": STATUS_FIELDS,
                "classes": ["collapse"],
            },
        ),
        (
            _("CRM"),
            {"fields": CRM_FIELDS, "classes": ["collapse"]},
        ),
    ]

    @admin.action(
        description=_(
            "Renew the preference link: links already sent stop working, a new one is emailed "
            "to the person"
        ),
        permissions=["change"],
    )
    def renew_preference_link(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        """For a forwarded or leaked link: revoke every link of the contact and email a new one
        to the person. Staff never see it: whoever holds a live link can act as the person."""
        by = request.user.get_username()
        for contact in queryset.exclude(status=ContactStatus.ERASED):
            preference_link_renew(contact=contact, by=by)
            audit_record(request=request, action=AuditAction.LINK_RENEWAL, contact=contact)
            self.message_user(
                request,
                _(
                    "The links of %(contact)s no longer work; a new one is being emailed to "
                    "the person."
                )
                % {"contact": contact},
                messages.SUCCESS,
            )

    def get_urls(self) -> list:
        return [
            path(
                "returned-mail/",
                self.admin_site.admin_view(self.returned_mail_view),
                name="contacts_contact_returned_mail",
            ),
            path(
                "<path:object_id>/record-consent/",
                self.admin_site.admin_view(self.offline_consent_view),
                name="contacts_contact_offline_consent",
            ),
            path(
                "<path:object_id>/consent-receipts/<uuid:record_uuid>/",
                self.admin_site.admin_view(self.consent_receipt_view),
                name="contacts_contact_consent_receipt",
            ),
            *super().get_urls(),
        ]

    def returned_mail_view(self, request: HttpRequest) -> HttpResponse:
        """Upload the mail house's returned-mail file: every valid line makes that postal
        address undeliverable (all together, or none); malformed lines are listed."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        form = ReturnedMailUploadForm(request.POST or None, request.FILES or None)
        result = None
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            result = returned_mail_file_apply(
                content=upload.read(),
                source_kind=SourceKind.ADMIN,
                campaign=form.cleaned_data["campaign"],
            )
            audit_record(
                request=request,
                action=AuditAction.RETURNED_MAIL,
                details={
                    "file": upload.name or "",
                    "applied": result.applied,
                    "unknown": result.unknown,
                    "rejected": len(result.rejected),
                },
            )
        return TemplateResponse(
            request,
            "admin/contacts/contact/returned_mail.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": _("Upload returned mail"),
                "form": form,
                "result": result,
                "reasons": ReturnedMailReason.choices,
            },
        )

    def audit_view(self, request: HttpRequest, obj: Contact) -> None:
        """Every opening of a contact's page is in the audit log the DPO reads."""
        audit_record(request=request, action=AuditAction.VIEW_CONTACT, contact=obj)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Every listing of contacts, with the search terms and filters, is audited."""
        response = super().changelist_view(request, extra_context)
        if request.method == "GET" and response.status_code == 200:
            filters = {
                name: value
                for name, value in request.GET.items()
                if name not in {"q", "p", "o", "_changelist_filters"}
            }
            audit_record(
                request=request,
                action=AuditAction.LIST_CONTACTS,
                details={"search": request.GET.get("q", ""), "filters": filters},
            )
        return response

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Contact], search_term: str
    ) -> tuple[QuerySet[Contact], bool]:
        # The contact picker of other admin pages searches here too (autocomplete): audited.
        match = getattr(request, "resolver_match", None)
        if search_term and match is not None and match.url_name == "autocomplete":
            audit_record(
                request=request,
                action=AuditAction.LIST_CONTACTS,
                details={"search": search_term, "via": "autocomplete"},
            )
        return super().get_search_results(request, queryset, search_term)

    def has_erase_permission(self, request: HttpRequest) -> bool:
        # Erasing and restricting are handling privacy requests (Art. 17, 18): offered only to
        # those who may file one, the DPO.
        return request.user.has_perm("privacy.add_privacyrequest")

    @admin.action(
        description=_("Erase (GDPR Art. 17): anonymise, keep only the proofs"),
        permissions=["erase"],
    )
    def erase_contacts(
        self, request: HttpRequest, queryset: QuerySet[Contact]
    ) -> TemplateResponse | None:
        """Erase after a confirmation page; the one erasure path, logged per contact."""
        if not self.has_erase_permission(request):
            raise PermissionDenied
        contacts = list(queryset.exclude(status=ContactStatus.ERASED))
        if request.POST.get("confirmed") != "yes":
            return TemplateResponse(
                request,
                "admin/contacts/contact/erase_confirmation.html",
                {
                    **self.admin_site.each_context(request),
                    "title": _("Erase these contacts?"),
                    "contacts": contacts,
                    "proof_years": settings.PROOF_RETENTION_YEARS,
                    "opts": self.model._meta,
                    "action_checkbox_name": ACTION_CHECKBOX_NAME,
                },
            )
        # several people at once: the set-based form of the one erasure path
        outcome = contacts_erase_many(
            contact_ids=[contact.pk for contact in contacts],
            reason="admin",
            source_kind=SourceKind.ADMIN,
            source_reference=request.user.get_username(),
        )
        erased = set(outcome.erased)
        for contact in contacts:  # only those it erased: a failed one was left as it was
            if contact.pk in erased:
                audit_record(
                    request=request,
                    action=AuditAction.ERASURE,
                    contact=contact,
                    details={"by": "admin action"},
                )
        self.message_user(
            request,
            _("%(count)d contact(s) erased.") % {"count": len(outcome.erased)},
            messages.SUCCESS,
        )
        if outcome.failed:
            self.message_user(
                request,
                _(
                    "%(count)d contact(s) could not be erased and were left as they were "
                    "(the error is in the logs): try again, or check their data."
                )
                % {"count": len(outcome.failed)},
                messages.ERROR,
            )
        return None

    @admin.action(
        description=_("Record a guardian's consent for a child (GDPR Art. 8)"),
        permissions=["change"],
    )
    def record_guardian_consent(
        self, request: HttpRequest, queryset: QuerySet[Contact]
    ) -> TemplateResponse | None:
        """On one contact: a form, then the guardian's grant through the one write path."""
        contacts = list(queryset.exclude(status=ContactStatus.ERASED)[:2])
        if len(contacts) != 1:
            self.message_user(request, _("Select exactly one contact."), messages.ERROR)
            return None
        contact = contacts[0]
        form = GuardianConsentForm(
            request.POST if request.POST.get("confirmed") == "yes" else None,
            request.FILES or None,
        )
        if form.is_bound and form.is_valid():
            write = guardian_consent_write(
                contact=contact, data=form.cleaned_data, by=request.user.get_username()
            )
            try:
                record = consent_record(write=write)
            except ValidationError as error:
                form.add_error(None, error.messages)
            else:
                self.message_user(
                    request,
                    _("The guardian's consent is recorded (%(status)s).")
                    % {"status": record.get_status_display()},
                    messages.SUCCESS,
                )
                return None
        return TemplateResponse(
            request,
            "admin/contacts/contact/guardian_consent.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Record a guardian's consent"),
                "contact": contact,
                "form": form,
                "opts": self.model._meta,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            },
        )

    @admin.action(description=_("Restrict processing (GDPR Art. 18)"), permissions=["erase"])
    def restrict_processing(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        self._set_restriction(request, queryset, restricted=True)

    @admin.action(description=_("Lift the processing restriction"), permissions=["erase"])
    def lift_restriction(self, request: HttpRequest, queryset: QuerySet[Contact]) -> None:
        self._set_restriction(request, queryset, restricted=False)

    def _set_restriction(
        self, request: HttpRequest, queryset: QuerySet[Contact], *, restricted: bool
    ) -> None:
        by = f"admin:{request.user.get_username()}"
        action = AuditAction.RESTRICTION if restricted else AuditAction.RESTRICTION_LIFTED
        changed = 0
        for contact in queryset.exclude(status=ContactStatus.ERASED):
            with transaction.atomic():  # the change and its audit entry, or neither
                if contact_restriction_set(contact=contact, restricted=restricted, source=by):
                    changed += 1
                    audit_record(request=request, action=action, contact=contact)
        self.message_user(
            request, _("%(count)d contact(s) changed.") % {"count": changed}, messages.SUCCESS
        )

    def get_fieldsets(self, request: HttpRequest, obj: Contact | None = None) -> list:
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None and (obj.merged_into_id or obj.merged_contacts.exists()):
            fieldsets.append((_("Merge"), {"fields": MERGE_FIELDS}))
        return fieldsets

    @admin.display(description=_("consent history of the contacts merged into this one"))
    def merged_consent_history(self, obj: Contact) -> SafeString | str:
        """How many ledger records the contacts merged into this one hold (they stay on their
        own contact; the consent history below lists them, marked), linked to the person's
        full history in the ledger."""
        count = ConsentRecord.objects.filter(contact__merged_into=obj).count()
        if not count:
            return "-"
        url = f"{reverse('admin:consent_consentrecord_changelist')}?" + urlencode(
            {"person": obj.pk}
        )
        return format_html(
            '{} <a href="{}">{}</a>',
            ngettext(
                "%(count)d record stays on a contact merged into this one.",
                "%(count)d records stay on the contacts merged into this one.",
                count,
            )
            % {"count": count},
            url,
            _("See the person's whole history"),
        )

    def has_merge_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("contacts.merge_contact")

    @admin.action(
        description=_("Merge two contacts (the same person): keep both consent histories"),
        permissions=["merge"],
    )
    def merge_contacts(
        self, request: HttpRequest, queryset: QuerySet[Contact]
    ) -> TemplateResponse | None:
        """Merge the two selected contacts into the one chosen on a confirmation page that
        shows both and what will happen; the merge and its audit entry, or neither."""
        if not self.has_merge_permission(request):
            raise PermissionDenied
        contacts = list(queryset.order_by("pk"))
        if len(contacts) != 2:
            self.message_user(request, _("Select exactly two contacts to merge."), messages.ERROR)
            return None
        chosen = {str(contact.pk): contact for contact in contacts}.get(
            request.POST.get("survivor", "")
        )
        if request.POST.get("confirmed") != "yes" or chosen is None:
            return self._merge_confirmation(request, contacts)
        merged = contacts[1] if chosen == contacts[0] else contacts[0]
        try:
            with transaction.atomic():
                survivor = contact_merge(
                    survivor=chosen, merged=merged, actor=f"admin:{request.user.get_username()}"
                )
                audit_record(
                    request=request,
                    action=AuditAction.MERGE,
                    contact=survivor,
                    details={"merged": str(merged.public_id), "survivor": str(survivor.public_id)},
                )
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return None
        self.message_user(
            request,
            _("%(merged)s was merged into %(survivor)s.")
            % {"merged": merged.email, "survivor": survivor},
            messages.SUCCESS,
        )
        return None

    def _merge_confirmation(
        self, request: HttpRequest, contacts: list[Contact]
    ) -> TemplateResponse:
        return TemplateResponse(
            request,
            "admin/contacts/contact/merge_confirmation.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Merge these two contacts?"),
                "contacts": [
                    (contact, contact.consent_records.count(), contact.timeline.count())
                    for contact in contacts
                ],
                "crm_fields": [Contact._meta.get_field(name) for name in CRM_FIELDS],
                "opts": self.model._meta,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            },
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Contact | None = None) -> tuple:
        # A marketer who could set the address could then receive the person's links: only
        # the DPO (rectification) changes it here; the person changes it in the center.
        if obj is not None and not request.user.has_perm("contacts.change_email_contact"):
            return (*READ_ONLY_FIELDS, "email")
        return tuple(READ_ONLY_FIELDS)

    def has_delete_permission(self, request: HttpRequest, obj: Contact | None = None) -> bool:
        return False  # a person leaves through erasure (Art. 17), which keeps the proofs

    def save_model(
        self, request: HttpRequest, obj: Contact, form: forms.ModelForm, change: bool
    ) -> None:
        """Write through the contact services, so the timeline and the CRM outbox follow."""
        data = form.cleaned_data
        fields = {name: data[name] for name in EDITABLE_FIELDS if name in data}
        interests = [interest.slug for interest in data["interests"]]
        if change:
            saved = contact_update(
                contact=obj, email=data.get("email", obj.email), fields=fields, interests=interests
            )
        else:
            fields["source"] = fields.get("source") or "admin"
            saved, _created = contact_upsert(
                email=data["email"], fields=fields, interests=interests
            )
        adopt_saved_instance(obj, saved)

    def save_related(
        self, request: HttpRequest, form: forms.ModelForm, formsets: list, change: bool
    ) -> None:
        # Interests were set by the service (no form.save_m2m()); the inlines are read-only,
        # saving them only records that nothing changed.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    # --- the contact page: read-only panels, a consent's receipt, an offline consent ------

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Contact | None = None,
    ) -> HttpResponse:
        if obj is not None and change:
            context.update(self._contact_panels(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _contact_panels(self, request: HttpRequest, contact: Contact) -> dict[str, Any]:
        """What the page shows above and below the form, read in a fixed number of
        statements however long the person's history."""
        latest = contact_latest_consent_records(contact, limit=PAGE_ROWS)
        records = latest.records
        by_uuid = {str(record.uuid): record for record in records}
        return {
            "consent_channels": [Channel(value).label for value in Channel.values],
            "consent_grid": [
                {
                    "purpose": row.purpose,
                    "cells": [self._consent_cell(contact, cell) for cell in row.cells],
                }
                for row in contact_consent_grid(contact)
            ],
            "ledger": [
                {
                    "summary": record_summary(record),
                    "notice": notice_link(record),
                    "own": record.contact_id == contact.pk,
                    "receipt_url": self._receipt_url(contact, record),
                    "record_url": reverse("admin:consent_consentrecord_change", args=[record.pk]),
                }
                for record in records
            ],
            "ledger_total": latest.total,
            "ledger_not_shown": latest.total - len(records),
            "ledger_url": f"{reverse('admin:consent_consentrecord_changelist')}?"
            + urlencode({"person": contact.pk}),
            "timeline": [
                {"at": event.occurred_at, "sentence": timeline_sentence(event, by_uuid)}
                for event in contact_timeline(contact, limit=PAGE_ROWS)
            ],
            "campaigns_received": contact_campaigns_received(contact, limit=PAGE_ROWS),
            "crm_sync": contact_crm_sync(contact),
            "privacy_requests": contact_privacy_requests(contact),
            "page_rows": PAGE_ROWS,
            "offline_consent_url": (
                reverse("admin:contacts_contact_offline_consent", args=[contact.pk])
                if request.user.has_perm(OFFLINE_CONSENT_PERMISSION)
                else ""
            ),
        }

    def _consent_cell(self, contact: Contact, cell: ConsentCell) -> dict[str, Any]:
        record, state = cell.record, cell.state
        return {
            "standing": cell.standing.value,
            "label": cell.standing.label,
            "given_at": record.given_at if record else None,
            "source": record_source_words(record) if record else "",
            "version": state.purpose_version.number if state else None,
            "receipt_url": self._receipt_url(contact, record) if record else "",
        }

    def _receipt_url(self, contact: Contact, record: ConsentRecord) -> str:
        return reverse("admin:contacts_contact_consent_receipt", args=[contact.pk, record.uuid])

    def consent_receipt_view(
        self, request: HttpRequest, object_id: str, record_uuid: UUID
    ) -> JsonResponse:
        """A ledger record of the person as a consent receipt (ISO/IEC TS 27560), the one the
        API and the preference center give; its opening is in the audit log."""
        contact = self.get_object(request, unquote(object_id))
        if contact is None:
            raise Http404
        if not self.has_view_permission(request, contact):
            raise PermissionDenied
        record = get_object_or_404(contact_consent_history(contact), uuid=record_uuid)
        audit_record(
            request=request,
            action=AuditAction.EXPORT,
            contact=contact,
            details={"export": "consent_receipt", "record": str(record.uuid)},
        )
        return JsonResponse(consent_receipt(record), json_dumps_params={"indent": 2})

    def offline_consent_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Record what the person signed on a paper form or said in a phone call, through the
        one consent-write path, with the write in the audit log (or neither)."""
        if not request.user.has_perm(OFFLINE_CONSENT_PERMISSION):
            raise PermissionDenied
        contact = self.get_object(request, unquote(object_id))
        if contact is None:
            raise Http404
        form = OfflineConsentForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            write = offline_consent_write(
                contact=contact, data=form.cleaned_data, by=request.user.get_username()
            )
            try:
                with transaction.atomic():
                    record = consent_record(write=write)
                    audit_record(
                        request=request,
                        action=AuditAction.OFFLINE_CONSENT,
                        contact=contact,
                        details=_offline_consent_details(record),
                    )
            except ValidationError as error:
                _add_service_errors(form, error)
            else:
                self.message_user(
                    request,
                    _("Recorded: %(what)s.") % {"what": record_what(record)},
                    messages.SUCCESS,
                )
                return redirect("admin:contacts_contact_change", contact.pk)
        return TemplateResponse(
            request,
            "admin/contacts/contact/offline_consent.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Record a consent from a paper form or a phone call"),
                "contact": contact,
                "form": form,
                "opts": self.model._meta,
            },
        )


# The service's names for what it refuses -> the offline-consent form's fields.
SERVICE_ERROR_FIELDS = {"purpose": "purpose", "channel": "channel", "given_at": "given_at"}


def _add_service_errors(form: forms.Form, error: ValidationError) -> None:
    """The consent service's refusal on the form: under the field it names, else on top."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error.messages)
        return
    for name, messages_ in error.message_dict.items():
        form.add_error(SERVICE_ERROR_FIELDS.get(name), messages_)


def _offline_consent_details(record: ConsentRecord) -> dict[str, Any]:
    evidence = getattr(record, "personal_evidence", None)
    return {
        "record": str(record.uuid),
        "source": record.source_kind,
        "reference": record.source_reference,
        "purpose": record.purpose.slug,
        "channel": record.channel,
        "action": record.action,
        "given_at": record.given_at.isoformat(),
        "document_sha256": evidence.document_sha256 if evidence else "",
    }


@admin.register(Interest)
class InterestAdmin(admin.ModelAdmin):
    list_display = ("slug", "name_fr", "name_en")
    search_fields = ("slug", "name_fr", "name_en")

    def get_readonly_fields(self, request: HttpRequest, obj: Interest | None = None) -> tuple:
        return ("slug",) if obj else ()  # the API names interests by slug

    def get_prepopulated_fields(self, request: HttpRequest, obj: Interest | None = None) -> dict:
        return {} if obj else {"slug": ("name_en",)}


@admin.register(Suppression)
class SuppressionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Only digests are stored: a search hashes the address typed, then looks it up."""

    list_display = ("digest_prefix", "kind", "reason", "created_at")
    list_filter = ("kind", "reason")
    search_fields = ("digest",)
    search_help_text = _(
        "Type a full email address or phone number to check whether it is on the list."
    )
    fields = ("digest", "kind", "reason", "created_at")
    readonly_fields = fields

    @admin.display(description=_("digest"))
    def digest_prefix(self, obj: Suppression) -> str:
        return f"{obj.digest[:16]}…"

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Suppression], search_term: str
    ) -> tuple[QuerySet[Suppression], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        digests = [
            *suppression_digests(kind=SuppressionKind.EMAIL, value=term),
            *suppression_digests(kind=SuppressionKind.PHONE, value=term),
        ]
        return queryset.filter(digest__in=digests), False


class NoteStatusFilter(admin.SimpleListFilter):
    """By status, showing the notes held for review unless another status is chosen."""

    title = _("status")
    parameter_name = "status"
    ALL = "all"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [*NoteStatus.choices, (self.ALL, _("All"))]

    def chosen(self) -> str:
        return self.value() or NoteStatus.HELD

    def choices(self, changelist: Any) -> Any:
        for value, label in self.lookup_choices:
            yield {
                "selected": self.chosen() == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }

    def queryset(self, request: HttpRequest, queryset: QuerySet[Note]) -> QuerySet[Note]:
        chosen = self.chosen()
        return queryset if chosen == self.ALL else queryset.filter(status=chosen)


class NoteReviewForm(forms.Form):
    comment = forms.CharField(
        label=_("Comment"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_(
            "Why the note may be kept (required to release it), e.g. the person's explicit "
            "consent (GDPR Art. 9(2)(a)), or why it is discarded."
        ),
    )


# The names through which a filter would reach a note's text: the field, the text the list
# annotates, and the way back to notes from the contact (`contact__notes__body`).
NOTE_TEXT_LOOKUPS = frozenset({"body", "visible_text", "text_hidden", "notes", "note"})


@admin.register(Note)
class NoteAdmin(AuditedModelAdmin):
    """The DPO's list of notes held for special categories of data: released or discarded,
    each decision audited. Notes are added from the contact's page (through the screen)."""

    # narrow enough for 1,366 px beside the filter (the author is on the note's page)
    list_display = ("created_at", "contact_link", "status", "why_held", "text")
    list_filter = (NoteStatusFilter,)
    list_select_related = ("contact",)
    fields = (
        "contact_link",
        "created_at",
        "author_name",
        "status",
        "reasons",
        "text",
        "reviewed_by_name",
        "reviewed_at",
        "review_comment",
    )
    readonly_fields = fields
    actions = ["release_notes", "discard_notes"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Note]:
        return notes_as_seen_by(request, super().get_queryset(request))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # from the contact's page, through the screen

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REVIEW_NOTE_PERMISSION)

    # The list of notes is the reviewers' (the DPO): a marketer reads and adds notes on the
    # contact's page only, where a held note's text and categories never show.
    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_review_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_review_permission(request) and super().has_view_permission(request, obj)

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        """No filter in the address reaches a note's text (`?body__startswith=` would read a
        held note letter by letter), nor crosses back to notes through the contact."""
        parts = set(lookup.split(LOOKUP_SEP))
        if parts & NOTE_TEXT_LOOKUPS:
            return False
        return super().lookup_allowed(lookup, value, request)

    @admin.display(description=_("contact"))
    def contact_link(self, obj: Note) -> str:
        url = reverse("admin:contacts_contact_change", args=[obj.contact_id])
        return format_html('<a href="{}">{}</a>', url, obj.contact)

    @admin.display(description=_("held because it looks like"))
    def reasons(self, obj: Note) -> str:
        return note_reasons(obj)

    @admin.display(description=_("why held"))
    def why_held(self, obj: Note) -> str:
        return note_reasons(obj)

    @admin.display(description=_("note"))
    def text(self, obj: Note) -> str:
        return note_text(obj)

    def audit_view(self, request: HttpRequest, obj: Note) -> None:
        audit_record(
            request=request,
            action=AuditAction.VIEW_NOTES,
            contact=obj.contact,
            details={"note": obj.pk, "status": obj.status},
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Each listing shows people's notes: audited, with its filter."""
        response = super().changelist_view(request, extra_context)
        if request.method == "GET" and response.status_code == 200:
            audit_record(
                request=request,
                action=AuditAction.VIEW_NOTES,
                details={"status": request.GET.get("status", NoteStatus.HELD)},
            )
        return response

    @admin.action(
        description=_("Release: the note is lawful and may be kept"), permissions=["review"]
    )
    def release_notes(
        self, request: HttpRequest, queryset: QuerySet[Note]
    ) -> TemplateResponse | None:
        return self._review(request, queryset, release=True)

    @admin.action(
        description=_("Discard: wipe the note's text, keep the trail"), permissions=["review"]
    )
    def discard_notes(
        self, request: HttpRequest, queryset: QuerySet[Note]
    ) -> TemplateResponse | None:
        return self._review(request, queryset, release=False)

    def _review(
        self, request: HttpRequest, queryset: QuerySet[Note], *, release: bool
    ) -> TemplateResponse | None:
        """A page with the notes and a comment, then each note through `note_review`."""
        if not self.has_review_permission(request):
            raise PermissionDenied
        notes = list(queryset.filter(status=NoteStatus.HELD).select_related("contact"))
        confirmed = request.POST.get("confirmed") == "yes"
        form = NoteReviewForm(request.POST if confirmed else None)
        if confirmed and form.is_valid():
            refused = self._apply_reviews(request, notes, release, form.cleaned_data["comment"])
            if refused is None:
                return None
            form.add_error("comment", refused)  # the same for every note: none was reviewed
        return TemplateResponse(
            request,
            "admin/contacts/note/review_confirmation.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Release these notes?") if release else _("Discard these notes?"),
                "notes": notes,
                "form": form,
                "release": release,
                "action": "release_notes" if release else "discard_notes",
                "opts": self.model._meta,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            },
        )

    def _apply_reviews(
        self, request: HttpRequest, notes: list[Note], release: bool, comment: str
    ) -> ValidationError | None:
        """Review each note, its decision and audit entry together; answers the service's
        refusal of the comment (a release needs the reason), which stops before any note."""
        by = request.user.get_username()
        action = AuditAction.NOTE_RELEASED if release else AuditAction.NOTE_DISCARDED
        done = 0
        for note in notes:
            try:
                with transaction.atomic():
                    reviewed = note_review(note=note, release=release, by=by, comment=comment)
                    audit_record(
                        request=request,
                        action=action,
                        contact=note.contact,
                        details={
                            "note": note.pk,
                            "categories": reviewed.categories,
                            "comment": reviewed.review_comment,
                        },
                    )
            except ValidationError as error:
                if "comment" in getattr(error, "error_dict", {}):
                    return ValidationError(error.error_dict["comment"])
                self.message_user(request, " ".join(error.messages), messages.ERROR)
                continue
            done += 1
        message = _("%(count)d note(s) released.") if release else _("%(count)d note(s) discarded.")
        self.message_user(request, message % {"count": done}, messages.SUCCESS)
        return None


# --- contact imports: upload, column mapping, progress -----------------------------------

IMPORT_SESSION_KEY = "contact_import_upload"
PREVIEW_ROWS = 5


class ReturnedMailUploadForm(forms.Form):
    """The mail house's file of returned letters (La Poste REFLEX reasons)."""

    file = forms.FileField(
        label=_("file"),
        help_text=_(
            "CSV (UTF-8 or Windows-1252, “,” or “;”) with a header line: a `public_id` (or "
            "`email`) column and a `reason` column."
        ),
    )
    campaign = forms.CharField(
        label=_("campaign"),
        max_length=100,
        required=False,
        help_text=_("The mailing the letters belonged to (optional)."),
    )


class ImportUploadForm(forms.Form):
    """The list, and the consent every row grants (with its proof), if any."""

    file = forms.FileField(
        label=_("file"), help_text=_("CSV (UTF-8 or Windows-1252, “,” or “;”) or XLSX.")
    )
    purpose = forms.ModelChoiceField(
        label=_("purpose consented to"),
        queryset=Purpose.objects.filter(is_active=True).order_by("slug"),
        required=False,
        to_field_name="slug",
        help_text=_("Leave empty to import contacts without consent."),
    )
    channel = forms.ChoiceField(
        label=_("channel"), choices=[("", "---------"), *Channel.choices], required=False
    )
    wording = forms.CharField(
        label=_("wording shown to the people"),
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text=_("Unless a column holds it for each row."),
    )
    source_reference = forms.CharField(
        label=_("source of the consents"),
        max_length=200,
        required=False,
        help_text=_("Where and how they were collected, unless a column holds it."),
    )

    def consent(self) -> dict[str, str]:
        data = self.cleaned_data
        purpose = data.get("purpose")
        return {
            "purpose": purpose.slug if purpose else "",
            "channel": data.get("channel") or "",
            "wording": data.get("wording") or "",
            "source_reference": data.get("source_reference") or "",
        }


class ImportMappingForm(forms.Form):
    """One field per column of the file, guessed from its header."""

    def __init__(self, *args: Any, header: list[str], guessed: dict[str, str], **kwargs: Any):
        super().__init__(*args, **kwargs)
        choices = [("", _("(ignore)")), *[(name, name) for name in IMPORT_FIELDS]]
        self.columns = header
        for index, column in enumerate(header):
            self.fields[f"column_{index}"] = forms.ChoiceField(
                label=column or f"#{index + 1}",
                choices=choices,
                required=False,
                initial=guessed.get(column, ""),
            )

    def mapping(self) -> dict[str, str]:
        return {
            column: self.cleaned_data[f"column_{index}"]
            for index, column in enumerate(self.columns)
            if column and self.cleaned_data.get(f"column_{index}")
        }


@admin.register(ContactImport)
class ContactImportAdmin(admin.ModelAdmin):
    """Imports are started from the upload page and loaded by the worker; never edited."""

    list_display = (
        "progress_link",
        "status",
        "rows",
        "processed",
        "created",
        "updated",
        "consents_recorded",
        "rejected",
        "created_by",
        "created_at",
    )
    list_filter = ("status",)
    list_display_links = None
    actions = None

    @admin.display(description=_("file"))
    def progress_link(self, obj: ContactImport) -> str:
        url = reverse("admin:contacts_contactimport_progress", args=[obj.public_id])
        return format_html('<a href="{}">{}</a>', url, obj.file_name or obj.public_id)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list:
        return [
            path(
                "<uuid:import_id>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="contacts_contactimport_progress",
            ),
            path(
                "<uuid:import_id>/progress.json",
                self.admin_site.admin_view(self.progress_json_view),
                name="contacts_contactimport_progress_json",
            ),
            *super().get_urls(),
        ]

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Step 1: upload the list (and declare its consent); step 2: map its columns."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST" and request.POST.get("step") == "mapping":
            return self._mapping_step(request)
        form = ImportUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                preview = import_upload_preview(file=upload, file_name=upload.name or "")
            except ValidationError as error:
                form.add_error("file", _error_messages(error))
            else:
                earlier = request.session.get(IMPORT_SESSION_KEY)
                if earlier:  # a list uploaded again before being mapped: forget the first
                    private_storage().delete(earlier["upload"])
                request.session[IMPORT_SESSION_KEY] = {
                    "upload": preview.upload,
                    "file_name": upload.name or "",
                    "consent": form.consent(),
                    "header": preview.header,
                    "rows": preview.rows,
                    "guessed": preview.guessed,
                }
                mapping_form = ImportMappingForm(header=preview.header, guessed=preview.guessed)
                return self._render_mapping(
                    request, mapping_form, request.session[IMPORT_SESSION_KEY]
                )
        return TemplateResponse(
            request,
            "admin/contacts/contactimport/upload.html",
            {**self._context(request, _("Import contacts")), "form": form},
        )

    def _mapping_step(self, request: HttpRequest) -> HttpResponse:
        pending = request.session.get(IMPORT_SESSION_KEY)
        if not pending:
            messages.error(request, _("Upload the file again: its upload has expired."))
            return redirect("admin:contacts_contactimport_add")
        form = ImportMappingForm(request.POST, header=pending["header"], guessed=pending["guessed"])
        if form.is_valid():
            try:
                contact_import = contacts_import_upload(
                    upload=pending["upload"],
                    file_name=pending["file_name"],
                    mapping=form.mapping(),
                    consent=pending["consent"],
                    created_by=request.user,
                )
            except ValidationError as error:
                form.add_error(None, _error_messages(error))
            else:
                del request.session[IMPORT_SESSION_KEY]
                audit_record(
                    request=request,
                    action=AuditAction.IMPORT_CONTACTS,
                    details={
                        "import": str(contact_import.public_id),
                        "file": contact_import.file_name,
                        "sha256": contact_import.file_sha256,
                        "rows": contact_import.rows,
                        "consent": contact_import.consent,
                    },
                )
                return redirect(
                    "admin:contacts_contactimport_progress", import_id=contact_import.public_id
                )
        return self._render_mapping(request, form, pending)

    def _render_mapping(
        self, request: HttpRequest, form: ImportMappingForm, pending: dict[str, Any]
    ) -> HttpResponse:
        return TemplateResponse(
            request,
            "admin/contacts/contactimport/mapping.html",
            {
                **self._context(request, _("Map the columns")),
                "form": form,
                "file_name": pending["file_name"],
                "consent": pending["consent"],
                "header": pending["header"],
                "preview": pending["rows"],
            },
        )

    def progress_view(self, request: HttpRequest, import_id: str) -> HttpResponse:
        contact_import = get_object_or_404(ContactImport, public_id=import_id)
        if not self.has_view_permission(request, contact_import):
            raise PermissionDenied
        finished = contact_import.status in (ImportStatus.DONE, ImportStatus.FAILED)
        return TemplateResponse(
            request,
            "admin/contacts/contactimport/progress.html",
            {
                **self._context(request, _("Import of %s") % contact_import.file_name),
                "contact_import": contact_import,
                "finished": finished,
                "rejections": contact_import.rejections.all() if finished else [],
                "progress_url": reverse(
                    "admin:contacts_contactimport_progress_json", args=[contact_import.public_id]
                ),
            },
        )

    def progress_json_view(self, request: HttpRequest, import_id: str) -> JsonResponse:
        """What the progress bar polls."""
        contact_import = get_object_or_404(ContactImport, public_id=import_id)
        if not self.has_view_permission(request, contact_import):
            raise PermissionDenied
        return JsonResponse(
            {
                "id": str(contact_import.public_id),
                "status": contact_import.status,
                "rows": contact_import.rows,
                "processed": contact_import.processed,
                "created": contact_import.created,
                "updated": contact_import.updated,
                "consents_recorded": contact_import.consents_recorded,
                "rejected": contact_import.rejected,
                "error": contact_import.error,
            }
        )

    def _context(self, request: HttpRequest, title: Any) -> dict[str, Any]:
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title}


def _error_messages(error: ValidationError) -> list[str]:
    if hasattr(error, "error_dict"):
        return [message for messages in error.message_dict.values() for message in messages]
    return list(error.messages)
