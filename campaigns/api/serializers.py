"""The campaigns API's shapes (SPEC §4)."""

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from campaigns.models import Campaign, CampaignStep, Recipient, RecipientStatus, StepChannel
from campaigns.services import SegmentCriteria
from consent.models import LegalBasis, Purpose
from contacts.models import Language, LifecycleStage


class SegmentInputSerializer(serializers.Serializer):
    interests = serializers.ListField(child=serializers.SlugField(), required=False)
    lifecycle_stages = serializers.ListField(
        child=serializers.ChoiceField(choices=LifecycleStage.choices), required=False
    )
    countries = serializers.ListField(
        child=serializers.CharField(min_length=2, max_length=2), required=False
    )
    languages = serializers.ListField(
        child=serializers.ChoiceField(choices=Language.choices), required=False
    )

    def to_criteria(self, data: dict[str, Any]) -> SegmentCriteria:
        return SegmentCriteria(**{key: list(value) for key, value in data.items()})


class StepInputSerializer(serializers.Serializer):
    channel = serializers.ChoiceField(choices=StepChannel.choices)
    delay_hours = serializers.IntegerField(min_value=0, max_value=24 * 365, default=0)
    condition = serializers.ChoiceField(
        choices=["previous_not_delivered"], required=False, allow_null=True
    )
    subject = serializers.CharField(max_length=200, required=False, allow_blank=True)
    body_text = serializers.CharField(required=False, allow_blank=True)
    body_html = serializers.CharField(required=False, allow_blank=True)
    text = serializers.CharField(max_length=612, required=False, allow_blank=True)

    @staticmethod
    def to_step(data: dict[str, Any]) -> dict[str, Any]:
        """The step's model fields: the API's content is the French (default) content, which
        English recipients also get until an English version is written in the admin."""
        return {
            "channel": data["channel"],
            "delay_hours": data.get("delay_hours", 0),
            "condition": data.get("condition") or "",
            "subject_fr": data.get("subject", ""),
            "body_text_fr": data.get("body_text", ""),
            "body_html_fr": data.get("body_html", ""),
            "sms_text_fr": data.get("text", ""),
        }


class SendInputSerializer(serializers.Serializer):
    at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="When to send (ISO 8601); absent or past: now.",
    )


class CampaignInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    purpose = serializers.SlugRelatedField(slug_field="slug", queryset=Purpose.objects.all())
    segment = SegmentInputSerializer(required=False)
    steps = StepInputSerializer(many=True, allow_empty=False)

    def validate_purpose(self, purpose: Purpose) -> Purpose:
        if not purpose.is_active:
            raise serializers.ValidationError(_("This purpose is retired."))
        return purpose


class StepSerializer(serializers.ModelSerializer):
    subject = serializers.CharField(source="subject_fr")
    body_text = serializers.CharField(source="body_text_fr")
    body_html = serializers.CharField(source="body_html_fr")
    text = serializers.CharField(source="sms_text_fr")
    condition = serializers.SerializerMethodField()

    class Meta:
        model = CampaignStep
        fields = [
            "position",
            "channel",
            "delay_hours",
            "condition",
            "subject",
            "body_text",
            "body_html",
            "text",
        ]

    def get_condition(self, step: CampaignStep) -> str | None:
        return step.condition or None


class SegmentSerializer(serializers.Serializer):
    name = serializers.CharField()
    interests = serializers.SerializerMethodField()
    lifecycle_stages = serializers.ListField(child=serializers.CharField())
    countries = serializers.ListField(child=serializers.CharField())
    languages = serializers.ListField(child=serializers.CharField())

    def get_interests(self, segment: Any) -> list[str]:
        return sorted(interest.slug for interest in segment.interests.all())


class StepStatsSerializer(serializers.Serializer):
    """One step's statistics (`campaigns.selectors.step_stats`)."""

    position = serializers.IntegerField()
    channel = serializers.ChoiceField(choices=StepChannel.choices)
    targeted = serializers.IntegerField()
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    bounced = serializers.IntegerField()
    complained = serializers.IntegerField()
    unsubscribed = serializers.IntegerField()
    excluded = serializers.DictField(child=serializers.IntegerField())


class StatsSerializer(serializers.Serializer):
    targeted = serializers.IntegerField()
    sent = serializers.IntegerField()
    delivered = serializers.IntegerField()
    bounced = serializers.IntegerField()
    complained = serializers.IntegerField()
    unsubscribed = serializers.IntegerField()
    excluded = serializers.DictField(child=serializers.IntegerField())
    steps = StepStatsSerializer(many=True, help_text="The same counts per step, in order.")


class CampaignSerializer(serializers.ModelSerializer):
    """A campaign; `stats` comes from the view's context (`campaign_stats`)."""

    id = serializers.UUIDField(source="public_id", read_only=True)
    purpose: serializers.Field = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    segment = SegmentSerializer(allow_null=True, read_only=True)
    steps = StepSerializer(many=True, read_only=True)
    stats = serializers.SerializerMethodField()

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "kind",
            "purpose",
            "status",
            "scheduled_at",
            "segment",
            "steps",
            "stats",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(StatsSerializer)
    def get_stats(self, campaign: Campaign) -> dict[str, Any]:
        return StatsSerializer(self.context["stats"]).data


class AudienceStepSerializer(serializers.Serializer):
    position = serializers.IntegerField(source="step.position")
    channel = serializers.CharField(source="step.channel")
    eligible = serializers.IntegerField()
    excluded = serializers.DictField(child=serializers.IntegerField())


class AudienceSerializer(serializers.Serializer):
    steps = AudienceStepSerializer(many=True)


class RecipientSerializer(serializers.ModelSerializer):
    contact = serializers.UUIDField(source="contact.public_id")
    step = serializers.IntegerField(source="step.position")
    channel = serializers.ChoiceField(source="step.channel", choices=StepChannel.choices)
    status = serializers.ChoiceField(choices=RecipientStatus.choices)
    consent_record = serializers.UUIDField(source="consent_record.uuid", allow_null=True)
    legal_basis = serializers.ChoiceField(choices=LegalBasis.choices, allow_blank=True)

    class Meta:
        model = Recipient
        fields = [
            "contact",
            "step",
            "channel",
            "status",
            "sent_at",
            "consent_record",
            "legal_basis",
            "exclusion_reason",
        ]
