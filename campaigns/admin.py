"""Admin: marketers build campaigns with their steps, preview the audience per step, and see
the recipients with the consent record (and its receipt) that justified each message."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q, QuerySet
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from campaigns.charts import stats_context
from campaigns.models import Campaign, CampaignStep, Recipient, Segment
from campaigns.selectors import campaign_audience, campaign_stats
from campaigns.services import CANCELLABLE, EDITABLE, campaign_cancel, step_problems
from consent.eligibility import Ineligible
from consent.selectors import consent_receipt
from contacts.models import Language, LifecycleStage
from core.admin import ReadOnlyAdminMixin

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
            problems = step_problems(form.cleaned_data, purpose=purpose, first=index == 0)
            for name, errors in problems.items():
                form.add_error(name if name in form.fields else None, errors)


class StepInline(admin.StackedInline):
    model = CampaignStep
    formset = StepFormSet
    extra = 0
    min_num = 1
    fields = [
        ("position", "channel", "delay_hours", "condition"),
        ("subject_fr", "subject_en"),
        ("body_text_fr", "body_text_en"),
        ("body_html_fr", "body_html_en"),
        ("sms_text_fr", "sms_text_en"),
    ]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        editable = obj is None or obj.status in EDITABLE
        return editable and super().has_change_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        editable = obj is None or obj.status in EDITABLE
        return editable and super().has_add_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        editable = obj is None or obj.status in EDITABLE
        return editable and super().has_delete_permission(request, obj)


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
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

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.status not in EDITABLE:
            fields += ["name", "kind", "purpose", "segment"]
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

    @admin.action(description=_("Cancel the selected campaigns"))
    def cancel_campaigns(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        cancelled = 0
        for campaign in queryset.filter(status__in=CANCELLABLE):
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
