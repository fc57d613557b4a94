"""Admin for the register of processing activities (GDPR Art. 30) and the processor register
(Art. 28): kept in step when their list opens, exported as CSV and printed for an auditor."""

from collections.abc import Iterable, Iterator
from typing import Any

from django import forms
from django.contrib import admin
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from consent.selectors import controller_identity
from core.admin_registers import RegisterAdminMixin
from privacy.models import (
    PROCESSOR_CHECKLIST,
    ActivityKind,
    ProcessingActivity,
    Processor,
)
from privacy.registers import (
    activities_with_processors,
    activity_channels,
    activity_data_categories,
    activity_data_subjects,
    activity_description,
    activity_legal_basis,
    activity_recipients,
    activity_retention,
    activity_security_measures,
    activity_transfers,
    checklist_ticks,
    processing_register_sync,
    processor_missing,
    processor_register_sync,
    processors_to_complete,
    transfer_safeguard,
)


def controller_header() -> dict[str, str]:
    """The controller and its DPO (GDPR Art. 30(1)(a)), from the settings."""
    identity = controller_identity(cached=True)
    return {
        str(_("Controller")): "\n".join(
            part for part in (identity["name"], identity["address"]) if part
        ),
        str(_("Data protection officer")): identity["dpo_contact"],
    }


@admin.register(ProcessingActivity)
class ProcessingActivityAdmin(RegisterAdminMixin, admin.ModelAdmin):
    change_list_template = "admin/privacy/processingactivity/change_list.html"
    list_display = (
        "name_column",
        "kind",
        "legal_basis_column",
        "channels_column",
        "is_active",
        "updated_at",
    )
    list_display_links = ("name_column",)
    list_filter = ("is_active", "kind")
    search_fields = ("name_fr", "name_en", "purpose__slug", "purpose__name_fr", "purpose__name_en")
    list_select_related = ("purpose",)
    register_columns = (
        "name_column",
        "kind",
        "description_column",
        "legal_basis_column",
        "channels_column",
        "data_subjects_column",
        "data_categories_column",
        "recipients_column",
        "transfers_column",
        "retention_column",
        "security_column",
        "controller_column",
        "dpo_column",
        "is_active",
        "updated_at",
    )
    actions = None

    def get_fieldsets(self, request: HttpRequest, obj: ProcessingActivity | None = None) -> Any:
        # a purpose's entry reads its name and legal basis from the purpose
        of_a_purpose = obj is not None and obj.kind == ActivityKind.MARKETING
        names = ["name_column"] if of_a_purpose else ["name_fr", "name_en"]
        basis = [] if of_a_purpose else ["legal_basis"]
        return [
            (None, {"fields": ["kind", "purpose", *names, "is_active"]}),
            (
                _("The DPO's entries (empty: the default shown below)"),
                {
                    "fields": [
                        "description",
                        *basis,
                        "data_subjects",
                        "data_categories",
                        "recipients",
                        "transfers",
                        "retention_note",
                        "security_measures",
                    ]
                },
            ),
            (
                _("As the register shows it"),
                {
                    "fields": [
                        "description_column",
                        "legal_basis_column",
                        "channels_column",
                        "data_subjects_column",
                        "data_categories_column",
                        "recipients_column",
                        "transfers_column",
                        "retention_column",
                        "security_column",
                        "updated_at",
                    ],
                    "classes": ["collapse"],
                },
            ),
        ]

    def get_readonly_fields(
        self, request: HttpRequest, obj: ProcessingActivity | None = None
    ) -> tuple[str, ...]:
        shown = (
            "description_column",
            "legal_basis_column",
            "channels_column",
            "data_subjects_column",
            "data_categories_column",
            "recipients_column",
            "transfers_column",
            "retention_column",
            "security_column",
            "updated_at",
        )
        if obj is None:
            return shown
        # a purpose's entry follows the purpose: it is active as the purpose is
        if obj.kind == ActivityKind.MARKETING:
            return ("kind", "purpose", "name_column", "is_active", *shown)
        return ("kind", "purpose", *shown)

    def register_refresh(self, request: HttpRequest) -> None:
        # those who keep the register bring it in step; a reader's visit writes nothing
        # (the daily `sync_registers` job keeps it in step for them)
        if self.has_change_permission(request):
            processing_register_sync()

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {"controller": controller_header(), **(extra_context or {})}
        return super().changelist_view(request, context)

    def register_header(self, request: HttpRequest) -> dict[str, Any]:
        return controller_header()

    def register_rows(self, entries: Iterable[models.Model]) -> Iterator[list[tuple[str, str]]]:
        # the processors each line names, read once for the whole register
        return super().register_rows(activities_with_processors(entries))  # type: ignore[arg-type]

    @admin.display(description=_("name"))
    def name_column(self, obj: ProcessingActivity) -> str:
        return obj.name

    @admin.display(description=_("purposes of the processing"))
    def description_column(self, obj: ProcessingActivity) -> str:
        return activity_description(obj)

    @admin.display(description=_("legal basis"))
    def legal_basis_column(self, obj: ProcessingActivity) -> str:
        return activity_legal_basis(obj)

    @admin.display(description=_("channels"))
    def channels_column(self, obj: ProcessingActivity) -> str:
        return activity_channels(obj)

    @admin.display(description=_("categories of data subjects"))
    def data_subjects_column(self, obj: ProcessingActivity) -> str:
        return activity_data_subjects(obj)

    @admin.display(description=_("categories of personal data"))
    def data_categories_column(self, obj: ProcessingActivity) -> str:
        return activity_data_categories(obj)

    @admin.display(description=_("recipients"))
    def recipients_column(self, obj: ProcessingActivity) -> str:
        return activity_recipients(obj)

    @admin.display(description=_("transfers outside the EU and their safeguards"))
    def transfers_column(self, obj: ProcessingActivity) -> str:
        return activity_transfers(obj)

    @admin.display(description=_("retention"))
    def retention_column(self, obj: ProcessingActivity) -> str:
        return activity_retention(obj)

    @admin.display(description=_("security measures"))
    def security_column(self, obj: ProcessingActivity) -> str:
        return activity_security_measures(obj)

    @admin.display(description=_("controller"))
    def controller_column(self, obj: ProcessingActivity) -> str:
        return controller_header()[str(_("Controller"))]

    @admin.display(description=_("data protection officer"))
    def dpo_column(self, obj: ProcessingActivity) -> str:
        return controller_identity(cached=True)["dpo_contact"]


class ToCompleteFilter(admin.SimpleListFilter):
    """Entries that still lack a country, a DPA, a transfer tool, a clause ..."""

    title = _("to complete")
    parameter_name = "to_complete"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "yes":
            return queryset.filter(processors_to_complete())
        if self.value() == "no":
            return queryset.exclude(processors_to_complete())
        return queryset


class ProcessorForm(forms.ModelForm):
    class Meta:
        model = Processor
        fields = [
            "name",
            "service",
            "country",
            "hosting_region",
            "sub_processors",
            "is_active",
            "transfer_tool",
            "dpf_checked_on",
            "transfer_assessment_on",
            "dpa_signed_on",
            "breach_notice_hours",
            "end_of_contract",
            "risk",
            *PROCESSOR_CHECKLIST,
        ]

    def clean_country(self) -> str:
        return (self.cleaned_data.get("country") or "").strip().upper()


@admin.register(Processor)
class ProcessorAdmin(RegisterAdminMixin, admin.ModelAdmin):
    form = ProcessorForm
    list_display = (
        "name",
        "service",
        "country_column",
        "dpa_signed_on",
        "risk",
        "to_complete_column",
        "is_active",
    )
    list_filter = (ToCompleteFilter, "service", "risk", "is_active")
    search_fields = ("name", "country", "sub_processors")
    list_select_related = ("connection",)
    register_columns = (
        "name",
        "service",
        "country",
        "outside_eu_column",
        "hosting_region",
        "sub_processors",
        "transfer_column",
        "dpa_signed_on",
        "breach_notice_hours",
        "end_of_contract",
        "checklist_column",
        "risk",
        "connection",
        "is_active",
        "to_complete_column",
        "updated_at",
    )
    readonly_fields = ("connection", "found_from", "outside_eu_column", "updated_at")
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "service",
                    "country",
                    "outside_eu_column",
                    "hosting_region",
                    "sub_processors",
                    "is_active",
                    "connection",
                    "found_from",
                ]
            },
        ),
        (
            _("Transfer outside the EU/EEA"),
            {"fields": ["transfer_tool", "dpf_checked_on", "transfer_assessment_on"]},
        ),
        (
            _("Contract (GDPR Art. 28)"),
            {"fields": ["dpa_signed_on", "breach_notice_hours", "end_of_contract", "risk"]},
        ),
        (_("What the contract holds (Art. 28(3)(a)-(h))"), {"fields": list(PROCESSOR_CHECKLIST)}),
    ]
    actions = None

    def register_refresh(self, request: HttpRequest) -> None:
        if self.has_change_permission(request):  # as for the processing activities
            processor_register_sync()

    def register_header(self, request: HttpRequest) -> dict[str, Any]:
        return controller_header()

    @admin.display(description=_("country"), ordering="country")
    def country_column(self, obj: Processor) -> str:
        if obj.outside_eu is None:
            return str(_("unknown"))
        if obj.outside_eu:
            return str(_("%(country)s, outside the EU")) % {"country": obj.country}
        return obj.country

    @admin.display(description=_("outside the EU/EEA"))
    def outside_eu_column(self, obj: Processor) -> str:
        if obj.outside_eu is None:
            return str(_("unknown (no country)"))
        return str(_("yes")) if obj.outside_eu else str(_("no"))

    @admin.display(description=_("transfer tool"))
    def transfer_column(self, obj: Processor) -> str:
        if not obj.outside_eu:
            return str(obj.get_transfer_tool_display())
        return transfer_safeguard(obj)

    @admin.display(description=_("checklist (Art. 28(3))"))
    def checklist_column(self, obj: Processor) -> str:
        return "\n".join(
            ("\N{CHECK MARK} " if held else "\N{BALLOT X} ") + label
            for label, held in checklist_ticks(obj)
        )

    @admin.display(description=_("to complete"))
    def to_complete_column(self, obj: Processor) -> str:
        return ", ".join(processor_missing(obj))

    @admin.display(description=_("found from"))
    def found_from(self, obj: Processor) -> str:
        return obj.system_key or str(_("added by hand"))
