"""Admin: marketers build campaigns with their steps, preview the audience per step, and see
the recipients with the consent record (and its receipt) that justified each message."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from campaigns.charts import stats_context
from campaigns.models import (
    BuiltInCampaign,
    Campaign,
    CampaignKind,
    CampaignStatus,
    CampaignStep,
    Recipient,
    Segment,
    StepChannel,
    sending_permission,
)
from campaigns.notices import breach_notice_campaign_create, policy_update_campaign_create
from campaigns.postal import postal_file_response
from campaigns.repermission import RepermissionReason, repermission_campaign_create
from campaigns.selectors import campaign_audience, campaign_stats
from campaigns.sending import STARTABLE, campaign_send, campaign_test_send
from campaigns.services import CANCELLABLE, EDITABLE, campaign_cancel, step_problems
from consent.eligibility import Ineligible
from consent.models import Purpose
from consent.selectors import consent_receipt
from contacts.models import Language, LifecycleStage
from core.admin import ReadOnlyAdminMixin
from core.errors import StructuredValidationError
from core.models import AuditAction
from core.services import audit_record

# The exclusion reasons of the audience preview and the statistics, in words.
REASON_LABELS = {
    Ineligible.ERASED: _("erased"),
    Ineligible.MERGED: _("merged into another contact"),
    Ineligible.PAUSED: _("paused"),
    Ineligible.RESTRICTED: _("processing restricted"),
    Ineligible.PURPOSE_INACTIVE: _("purpose retired or not used on this channel"),
    Ineligible.OBJECTED: _("objected"),
    Ineligible.NO_CONSENT: _("no consent"),
    Ineligible.OUTDATED_WORDING: _("consent given to an outdated wording"),
    Ineligible.PENDING_CONFIRMATION: _("confirmation pending (double opt-in)"),
    Ineligible.SUPPRESSED: _("on the suppression list"),
    Ineligible.UNDELIVERABLE: _("undeliverable on this channel"),
    Ineligible.MINOR: _("minor without a guardian's consent"),
    Ineligible.FREQUENCY: _("frequency limit reached"),
    Ineligible.QUIET_HOURS: _("outside the sending hours"),
}


def reason_label(reason: str) -> str:
    return str(REASON_LABELS.get(reason, reason))  # type: ignore[call-overload]


class SegmentForm(forms.ModelForm):
    """The segment's lists as choices where the values are known; countries and sources as
    comma-separated text."""

    lifecycle_stages = forms.MultipleChoiceField(
        label=_("lifecycle stages"),
        choices=LifecycleStage.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    languages = forms.MultipleChoiceField(
        label=_("languages"),
        choices=Language.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    countries = forms.CharField(
        label=_("countries"),
        required=False,
        help_text=_("ISO 3166-1 alpha-2 codes separated by commas, e.g. FR, BE."),
    )
    sources = forms.CharField(
        label=_("sources"), required=False, help_text=_("Separated by commas.")
    )

    class Meta:
        model = Segment
        fields = [
            "name",
            "saved",
            "interests",
            "lifecycle_stages",
            "countries",
            "languages",
            "sources",
            "created_from",
            "created_until",
            "active_from",
            "active_until",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("countries", "sources"):
            self.initial[name] = ", ".join(getattr(self.instance, name) or [])

    def clean_countries(self) -> list[str]:
        codes = _split(self.cleaned_data["countries"])
        if any(len(code) != 2 or not code.isalpha() for code in codes):
            raise ValidationError(gettext("Give ISO 3166-1 alpha-2 country codes, e.g. FR."))
        return [code.upper() for code in codes]

    def clean_sources(self) -> list[str]:
        return _split(self.cleaned_data["sources"])


def _flat_messages(detail: Any, where: str = "") -> list[str]:
    """A service's field-keyed errors (`{"steps": [{}, {"channel": [...]}]}`) as lines
    ("steps 2, channel: ...") for the admin's messages."""
    if isinstance(detail, dict):
        return [
            line
            for key, value in detail.items()
            for line in _flat_messages(value, f"{where}, {key}" if where else str(key))
        ]
    if isinstance(detail, list) and any(isinstance(item, dict | list) for item in detail):
        return [
            line
            for index, item in enumerate(detail, start=1)
            for line in _flat_messages(item, f"{where} {index}")
        ]
    if isinstance(detail, list):
        return [f"{where}: {item}" for item in detail]
    return [f"{where}: {detail}"]


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentForm
    list_display = ["name", "saved", "created_at"]
    list_filter = ["saved"]
    search_fields = ["name"]
    filter_horizontal = ["interests"]


class StepFormSet(forms.BaseInlineFormSet):
    """The steps, checked by the rule the services apply (`step_problems`)."""

    def clean(self) -> None:
        super().clean()
        purpose = getattr(self.instance, "purpose", None) if self.instance.purpose_id else None
        kept = [
            form for form in self.forms if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        if not kept:
            raise ValidationError(gettext("A campaign needs at least one step."))
        kept.sort(key=lambda form: form.cleaned_data.get("position") or 0)
        for index, form in enumerate(kept):
            problems = step_problems(
                form.cleaned_data, purpose=purpose, first=index == 0, kind=self.instance.kind
            )
            for name, errors in problems.items():
                form.add_error(name if name in form.fields else None, errors)


class StepInline(admin.StackedInline):
    model = CampaignStep
    formset = StepFormSet
    extra = 0
    min_num = 1
    fieldsets = [
        (
            None,
            {
                "fields": [
                    ("position", "channel", "delay_hours", "condition"),
                    ("subject_fr", "subject_en"),
                    ("body_text_fr", "body_text_en"),
                    ("body_html_fr", "body_html_en"),
                    ("sms_text_fr", "sms_text_en"),
                ],
                "description": _(
                    "Personalise with {{ first_name }}, {{ last_name }} and {{ interests }} "
                    "(the person's interests in their language), with Django's filters and "
                    "conditions. English recipients get the French text where the English "
                    "one is empty. The unsubscribe links, the reason for the message and who "
                    "sends it are added under every email; the STOP instruction after every SMS."
                ),
            },
        )
    ]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        editable = obj is None or obj.status in EDITABLE
        if obj is not None and not request.user.has_perm(sending_permission(obj.kind)):
            editable = False  # changed only by those who may send its kind
        return editable and super().has_change_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        editable = obj is None or obj.status in EDITABLE
        return editable and super().has_add_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        editable = obj is None or obj.status in EDITABLE
        return editable and super().has_delete_permission(request, obj)


class SendForm(forms.Form):
    """Send now, or at a time in the future (scheduled)."""

    at = forms.SplitDateTimeField(
        label=_("send at"),
        required=False,
        widget=AdminSplitDateTime,
        help_text=_("Leave empty to send now."),
    )


class TestSendForm(forms.Form):
    """A step's email, sent to oneself in one language."""

    step = forms.ModelChoiceField(label=_("step"), queryset=CampaignStep.objects.none())
    language = forms.ChoiceField(label=_("language"), choices=Language.choices)

    def __init__(self, *args: Any, campaign: Campaign, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: Any = self.fields["step"]
        field.queryset = campaign.steps.filter(channel=StepChannel.EMAIL).order_by("position")


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    change_form_template = "admin/campaigns/campaign/change_form.html"
    list_display = ["name", "purpose", "status", "kind", "created_at"]
    list_filter = ["status", "kind", "purpose"]
    search_fields = ["name"]
    inlines = [StepInline]
    actions = ["cancel_campaigns"]
    readonly_fields = [
        "public_id",
        "status",
        "scheduled_at",
        "created_by",
        "audience_preview",
        "statistics",
        "stats_chart",
        "recipients_link",
    ]

    def get_urls(self) -> list:
        def view(function: Any, name: str) -> Any:
            return path(
                f"<int:campaign_id>/{name}/",
                self.admin_site.admin_view(function),
                name=f"campaigns_campaign_{name.replace('-', '_')}",
            )

        return [
            view(self.send_view, "send"),
            view(self.test_send_view, "test-send"),
            view(self.cancel_view, "cancel"),
            view(self.postal_file_view, "postal-file"),
            *super().get_urls(),
        ]

    def has_send_permission(self, request: HttpRequest, campaign: Campaign | None = None) -> bool:
        kind = campaign.kind if campaign is not None else CampaignKind.REGULAR
        return request.user.has_perm(sending_permission(kind))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """A campaign is changed only by those who may send its kind: marketing by the
        Marketers, the notices the law requires by the DPO."""
        if obj is not None and not self.has_send_permission(request, obj):
            return False
        return super().has_change_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        """A regular campaign is written by those who may send it (the Marketers)."""
        return super().has_add_permission(request) and self.has_send_permission(request)

    def formfield_for_choice_field(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "kind":
            # the built-in kinds are created with their own form (BuiltInCampaignAdmin)
            kwargs["choices"] = [(CampaignKind.REGULAR, CampaignKind.REGULAR.label)]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        campaign = self.get_object(request, object_id)
        extra = {
            "can_send": campaign is not None and self.has_send_permission(request, campaign),
            "startable": campaign is not None and campaign.status in STARTABLE,
            "cancellable": campaign is not None and campaign.status in CANCELLABLE,
            "has_email_step": campaign is not None
            and campaign.steps.filter(channel=StepChannel.EMAIL).exists(),
            "has_postal_step": campaign is not None
            and campaign.steps.filter(channel=StepChannel.POSTAL).exists(),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)

    def _campaign(self, request: HttpRequest, campaign_id: int, *, send: bool) -> Campaign:
        if not self.has_view_permission(request):
            raise PermissionDenied
        campaign = get_object_or_404(Campaign.objects.select_related("purpose"), pk=campaign_id)
        if send and not self.has_send_permission(request, campaign):
            raise PermissionDenied
        return campaign

    def _page(
        self, request: HttpRequest, campaign: Campaign, template: str, **context: Any
    ) -> TemplateResponse:
        return TemplateResponse(
            request,
            f"admin/campaigns/campaign/{template}",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "campaign": campaign,
                "title": campaign.name,
                **context,
            },
        )

    def _back(self, campaign: Campaign) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))

    def send_view(self, request: HttpRequest, campaign_id: int) -> HttpResponse:
        """Send now or schedule, after one more look at the audience per step."""
        campaign = self._campaign(request, campaign_id, send=True)
        form = SendForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                campaign = campaign_send(campaign=campaign, at=form.cleaned_data.get("at"))
            except StructuredValidationError as error:
                self._error_messages(request, error)
                return self._back(campaign)
            if campaign.status == CampaignStatus.SCHEDULED:
                text = gettext("The campaign is scheduled for %(at)s.") % {
                    "at": campaign.scheduled_at
                }
            else:
                text = gettext("The campaign is being sent.")
            self.log_change(request, campaign, text)
            self.message_user(request, text, messages.SUCCESS)
            return self._back(campaign)
        return self._page(
            request,
            campaign,
            "send.html",
            form=form,
            media=self.media + form.media,
            audience=self.audience_preview(campaign),
        )

    def test_send_view(self, request: HttpRequest, campaign_id: int) -> HttpResponse:
        """Send an email step to oneself, personalised with one's own first name."""
        campaign = self._campaign(request, campaign_id, send=False)
        if not self.has_change_permission(request, campaign):
            raise PermissionDenied
        form = TestSendForm(request.POST or None, campaign=campaign)
        if request.method == "POST" and form.is_valid():
            try:
                campaign_test_send(
                    campaign=campaign,
                    step=form.cleaned_data["step"],
                    user=request.user,  # type: ignore[arg-type]
                    language=form.cleaned_data["language"],
                )
            except StructuredValidationError as error:
                self._error_messages(request, error)
            else:
                self.message_user(
                    request,
                    gettext("A test was sent to %(email)s.") % {"email": request.user.email},  # type: ignore[union-attr]
                    messages.SUCCESS,
                )
                return self._back(campaign)
        return self._page(request, campaign, "test_send.html", form=form)

    def cancel_view(self, request: HttpRequest, campaign_id: int) -> HttpResponse:
        """Cancel: nothing more of it is sent; what was sent stays recorded."""
        campaign = self._campaign(request, campaign_id, send=True)
        if request.method == "POST":
            try:
                campaign_cancel(campaign=campaign)
            except StructuredValidationError as error:
                self._error_messages(request, error)
            else:
                self.log_change(request, campaign, gettext("Cancelled."))
                self.message_user(request, gettext("The campaign is cancelled."), messages.SUCCESS)
            return self._back(campaign)
        return self._page(request, campaign, "cancel.html")

    def postal_file_view(self, request: HttpRequest, campaign_id: int) -> StreamingHttpResponse:
        """The mail house's CSV of the postal steps."""
        campaign = self._campaign(request, campaign_id, send=True)
        audit_record(
            request=request,
            action=AuditAction.EXPORT,
            details={"export": "postal_file", "campaign": str(campaign.public_id)},
        )
        return postal_file_response(campaign)

    def _error_messages(self, request: HttpRequest, error: StructuredValidationError) -> None:
        for message in _flat_messages(error.detail):
            self.message_user(request, message, messages.ERROR)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields.append("kind")  # a campaign keeps its kind
        if obj is not None and obj.status not in EDITABLE:
            fields += ["name", "purpose", "segment"]
        return fields

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        fields = ["name", "kind", "purpose", "segment", "status", "scheduled_at", "created_by"]
        if obj is not None:
            fields = [
                "public_id",
                *fields,
                "audience_preview",
                "statistics",
                "stats_chart",
                "recipients_link",
            ]
        return fields

    def formfield_for_foreignkey(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> forms.ModelChoiceField | None:
        if db_field.name == "segment":
            # saved segments, and the campaign's own when it was given inline (API)
            match = request.resolver_match
            object_id = str(match.kwargs.get("object_id", "")) if match else ""
            own = Campaign.objects.filter(pk=int(object_id) if object_id.isdigit() else 0)
            kwargs["queryset"] = Segment.objects.filter(
                Q(saved=True) | Q(pk__in=own.values("segment"))
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Campaign, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)

    @admin.display(description=_("audience preview"))
    def audience_preview(self, campaign: Campaign) -> str:
        """Per step, who would receive it now and how many each reason excludes."""
        rows = []
        for audience in campaign_audience(campaign):
            excluded = ", ".join(
                gettext("%(reason)s: %(count)d") % {"reason": reason_label(reason), "count": count}
                for reason, count in audience.excluded.items()
            )
            rows.append(
                (
                    str(audience.step),
                    ngettext("%(count)d eligible", "%(count)d eligible", audience.eligible)
                    % {"count": audience.eligible},
                    excluded or gettext("nobody excluded"),
                )
            )
        if not rows:
            return gettext("Add a step to see its audience.")
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html(
            '<table class="audience-preview"><thead><tr><th>{}</th><th>{}</th><th>{}</th>'
            "</tr></thead><tbody>{}</tbody></table>",
            gettext("step"),
            gettext("eligible"),
            gettext("excluded, per reason"),
            body,
        )

    @admin.display(description=_("statistics"))
    def statistics(self, campaign: Campaign) -> str:
        stats = campaign_stats(campaign)
        labels = {
            "targeted": gettext("targeted"),
            "sent": gettext("sent"),
            "delivered": gettext("delivered"),
            "bounced": gettext("bounced"),
            "complained": gettext("complained"),
            "unsubscribed": gettext("unsubscribed"),
        }
        rows = [(label, stats[name]) for name, label in labels.items()]
        excluded: dict[str, int] = stats["excluded"]  # type: ignore[assignment]
        rows += [
            (gettext("excluded: %s") % reason_label(reason), count)
            for reason, count in excluded.items()
        ]
        return format_html(
            "<table>{}</table>", format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", rows)
        )

    @admin.display(description=_("statistics per step"))
    def stats_chart(self, campaign: Campaign) -> str:
        """The counts of each step as a bar chart (SVG drawn here) with its table."""
        context = stats_context(campaign_stats(campaign), reason_label)
        return render_to_string("admin/campaigns/campaign/stats.html", context)

    @admin.display(description=_("recipients"))
    def recipients_link(self, campaign: Campaign) -> str:
        url = reverse("admin:campaigns_recipient_changelist")
        return format_html(
            '<a href="{}?campaign__id__exact={}">{}</a>',
            url,
            campaign.pk,
            gettext("See the recipients and the proof of each message"),
        )

    @admin.action(description=_("Cancel the selected campaigns"), permissions=["send"])
    def cancel_campaigns(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        cancelled = 0
        for campaign in queryset.filter(status__in=CANCELLABLE):
            if self.has_send_permission(request, campaign):  # a notice: its own permission
                campaign_cancel(campaign=campaign)
                cancelled += 1
        message = ngettext(
            "%(count)d campaign cancelled.", "%(count)d campaigns cancelled.", cancelled
        )
        self.message_user(request, message % {"count": cancelled}, messages.SUCCESS)


@admin.register(Recipient)
class RecipientAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Who each step reached, with the proof: the consent record and its ISO 27560 receipt,
    or the legal basis that needed no consent."""

    list_display = [
        "campaign",
        "step",
        "contact_link",
        "status",
        "exclusion_reason",
        "sent_at",
        "legal_basis",
        "proof",
    ]
    list_filter = ["status", "step__channel", "campaign"]
    list_select_related = ["campaign", "step", "contact", "consent_record"]

    def get_urls(self) -> list:
        receipt = self.admin_site.admin_view(self.receipt_view)
        return [
            path("<int:recipient_id>/receipt/", receipt, name="campaigns_recipient_receipt"),
            *super().get_urls(),
        ]

    def receipt_view(self, request: HttpRequest, recipient_id: int) -> JsonResponse:
        """The consent receipt (ISO/IEC TS 27560) of the record that justified the message."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        recipient = get_object_or_404(
            Recipient.objects.select_related("consent_record"),
            pk=recipient_id,
            consent_record__isnull=False,
        )
        record = recipient.consent_record
        assert record is not None  # noqa: S101 - filtered above
        return JsonResponse(consent_receipt(record))

    @admin.display(description=_("contact"))
    def contact_link(self, recipient: Recipient) -> str:
        url = reverse("admin:contacts_contact_change", args=[recipient.contact_id])
        return format_html('<a href="{}">{}</a>', url, recipient.contact.public_id)

    @admin.display(description=_("proof"))
    def proof(self, recipient: Recipient) -> str:
        if recipient.consent_record is None:
            return gettext("no consent needed: %s") % recipient.get_legal_basis_display()
        record_url = reverse(
            "admin:consent_consentrecord_change", args=[recipient.consent_record_id]
        )
        receipt_url = reverse("admin:campaigns_recipient_receipt", args=[recipient.pk])
        return format_html(
            '<a href="{}">{}</a> (<a href="{}">{}</a>)',
            record_url,
            recipient.consent_record.uuid,
            receipt_url,
            gettext("receipt"),
        )


# --- the built-in kinds (issue 13 point 7): created from a form of their own ----------------

# the re-permission request's own reasons, beside the eligibility rule's
KIND_REASON_LABELS = {
    RepermissionReason.DEADLINE_PASSED: _("the request's deadline has passed"),
    RepermissionReason.CONSENT_DOCUMENTED: _("consent already documented"),
    RepermissionReason.ALREADY_ASKED: _("already asked by an earlier re-permission request"),
}
REASON_LABELS.update(KIND_REASON_LABELS)  # type: ignore[arg-type]


class BuiltInCampaignForm(forms.Form):
    """What each built-in kind needs; the services check the rest and write the content."""

    kind = forms.ChoiceField(
        label=_("kind"),
        choices=[
            (CampaignKind.REPERMISSION, CampaignKind.REPERMISSION.label),
            (CampaignKind.POLICY_UPDATE, CampaignKind.POLICY_UPDATE.label),
            (CampaignKind.BREACH_NOTICE, CampaignKind.BREACH_NOTICE.label),
        ],
    )
    name = forms.CharField(label=_("name"), max_length=200, required=False)
    segment = forms.ModelChoiceField(
        label=_("segment"),
        queryset=Segment.objects.filter(saved=True),
        required=False,
        help_text=_("Empty: every contact."),
    )
    purpose = forms.ModelChoiceField(
        label=_("purpose"),
        queryset=Purpose.objects.filter(is_active=True),
        required=False,
        help_text=_("Re-permission: the purpose whose undocumented consents are asked again."),
    )
    deadline = forms.DateTimeField(
        label=_("confirmation deadline"),
        required=False,
        help_text=_("Re-permission: those who have not confirmed by then lose the purpose."),
    )
    summary_fr = forms.CharField(
        label=_("what changes (French)"), widget=forms.Textarea, required=False
    )
    summary_en = forms.CharField(
        label=_("what changes (English)"), widget=forms.Textarea, required=False
    )
    nature_fr = forms.CharField(
        label=_("nature of the breach (French)"), widget=forms.Textarea, required=False
    )
    nature_en = forms.CharField(
        label=_("nature of the breach (English)"), widget=forms.Textarea, required=False
    )
    consequences_fr = forms.CharField(
        label=_("likely consequences (French)"), widget=forms.Textarea, required=False
    )
    consequences_en = forms.CharField(
        label=_("likely consequences (English)"), widget=forms.Textarea, required=False
    )
    measures_fr = forms.CharField(
        label=_("measures taken or proposed (French)"), widget=forms.Textarea, required=False
    )
    measures_en = forms.CharField(
        label=_("measures taken or proposed (English)"), widget=forms.Textarea, required=False
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("kind") == CampaignKind.REPERMISSION:
            for name in ("purpose", "deadline"):
                if not data.get(name):
                    self.add_error(name, gettext("A re-permission request needs it."))
        if data.get("kind") == CampaignKind.BREACH_NOTICE and not data.get("segment"):
            self.add_error(
                "segment",
                gettext(
                    "Choose the segment of the persons concerned (the breach register "
                    "gives them one by one)."
                ),
            )
        return data

    def create(self, user: Any) -> Campaign:
        data = self.cleaned_data
        common = {"name": data["name"], "segment": data["segment"], "created_by": user}
        if data["kind"] == CampaignKind.REPERMISSION:
            return repermission_campaign_create(
                purpose=data["purpose"], deadline=data["deadline"], **common
            )
        if data["kind"] == CampaignKind.POLICY_UPDATE:
            summary = {"fr": data["summary_fr"], "en": data["summary_en"]}
            return policy_update_campaign_create(summary=summary, **common)

        def both(name: str) -> dict[str, str]:
            return {"fr": data[f"{name}_fr"], "en": data[f"{name}_en"]}

        return breach_notice_campaign_create(
            nature=both("nature"),
            consequences=both("consequences"),
            measures=both("measures"),
            name=data["name"],
            segment=data["segment"],
            created_by=user,
        )


@admin.register(BuiltInCampaign)
class BuiltInCampaignAdmin(admin.ModelAdmin):
    """The campaigns of the built-in kinds: listed here, created from `BuiltInCampaignForm`
    (which writes their French and English content), then edited, previewed and sent as any
    campaign (their change page is the campaign's)."""

    list_display = ["name", "kind", "status", "deadline", "created_at"]
    list_filter = ["kind", "status"]
    search_fields = ["name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[BuiltInCampaign]:
        return super().get_queryset(request).exclude(kind=CampaignKind.REGULAR)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("campaigns.view_campaign")

    def has_add_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return user.has_perm("campaigns.add_campaign") and any(
            user.has_perm(sending_permission(kind)) for kind in CampaignKind.values
        )

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[object_id]))

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = BuiltInCampaignForm(request.POST or None)
        # each kind for those who may send it: a notice reaches people whatever their
        # marketing choices, the DPO's; a re-permission request is marketing, the Marketers'
        kind: Any = form.fields["kind"]
        kind.choices = [
            choice
            for choice in kind.choices
            if request.user.has_perm(sending_permission(choice[0]))
        ]
        if request.method == "POST" and form.is_valid():
            try:
                campaign = form.create(request.user)
            except StructuredValidationError as error:
                for name, problems in dict(error.detail).items():
                    form.add_error(name if name in form.fields else None, problems)
            else:
                self.message_user(
                    request,
                    gettext("Draft created: check its content, preview its audience, send it."),
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:campaigns_campaign_change", args=[campaign.pk])
                )
        return TemplateResponse(
            request,
            "admin/campaigns/builtin_add.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": gettext("New built-in campaign"),
                "form": form,
            },
        )
