"""Registers the DPO keeps in the admin (GDPR Art. 30, 28, 33): each one exports as CSV and
prints as a clean page an auditor can read or save as PDF.

A register's ModelAdmin mixes in `RegisterAdminMixin` and names its `register_columns`, as
`list_display` names columns: model fields, or methods of the admin or of the model (the first
one names the entry: it heads the entry on the printed page). The
changelist gets two buttons, "Export as CSV" and "Printable page"; both honour the
changelist's filters and search, need the view permission and are written to the audit log.
"""

import html
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from django.contrib import admin
from django.contrib.admin.utils import (
    display_for_field,
    display_for_value,
    label_for_field,
    lookup_field,
)
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.encoding import force_str
from django.utils.html import strip_tags
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from core.csvfiles import csv_text
from core.models import AuditAction
from core.services import audit_record

if TYPE_CHECKING:
    from django.template.response import _TemplateForResponseT


class RegisterAdminMixin:
    """CSV export and a printable page for a register (see the module docstring)."""

    register_columns: Sequence[str] = ()
    # typed as ModelAdmin types it: the mixin is combined with it
    change_list_template: ClassVar["_TemplateForResponseT | None"] = (
        "admin/registers/change_list.html"
    )

    model: type[models.Model]
    admin_site: admin.AdminSite

    def register_header(self, request: HttpRequest) -> dict[str, Any]:
        """What the printed page shows above the entries (the controller, the DPO ...)."""
        return {}

    def get_urls(self) -> list[URLPattern]:
        prefix = f"{self.model._meta.app_label}_{self.model._meta.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path("export.csv", wrap(self.register_csv_view), name=f"{prefix}_register_csv"),
            path("print/", wrap(self.register_print_view), name=f"{prefix}_register_print"),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def register_refresh(self, request: HttpRequest) -> None:
        """Bring the register in step with what the product knows before it is shown or
        exported (a register pre-filled from other data overrides it); nothing by default."""

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        self.register_refresh(request)
        return super().changelist_view(request, extra_context)  # type: ignore[misc]

    def register_entries(self, request: HttpRequest) -> QuerySet[Any]:
        """The changelist's rows, with its filters and search applied."""
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        self.register_refresh(request)
        changelist = self.get_changelist_instance(request)  # type: ignore[attr-defined]
        return changelist.get_queryset(request)

    def register_rows(self, entries: Iterable[models.Model]) -> Iterator[list[tuple[str, str]]]:
        """Each entry as (label, value in words) pairs, in `register_columns` order."""
        labels = [self._label(name) for name in self.register_columns]
        for entry in entries:
            yield [
                (label, self._value(entry, name))
                for label, name in zip(labels, self.register_columns, strict=True)
            ]

    def register_csv_view(self, request: HttpRequest) -> HttpResponse:
        entries = self.register_entries(request)
        self._audit(request, "csv")
        rows = [dict(row) for row in self.register_rows(entries)]
        header = [self._label(name) for name in self.register_columns]
        stamp = timezone.localtime().strftime("%Y-%m-%d")
        name = f"{self.model._meta.model_name}-{stamp}.csv"
        return HttpResponse(
            csv_text(rows, header=header),
            content_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    def register_print_view(self, request: HttpRequest) -> TemplateResponse:
        entries = self.register_entries(request)
        self._audit(request, "print")
        opts = self.model._meta
        return TemplateResponse(
            request,
            "admin/registers/print.html",
            {
                "title": opts.verbose_name_plural,
                "opts": opts,
                "header": self.register_header(request),
                "rows": list(self.register_rows(entries)),
                "printed_at": timezone.now(),
                "printed_by": request.user,
            },
        )

    def _audit(self, request: HttpRequest, form: str) -> None:
        audit_record(
            request=request,
            action=AuditAction.EXPORT,
            details={"export": f"register:{self.model._meta.label_lower}", "format": form},
        )

    def _label(self, name: str) -> str:
        return force_str(label_for_field(name, self.model, model_admin=self))  # type: ignore[call-overload]

    def _value(self, entry: models.Model, name: str) -> str:
        """The value as a person reads it: choices by label, dates localised, no HTML."""
        try:
            field, attr, value = lookup_field(name, entry, self)  # type: ignore[arg-type]
        except ObjectDoesNotExist:
            return ""
        empty = ""
        # the admin shows a boolean as an icon, which strip_tags would leave empty
        if isinstance(field, models.BooleanField) or getattr(attr, "boolean", False):
            return "" if value is None else str(_("yes") if value else _("no"))
        if field is not None and not isinstance(field, models.ManyToManyRel):
            shown = display_for_field(value, field, empty)
        else:
            shown = display_for_value(value, empty, boolean=False)
        if isinstance(shown, SafeString):  # markup the admin made (a link, a list): its text
            return html.unescape(strip_tags(shown)).strip()
        return force_str(shown).strip()  # what staff typed, "<" and all
