"""Campaigns (SPEC §3 campaigns): saved segments, campaigns, their steps and recipients.

A recipient row keeps no copy of the person's data: the contact (anonymised in place by
erasure), the step, the outcome and the legal proof (the consent record, or the legal basis
when none was needed). Erasure therefore anonymises recipients without touching them, and the
campaign's counts survive it (SPEC §3 privacy).
"""

import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from consent.models import ConsentRecord, LegalBasis, Purpose
from contacts.models import Contact, Interest, Language


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SCHEDULED = "scheduled", _("Scheduled")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    CANCELLED = "cancelled", _("Cancelled")


class CampaignKind(models.TextChoices):
    """Regular marketing campaigns and the built-in kinds of SPEC §3 (double opt-in
    confirmations keep their own path, `consent.services`)."""

    REGULAR = "regular", _("Regular")
    REPERMISSION = "repermission", _("Re-permission request")
    POLICY_UPDATE = "policy_update", _("Privacy policy update notice")
    BREACH_NOTICE = "breach_notice", _("Breach notification")


class StepChannel(models.TextChoices):
    """The channels a campaign step sends on (a subset of `consent.models.Channel`)."""

    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    POSTAL = "postal", _("Postal mail")


class StepCondition(models.TextChoices):
    NONE = "", _("Everyone in the audience")
    PREVIOUS_NOT_DELIVERED = (
        "previous_not_delivered",
        _("Those the previous step did not reach (bounced or undeliverable)"),
    )


class RecipientStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    BOUNCED = "bounced", _("Bounced")
    COMPLAINED = "complained", _("Complained")
    SKIPPED = "skipped", _("Skipped")


class Segment(models.Model):
    """Who a campaign targets: every criterion given must match (an empty one matches all).

    Saved segments are listed for reuse; a campaign created with inline criteria (API) gets a
    segment of its own that is not saved for reuse."""

    name = models.CharField(_("name"), max_length=150)
    saved = models.BooleanField(
        _("saved for reuse"),
        default=True,
        help_text=_("Unticked for the criteria of one campaign only."),
    )
    interests = models.ManyToManyField(
        Interest,
        blank=True,
        verbose_name=_("interests"),
        help_text=_("The contact has at least one of these interests."),
    )
    lifecycle_stages = models.JSONField(_("lifecycle stages"), default=list, blank=True)
    countries = models.JSONField(_("countries"), default=list, blank=True)
    languages = models.JSONField(_("languages"), default=list, blank=True)
    sources = models.JSONField(_("sources"), default=list, blank=True)
    created_from = models.DateField(_("created from"), null=True, blank=True)
    created_until = models.DateField(_("created until"), null=True, blank=True)
    active_from = models.DateField(_("last activity from"), null=True, blank=True)
    active_until = models.DateField(_("last activity until"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# The kinds that inform rather than market: no purpose, sent under a legal obligation
# (GDPR Art. 13/14, 34), whatever the person's marketing choices (`campaigns.kinds`).
NOTICE_KINDS = frozenset({CampaignKind.POLICY_UPDATE, CampaignKind.BREACH_NOTICE})


def sending_permission(kind: str) -> str:
    """The permission that lets staff send (or cancel) a campaign of this kind: notices
    reach people whatever their marketing choices, so they need their own."""
    return "campaigns.send_notice_campaign" if kind in NOTICE_KINDS else "campaigns.send_campaign"


class Campaign(models.Model):
    """Messages for one purpose to a segment, in one or more steps (SPEC §3 campaigns); a
    notice (`NOTICE_KINDS`) has no purpose, and a breach notice may target the persons
    concerned (`concerned`) instead of a segment."""

    public_id = models.UUIDField(_("public id"), default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(
        _("kind"), max_length=30, choices=CampaignKind.choices, default=CampaignKind.REGULAR
    )
    purpose = models.ForeignKey(
        Purpose,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        verbose_name=_("purpose"),
        help_text=_("Required, except for a privacy policy update or a breach notification."),
    )
    segment = models.ForeignKey(
        Segment,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        verbose_name=_("segment"),
        help_text=_("Empty: every contact."),
    )
    # a breach notification to the persons concerned (`campaigns.kinds`): its audience
    concerned = models.ManyToManyField(
        Contact,
        blank=True,
        related_name="+",
        editable=False,
        verbose_name=_("persons concerned"),
    )
    # a re-permission request: confirm by then, or lose the purpose (`campaigns.repermission`)
    deadline = models.DateTimeField(_("confirmation deadline"), null=True, blank=True)
    deadline_applied_at = models.DateTimeField(
        _("deadline applied at"), null=True, blank=True, editable=False
    )
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=CampaignStatus.choices,
        default=CampaignStatus.DRAFT,
        editable=False,
    )
    scheduled_at = models.DateTimeField(_("scheduled at"), null=True, blank=True, editable=False)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-created_at", "-id"]
        permissions = [
            ("send_campaign", _("Can send, schedule and cancel campaigns")),
            # a notice reaches people whatever their marketing choices: the DPO's to write and
            # send, never a marketer's (`may_handle`)
            ("send_notice_campaign", _("Can write, send and cancel privacy and breach notices")),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """A notice has no purpose; every other kind has one; a re-permission request has a
        deadline."""
        errors: dict[str, Any] = {}
        if self.kind in NOTICE_KINDS and self.purpose_id is not None:
            errors["purpose"] = _("A notice informs: it has no purpose.")
        if self.kind not in NOTICE_KINDS and self.purpose_id is None:
            errors["purpose"] = _("This field is required.")
        if self.kind == CampaignKind.REPERMISSION and self.deadline is None:
            # under "kind": the campaign form has no deadline field (the built-in form has)
            errors["kind"] = _(
                "A re-permission request needs a deadline: create it as a built-in campaign."
            )
        if errors:
            raise ValidationError(errors)


class CampaignStep(models.Model):
    """One message of a campaign on one channel, `delay_hours` after the previous step, with
    its content in French and English (English falls back to French when left empty)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(_("position"), default=1)
    channel = models.CharField(_("channel"), max_length=10, choices=StepChannel.choices)
    delay_hours = models.PositiveIntegerField(_("delay (hours)"), default=0)
    condition = models.CharField(
        _("condition"), max_length=30, choices=StepCondition.choices, default="", blank=True
    )
    subject_fr = models.CharField(_("subject (French)"), max_length=200, blank=True)
    subject_en = models.CharField(_("subject (English)"), max_length=200, blank=True)
    body_text_fr = models.TextField(_("text (French)"), blank=True)
    body_text_en = models.TextField(_("text (English)"), blank=True)
    body_html_fr = models.TextField(_("HTML (French)"), blank=True)
    body_html_en = models.TextField(_("HTML (English)"), blank=True)
    sms_text_fr = models.CharField(_("SMS text (French)"), max_length=612, blank=True)
    sms_text_en = models.CharField(_("SMS text (English)"), max_length=612, blank=True)
    # When the step's audience was claimed (its recipient rows written) and when its last
    # message left: a step starts `delay_hours` after the previous one started.
    started_at = models.DateTimeField(_("started at"), null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("step")
        verbose_name_plural = _("steps")
        ordering = ["campaign", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "position"], name="campaign_step_position_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.get_channel_display()}"

    def content(self, field: str, language: str) -> str:
        """The step's `field` (subject, body_text, body_html, sms_text) in `language`, or in
        French when that language's is empty (French is the default, SPEC §1)."""
        own: str = getattr(self, f"{field}_{language}", "") if language == Language.ENGLISH else ""
        return own or getattr(self, f"{field}_fr")


class Recipient(models.Model):
    """One (campaign, step, contact), claimed once; the outcome and the proof that the message
    was lawful (GDPR Art. 7(1)): the consent record that justified it, or the legal basis
    that needed none (legitimate interests)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="recipients")
    step = models.ForeignKey(CampaignStep, on_delete=models.CASCADE, related_name="recipients")
    # PROTECT: an erased contact stays, anonymised, so the counts and the proof stay too
    contact = models.ForeignKey(
        Contact, on_delete=models.PROTECT, related_name="campaign_recipients"
    )
    status = models.CharField(
        _("status"), max_length=20, choices=RecipientStatus.choices, default=RecipientStatus.QUEUED
    )
    exclusion_reason = models.CharField(_("exclusion reason"), max_length=30, blank=True)
    consent_record = models.ForeignKey(
        ConsentRecord,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="campaign_recipients",
        verbose_name=_("consent record"),
    )
    legal_basis = models.CharField(
        _("legal basis"), max_length=30, choices=LegalBasis.choices, blank=True
    )
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    # Sending (campaigns.sending): the batch that claimed the row, when, and not before when
    # it may leave (an SMS outside the recipient's hours waits); the message's id and the
    # preference link it carried (an unsubscribe through it is attributed to the campaign).
    batch = models.CharField(_("batch"), max_length=64, blank=True, editable=False)
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True, editable=False)
    send_after = models.DateTimeField(_("not before"), null=True, blank=True, editable=False)
    message_id = models.CharField(_("message id"), max_length=255, blank=True, editable=False)
    # no constraint: erasure deletes the person's links in one statement, and the attribution
    # the link served is copied here (`unsubscribed_at`) when it happens
    preference_token = models.ForeignKey(
        "preferences.PreferenceToken",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        editable=False,
        related_name="campaign_recipients",
        verbose_name=_("preference link"),
    )
    # the provider's refusal, without the address or number (`campaigns.sending`)
    error = models.CharField(_("error"), max_length=255, blank=True, editable=False)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    unsubscribed_at = models.DateTimeField(_("unsubscribed at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("recipient")
        verbose_name_plural = _("recipients")
        ordering = ["campaign", "step__position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "step", "contact"], name="campaign_recipient_unique"
            )
        ]
        indexes = [
            models.Index(fields=["campaign", "status"]),
            models.Index(fields=["step", "status", "id"], name="campaign_recipient_claim"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} / {self.step} / {self.contact.public_id}"


class BuiltInCampaign(Campaign):
    """The campaigns of the built-in kinds, as the admin lists them and creates them from a
    form of their own (`campaigns.admin.BuiltInCampaignAdmin`): the same rows as `Campaign`."""

    class Meta:
        proxy = True
        verbose_name = _("built-in campaign")
        verbose_name_plural = _("built-in campaigns")
