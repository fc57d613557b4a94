"""The event feed's query and answer (the answer's shape is `crmsync.adapters.webhook.change_item`,
which the webhook POSTs too)."""

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from crmsync.models import OutboxTopic

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
# PostgreSQL's bigint: a cursor past it cannot be one of ours
MAX_CURSOR = 2**63 - 1


class EventQuerySerializer(serializers.Serializer):
    after = serializers.RegexField(
        r"^[0-9]{1,19}$",
        trim_whitespace=False,
        required=False,
        default="0",
        help_text=_("The cursor of the last event read (`next_cursor`); none: from the start."),
        error_messages={"invalid": _("A cursor is the number a previous answer gave.")},
    )
    limit = serializers.IntegerField(
        required=False, default=DEFAULT_LIMIT, min_value=1, max_value=MAX_LIMIT
    )

    def validate_after(self, value: str) -> int:
        if int(value) > MAX_CURSOR:
            raise serializers.ValidationError(_("A cursor is the number a previous answer gave."))
        return int(value)


class EventSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text=_("The event's id (the webhook's `webhook-id`)."))
    cursor = serializers.CharField(help_text=_("Its place in the feed: give it as `after`."))
    topic = serializers.ChoiceField(choices=OutboxTopic.choices)
    contact = serializers.UUIDField(help_text=_("The contact's public id."))
    occurred_at = serializers.DateTimeField()

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # `data` names the serializer's own output: the field is added here, not declared
        fields["data"] = serializers.JSONField(help_text=_("The change (the outbox payload)."))
        return fields


class EventPageSerializer(serializers.Serializer):
    results = EventSerializer(many=True)
    next_cursor = serializers.CharField(
        help_text=_("Give it as `after` to read on (the same cursor when nothing was new).")
    )
    next = serializers.URLField(
        allow_null=True, help_text=_("The next page, while this one was full.")
    )
