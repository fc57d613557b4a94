"""Admin for CRM sync: the connections (credentials write-only), how far each lags, the outbox,
and the dead letters staff replay."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from contacts.selectors import contact_find
from core.admin import AuditedModelAdmin, ReadOnlyAdminMixin, adopt_saved_instance
from core.models import AuditAction
from core.services import audit_record
from crmsync.connections import (
    connection_create,
    connection_credentials,
    connection_update,
    connection_validate,
)
from crmsync.models import Connection, ConnectionKind, DeadLetter, OutboxEvent, SalesAlert
from crmsync.notifications import notification_url, notifications_setup_problem
from crmsync.push import connections_retry_now, dead_letters_replay
from crmsync.selectors import connection_lag
from crmsync.services import connections_changed
from crmsync.tasks import push_connection

# the connection's own fields the form edits (its credentials apart)
CONNECTION_FIELDS = (
    "name",
    "kind",
    "base_url",
    "field_mappings",
    "purpose_map",
    "options",
    "pull_interval",
    "enabled",
)


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdminMixin, AuditedModelAdmin):
    list_display = (
        "created_at",
        "sequence",
        "topic",
        "contact_public_id",
        "processed_at",
        "error_excerpt",
    )
    list_filter = ("topic", ("processed_at", admin.EmptyFieldListFilter))
    search_fields = ("=contact_public_id",)
    date_hierarchy = "created_at"
    fields = (
        "id",
        "sequence",
        "topic",
        "contact_public_id",
        "payload",
        "created_at",
        "processed_at",
        "attempts",
        "last_error",
    )
    readonly_fields = fields

    def audit_view(self, request: HttpRequest, obj: OutboxEvent) -> None:
        """A payload holds a person's data: each opening is in the audit log."""
        audit_record(
            request=request,
            action=AuditAction.VIEW_OUTBOX_EVENT,
            contact=contact_find(public_id=obj.contact_public_id),
            details={"outbox_event": str(obj.pk), "topic": obj.topic},
        )

    @admin.display(description=_("last error"))
    def error_excerpt(self, obj: OutboxEvent) -> str:
        return obj.last_error[:80]


class ConnectionForm(forms.ModelForm):
    """The connection's settings; its credentials are typed, never shown: a field left empty
    keeps what is stored."""

    base_url = forms.URLField(label=_("base URL"), max_length=500, assume_scheme="https")
    token = forms.CharField(
        label=_("access token"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("HubSpot or Salesforce. Stored encrypted; empty keeps the stored one."),
    )
    secret = forms.CharField(
        label=_("signing secret"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text=_(
            "Webhook: whsec_ then base64. HubSpot: the app's client secret (checks its change "
            "notifications). Salesforce: the token in the outbound messages' URL (20 characters "
            "or more). Stored encrypted; empty keeps the stored one."
        ),
    )

    class Meta:
        model = Connection
        fields = CONNECTION_FIELDS

    def credentials(self) -> dict[str, str]:
        """The credentials typed in (only those given)."""
        return {
            name: self.cleaned_data[name]
            for name in ("token", "secret")
            if self.cleaned_data.get(name)
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        stored = {} if self.instance.pk is None else connection_credentials(self.instance)
        try:
            connection_validate(
                kind=cleaned.get("kind", ""),
                field_mappings=cleaned.get("field_mappings", []),
                purpose_map=cleaned.get("purpose_map", {}),
                options=cleaned.get("options", {}),
                credentials={**stored, **self.credentials()},
            )
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                target = field if field in self.fields else None
                if field == "credentials":
                    target = "secret" if cleaned.get("kind") == ConnectionKind.WEBHOOK else "token"
                for problem in problems:
                    self.add_error(target, problem)
        return cleaned


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    """Staff admins manage the connections; marketers may look (core roles)."""

    form = ConnectionForm
    actions = ["push_now"]
    list_display = (
        "name",
        "kind",
        "enabled",
        "last_push",
        "last_pull",
        "last_notification",
        "lag",
        "events_waiting",
        "dead_letters",
        "last_error",
    )
    list_filter = ("kind", "enabled")
    search_fields = ("name",)
    list_select_related = ("state",)
    readonly_fields = (
        "last_push",
        "last_pull",
        "lag",
        "events_waiting",
        "dead_letters",
        "last_error",
        "next_attempt",
        "last_pull_error",
        "last_notification",
        "notifications_url",
    )

    def get_fieldsets(self, request: HttpRequest, obj: Connection | None = None) -> Any:
        sets: list[Any] = [
            (None, {"fields": (*CONNECTION_FIELDS[:3], "token", "secret", *CONNECTION_FIELDS[3:])})
        ]
        if obj is not None:
            sets.append((_("Sync"), {"fields": self.readonly_fields}))
        return sets

    def save_model(
        self, request: HttpRequest, obj: Connection, form: forms.ModelForm, change: bool
    ) -> None:
        """Through the connection services: the credentials encrypted, the push state made."""
        assert isinstance(form, ConnectionForm)
        values = {name: form.cleaned_data[name] for name in CONNECTION_FIELDS}
        if change:
            saved = connection_update(connection=obj, fields=values, credentials=form.credentials())
        else:
            saved = connection_create(**values, credentials=form.credentials())
        adopt_saved_instance(obj, saved)
        audit_record(
            request=request,
            action=AuditAction.CRM_CONNECTION,
            details={
                "connection": saved.name,
                "created": not change,
                "changed": sorted(form.changed_data),
            },
        )

    @admin.action(
        description=_("Push now (ending any wait after failures)"), permissions=["change"]
    )
    def push_now(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        ids = list(queryset.filter(enabled=True).values_list("pk", flat=True))
        connections_retry_now(connection_ids=ids)
        for connection_id in ids:
            push_connection.delay(connection_id)
        self.message_user(
            request,
            ngettext(
                "A push of %(count)d connection is queued.",
                "A push of %(count)d connections is queued.",
                len(ids),
            )
            % {"count": len(ids)},
        )

    def delete_model(self, request: HttpRequest, obj: Connection) -> None:
        super().delete_model(request, obj)
        connections_changed()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        super().delete_queryset(request, queryset)
        connections_changed()

    def _lag(self, obj: Connection) -> Any:
        cached = getattr(obj, "_lag_cached", None)
        if cached is None:
            cached = connection_lag(obj)
            obj._lag_cached = cached  # type: ignore[attr-defined]  # per row of one page
        return cached

    @admin.display(description=_("last push"))
    def last_push(self, obj: Connection) -> Any:
        return getattr(getattr(obj, "state", None), "last_push_at", None) or "-"

    @admin.display(description=_("last pull"))
    def last_pull(self, obj: Connection) -> Any:
        return getattr(getattr(obj, "state", None), "last_pull_at", None) or "-"

    @admin.display(description=_("last change notification"))
    def last_notification(self, obj: Connection) -> Any:
        return getattr(getattr(obj, "state", None), "last_notification_at", None) or "-"

    @admin.display(description=_("change notifications URL"))
    def notifications_url(self, obj: Connection) -> str:
        """Where the CRM sends its change notifications, or what they still need."""
        url = notification_url(obj)
        if not url:
            return "-"
        problem = notifications_setup_problem(obj)
        if problem:
            return _("%(url)s (not active yet: %(problem)s)") % {"url": url, "problem": problem}
        if obj.kind == ConnectionKind.SALESFORCE:
            return _("%(url)s (the signing secret in place of <secret>)") % {"url": url}
        return url

    @admin.display(description=_("next attempt"))
    def next_attempt(self, obj: Connection) -> Any:
        return getattr(getattr(obj, "state", None), "next_attempt_at", None) or "-"

    @admin.display(description=_("lag"))
    def lag(self, obj: Connection) -> str:
        """The age of the oldest event waiting for this connection."""
        oldest = self._lag(obj).oldest_waiting_at
        if oldest is None:
            return "-"
        seconds = int((timezone.now() - oldest).total_seconds())
        return ngettext("%(count)d second", "%(count)d seconds", seconds) % {"count": seconds}

    @admin.display(description=_("events waiting"))
    def events_waiting(self, obj: Connection) -> int:
        return self._lag(obj).waiting

    @admin.display(description=_("dead letters"))
    def dead_letters(self, obj: Connection) -> int:
        return self._lag(obj).dead_letters

    @admin.display(description=_("last error"))
    def last_error(self, obj: Connection) -> str:
        state = getattr(obj, "state", None)
        if state is None or not state.last_error:
            return "-"
        return f"{state.last_error_at:%Y-%m-%d %H:%M}: {state.last_error[:120]}"

    @admin.display(description=_("last pull error"))
    def last_pull_error(self, obj: Connection) -> str:
        state = getattr(obj, "state", None)
        if state is None or not state.pull_error:
            return "-"
        return f"{state.pull_error_at:%Y-%m-%d %H:%M}: {state.pull_error[:120]}"


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdminMixin, AuditedModelAdmin):
    """What a CRM refused or what kept failing; staff admins replay it."""

    actions = ["replay"]
    list_display = (
        "created_at",
        "connection",
        "topic",
        "contact",
        "attempts",
        "error_excerpt",
        "resolved_at",
    )
    list_filter = ("connection", ("resolved_at", admin.EmptyFieldListFilter))
    list_select_related = ("connection", "event")
    fields = ("connection", "event", "payload", "error", "attempts", "created_at", "resolved_at")
    readonly_fields = fields

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("crmsync.change_deadletter")

    @admin.action(description=_("Replay through the connection"), permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        ids = list(queryset.filter(resolved_at__isnull=True).values_list("pk", flat=True))
        outcome = dead_letters_replay(dead_letter_ids=ids)
        audit_record(
            request=request,
            action=AuditAction.DEAD_LETTER_REPLAY,
            details={
                "dead_letters": ids,
                "resolved": outcome.resolved,
                "failed": outcome.failed,
                "busy": outcome.busy,
            },
        )
        self.message_user(
            request,
            _(
                "Replayed: %(resolved)d delivered, %(failed)d failed again, %(busy)d waiting "
                "for a push in progress (try again)."
            )
            % {"resolved": outcome.resolved, "failed": outcome.failed, "busy": outcome.busy},
            level=messages.SUCCESS if not (outcome.failed or outcome.busy) else messages.WARNING,
        )
        for error in outcome.errors[:5]:
            self.message_user(request, error, level=messages.ERROR)

    def audit_view(self, request: HttpRequest, obj: DeadLetter) -> None:
        """Its payload holds a person's data: each opening is in the audit log."""
        audit_record(
            request=request,
            action=AuditAction.VIEW_OUTBOX_EVENT,
            contact=contact_find(public_id=obj.event.contact_public_id),
            details={"outbox_event": str(obj.event_id), "topic": obj.event.topic},
        )

    @admin.display(description=_("topic"))
    def topic(self, obj: DeadLetter) -> str:
        return obj.event.topic

    @admin.display(description=_("contact"))
    def contact(self, obj: DeadLetter) -> str:
        return str(obj.event.contact_public_id)

    @admin.display(description=_("payload"))
    def payload(self, obj: DeadLetter) -> Any:
        return obj.event.payload

    @admin.display(description=_("error"))
    def error_excerpt(self, obj: DeadLetter) -> str:
        return obj.error[:80]


@admin.register(SalesAlert)
class SalesAlertAdmin(admin.ModelAdmin):
    """Who is emailed when a contact reaches a lifecycle stage (crmsync.alerts)."""

    list_display = ("stage", "to_owner", "recipient", "language", "enabled")
    list_filter = ("stage", "to_owner", "enabled")
    fields = ("stage", "to_owner", "recipient", "language", "enabled")
