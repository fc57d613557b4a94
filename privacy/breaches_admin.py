"""Admin for the breach register (GDPR Art. 33/34): the DPO records each breach, watches its
72-hour deadline, records the authority decision, and starts the notification of the persons
concerned. Exported as CSV and printed through `RegisterAdminMixin`."""

from copy import copy
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.formats import localize
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from campaigns.models import CampaignKind, Segment, sending_permission
from consent.selectors import controller_identity
from contacts.normalization import normalize_email
from contacts.selectors import contacts_find_many
from core.admin import LabelledDateTimeMixin, adopt_saved_instance
from core.admin_registers import RegisterAdminMixin
from core.errors import StructuredValidationError
from privacy.breaches import (
    breach_change_check,
    breach_check,
    breach_notify_persons,
    breach_record,
    breach_update,
)
from privacy.models import Breach, BreachChange, BreachRisk, BreachStatus
from privacy.selectors import (
    breach_deadline_in_words,
    breach_persons_told_at,
    breaches_for_register,
    breaches_pending_decision,
)

# What staff write on a breach, in the order of the page.
WRITTEN = (
    "reference",
    "aware_at",
    "nature",
    "consequences",
    "persons_categories",
    "persons_count",
    "records_categories",
    "records_count",
    "risk",
    "risk_reasoning",
    "measures",
    "authority_notified_at",
    "authority_reference",
    "delay_reasons",
    "not_notified",
    "not_notified_reason",
    "persons_told",
    "persons_told_at",
    "closed_at",
)
TEXT = forms.Textarea(attrs={"rows": 3})


class BreachForm(forms.ModelForm):
    reason = forms.CharField(
        label=_("reason for the change"),
        widget=TEXT,
        required=False,
        help_text=_(
            "Required to move the time of awareness once a reminder went or a decision was "
            "taken, to change the risk, a decision, its reasons or a time recorded, or to "
            "reopen the breach; kept in the breach's history."
        ),
    )

    class Meta:
        model = Breach
        fields = WRITTEN
        widgets = {
            name: TEXT
            for name in (
                "nature",
                "consequences",
                "persons_categories",
                "records_categories",
                "risk_reasoning",
                "measures",
                "delay_reasons",
                "not_notified_reason",
            )
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            self.fields["aware_at"].initial = timezone.now

    def clean(self) -> dict[str, Any]:
        # The service refuses it too, but only a form error shows next to its field.
        data = super().clean() or {}
        written = {name: value for name, value in data.items() if name in WRITTEN}
        candidate = copy(self.instance)
        for name, value in written.items():
            setattr(candidate, name, value)
        stored = self.instance if self.instance.pk is not None else None
        checks = [lambda: breach_check(breach=candidate, stored=stored)]
        if self.instance.pk is not None:
            # as `save_model` writes them: the fields the form changed
            changes = {name: written[name] for name in self.changed_data if name in written}
            reason = data.get("reason") or ""
            checks.append(
                lambda: breach_change_check(breach=self.instance, changes=changes, reason=reason)
            )
        for check in checks:
            try:
                check()
            except ValidationError as error:
                for name, problems in error.message_dict.items():
                    if name not in self.errors:  # a field's own error says enough
                        self.add_error(name if name in self.fields else None, problems)
        return data


class BreachStatusFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return list(BreachStatus.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Breach]) -> QuerySet[Breach]:
        now = timezone.now()
        pending = Q(pk__in=breaches_pending_decision().values("pk"))
        undecided_open = Q(closed_at__isnull=True, authority_notified_at__isnull=True)
        conditions: dict[str, Q] = {
            BreachStatus.OPEN: pending & Q(authority_deadline__gte=now),
            BreachStatus.LATE: pending & Q(authority_deadline__lt=now),
            BreachStatus.NOTIFIED: Q(closed_at__isnull=True, authority_notified_at__isnull=False),
            BreachStatus.NOT_NOTIFIED: undecided_open & Q(not_notified=True),
            BreachStatus.CLOSED: Q(closed_at__isnull=False),
        }
        value = self.value()
        return queryset.filter(conditions[value]) if value in conditions else queryset


@admin.register(Breach)
class BreachAdmin(LabelledDateTimeMixin, RegisterAdminMixin, admin.ModelAdmin):
    """The breach register: every breach, notified or not, with its facts, effects, remedial
    action and decisions (GDPR Art. 33(5)). Entries are never deleted."""

    form = BreachForm
    list_display = ("reference", "aware_at", "deadline", "status", "risk")
    list_filter = (BreachStatusFilter, "risk")
    search_fields = ("reference", "authority_reference")
    actions = None
    fieldsets = (
        (_("What happened"), {"fields": ("reference", "aware_at", "nature", "consequences")}),
        (
            _("Who and what it concerns"),
            {
                "fields": (
                    "persons_categories",
                    "persons_count",
                    "records_categories",
                    "records_count",
                )
            },
        ),
        (_("The risk to the persons"), {"fields": ("risk", "risk_reasoning")}),
        (_("What we do about it"), {"fields": ("measures",)}),
        (
            _("The authority (CNIL), within 72 hours"),
            {
                "fields": (
                    "authority_deadline",
                    "deadline",
                    "authority_notified_at",
                    "authority_reference",
                    "delay_reasons",
                    "not_notified",
                    "not_notified_reason",
                )
            },
        ),
        (
            _("The persons concerned"),
            {
                "fields": (
                    "notification",
                    "notification_sent",
                    "persons_told",
                    "persons_told_at",
                    "told_at",
                )
            },
        ),
        (
            _("The entry"),
            {
                "fields": (
                    "status",
                    "closed_at",
                    "recorded_by",
                    "recorded_at",
                    "reminded_24h_at",
                    "reminded_48h_at",
                    "reason",
                    "history",
                )
            },
        ),
    )
    readonly_fields = (
        "authority_deadline",
        "deadline",
        "notification",
        "status",
        "recorded_by",
        "recorded_at",
        "reminded_24h_at",
        "reminded_48h_at",
        "notification_sent",
        "told_at",
        "history",
    )
    register_columns = (
        "reference",
        "aware_at",
        "authority_deadline",
        "status",
        "nature",
        "persons_categories",
        "persons_count",
        "records_categories",
        "records_count",
        "consequences",
        "measures",
        "risk",
        "risk_reasoning",
        "authority_notified_at",
        "authority_reference",
        "delay_reasons",
        "not_notified",
        "not_notified_reason",
        "persons_told",
        "persons_told_at",
        "told_at",
        "notification_campaign",
        "notification_sent",
        "closed_at",
        "recorded_by",
        "recorded_at",
        "history_text",
    )

    def get_fieldsets(self, request: HttpRequest, obj: Breach | None = None) -> Any:
        if obj is not None:
            return self.fieldsets
        # a new breach: what staff write, the rest comes once it is recorded
        return [
            (title, {"fields": [name for name in options["fields"] if name in WRITTEN]})
            for title, options in self.fieldsets
        ]

    def has_delete_permission(self, request: HttpRequest, obj: Breach | None = None) -> bool:
        return False  # a register keeps its history (Art. 33(5))

    def register_entries(self, request: HttpRequest) -> QuerySet[Any]:
        # the campaign, its first send and the history, for every entry at once
        return breaches_for_register(super().register_entries(request))

    def register_header(self, request: HttpRequest) -> dict[str, Any]:
        identity = controller_identity()
        controller = "\n".join(part for part in (identity["name"], identity["address"]) if part)
        return {
            gettext("Controller"): controller,
            gettext("Data protection officer"): identity["dpo_contact"],
        }

    @admin.display(description=_("time left"))
    def deadline(self, obj: Breach) -> str:
        return breach_deadline_in_words(breach=obj) or "-"

    @admin.display(description=_("status"))
    def status(self, obj: Breach) -> str:
        return str(obj.status.label)

    @admin.display(description=_("notification of the persons (Art. 34)"))
    def notification(self, obj: Breach) -> str:
        campaign = obj.notification_campaign
        if campaign is not None:
            url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
            return format_html(
                '<a href="{}">{}</a> ({})', url, campaign.name, campaign.get_status_display()
            )
        url = reverse("admin:privacy_breach_notify", args=[obj.pk])
        return format_html(
            '<a class="button" href="{}">{}</a>', url, gettext("Notify the persons concerned")
        )

    @admin.display(description=_("notification campaign's status"))
    def notification_sent(self, obj: Breach) -> str:
        campaign = obj.notification_campaign
        if campaign is None:
            return "-"
        sent = campaign.finished_at or campaign.started_at
        if sent is None:
            return str(campaign.get_status_display())
        return gettext("%(status)s, sent %(sent)s") % {
            "status": campaign.get_status_display(),
            "sent": localize(timezone.localtime(sent)),
        }

    @admin.display(description=_("persons told at (recorded or first sent)"))
    def told_at(self, obj: Breach) -> str:
        told_at = breach_persons_told_at(breach=obj)
        return localize(timezone.localtime(told_at)) if told_at is not None else "-"

    @admin.display(description=_("history of the decisive fields"))
    def history(self, obj: Breach) -> str:
        changes = list(obj.changes.all())
        if not changes:
            return gettext("No change since it was recorded.")
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (_change_cells(change) for change in changes),
        )
        return format_html(
            '<details class="breach-history"><summary>{}</summary><table>'
            "<thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th>"
            "</tr></thead><tbody>{}</tbody></table></details>",
            ngettext("%(count)s change", "%(count)s changes", len(changes))
            % {"count": len(changes)},
            gettext("When"),
            gettext("Who"),
            gettext("Field"),
            gettext("Before"),
            gettext("After"),
            gettext("Reason"),
            rows,
        )

    @admin.display(description=_("history of the decisive fields"))
    def history_text(self, obj: Breach) -> str:
        return "\n".join(
            gettext("%(when)s, %(who)s: %(field)s %(old)s -> %(new)s (%(reason)s)")
            % dict(
                zip(
                    ("when", "who", "field", "old", "new", "reason"),
                    _change_cells(change),
                    strict=True,
                )
            )
            for change in obj.changes.all()
        )

    def save_model(
        self, request: HttpRequest, obj: Breach, form: forms.ModelForm, change: bool
    ) -> None:
        fields = {name: form.cleaned_data[name] for name in WRITTEN if name in form.cleaned_data}
        if change:
            changed = {name: fields[name] for name in form.changed_data if name in fields}
            breach_update(
                breach=obj,
                by=request.user.get_username(),
                reason=form.cleaned_data.get("reason") or "",
                **changed,
            )
            return
        saved = breach_record(by=request.user.get_username(), **fields)
        adopt_saved_instance(obj, saved)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:breach_id>/notify/",
                self.admin_site.admin_view(self.notify_view),
                name="privacy_breach_notify",
            ),
            *super().get_urls(),
        ]

    def has_notify_permission(self, request: HttpRequest, breach: Breach) -> bool:
        """The breach's to change, and the breach notices' to write (the DPO's)."""
        user = request.user
        return (
            self.has_change_permission(request, breach)
            and user.has_perm("campaigns.add_campaign")
            and user.has_perm(sending_permission(CampaignKind.BREACH_NOTICE))
        )

    def notify_view(self, request: HttpRequest, breach_id: int) -> HttpResponse:
        """Create the draft notification campaign to the persons concerned and link it."""
        breach = get_object_or_404(Breach, pk=breach_id)
        if not self.has_notify_permission(request, breach):
            raise PermissionDenied
        form = NotifyPersonsForm(request.POST or None, breach=breach)
        if request.method == "POST" and form.is_valid():
            try:
                campaign = form.create(breach=breach, user=request.user)
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
            "admin/privacy/breach/notify.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": gettext("Notify the persons concerned"),
                "breach": breach,
                "form": form,
            },
        )


class NotifyPersonsForm(forms.Form):
    """Who is told of a breach (GDPR Art. 34), and what: the breach's texts by default."""

    emails = forms.CharField(
        label=_("email addresses of the persons concerned"),
        widget=forms.Textarea(attrs={"rows": 5}),
        required=False,
        help_text=_("One a line (or separated by commas); or choose a segment below."),
    )
    segment = forms.ModelChoiceField(
        label=_("or a segment"), queryset=Segment.objects.filter(saved=True), required=False
    )
    name = forms.CharField(label=_("campaign name"), max_length=200, required=False)
    nature_fr = forms.CharField(label=_("what happened (French)"), widget=TEXT)
    nature_en = forms.CharField(label=_("what happened (English)"), widget=TEXT, required=False)
    consequences_fr = forms.CharField(label=_("likely consequences (French)"), widget=TEXT)
    consequences_en = forms.CharField(
        label=_("likely consequences (English)"), widget=TEXT, required=False
    )
    measures_fr = forms.CharField(label=_("measures taken or proposed (French)"), widget=TEXT)
    measures_en = forms.CharField(
        label=_("measures taken or proposed (English)"), widget=TEXT, required=False
    )

    def __init__(self, *args: Any, breach: Breach, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.contact_ids: list[int] = []
        self.fields["name"].initial = gettext("Breach notification: %(reference)s") % {
            "reference": breach.reference
        }
        for name in ("nature", "consequences", "measures"):
            self.fields[f"{name}_fr"].initial = getattr(breach, name)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        addresses = [
            part.strip()
            for part in (data.get("emails") or "").replace(",", "\n").splitlines()
            if part.strip()
        ]
        if bool(addresses) == bool(data.get("segment")):
            raise ValidationError(
                gettext("Give the addresses of the persons concerned or a segment, one of them.")
            )
        if addresses:
            self._find(addresses)
        return data

    def _find(self, addresses: list[str]) -> None:
        found = contacts_find_many(emails=addresses).by_email
        unknown = [address for address in addresses if _normalized(address) not in found]
        if unknown:
            self.add_error(
                "emails",
                gettext("No contact has these addresses: %(addresses)s")
                % {"addresses": ", ".join(unknown[:20])},
            )
        self.contact_ids = sorted({contact.pk for contact in found.values()})

    def create(self, *, breach: Breach, user: Any) -> Any:
        data = self.cleaned_data

        def both(name: str) -> dict[str, str]:
            return {"fr": data[f"{name}_fr"], "en": data[f"{name}_en"]}

        return breach_notify_persons(
            breach=breach,
            contacts=self.contact_ids if self.contact_ids else None,
            segment=data["segment"],
            nature=both("nature"),
            consequences=both("consequences"),
            measures=both("measures"),
            name=data["name"],
            created_by=user,
        )


def _normalized(address: str) -> str:
    try:
        return normalize_email(address)
    except ValidationError:
        return ""


def _change_cells(change: BreachChange) -> tuple[str, ...]:
    """A change as a person reads it: when, who, which field, before, after, why."""
    return (
        localize(timezone.localtime(change.changed_at)),
        change.changed_by or "-",
        BreachChange.field_label(change.field),
        _shown(change.field, change.old_value),
        _shown(change.field, change.new_value),
        change.reason or "-",
    )


def _shown(name: str, value: str) -> str:
    """A value the history keeps as text (`privacy.breaches`), as a person reads it."""
    if value == "":
        return "-"
    field = Breach._meta.get_field(name)
    if isinstance(field, models.BooleanField):
        return gettext("yes") if value == "1" else gettext("no")
    if isinstance(field, models.DateTimeField):
        at = parse_datetime(value)
        return localize(timezone.localtime(at)) if at is not None else value
    if name == "risk":
        return str(BreachRisk(value).label) if value in BreachRisk.values else value
    return value
