"""The outbox: every change to a contact or a consent, for the CRMs, written in the same
transaction as the change itself so that nothing is lost."""

import uuid

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class OutboxTopic(models.TextChoices):
    CONTACT_CREATED = "contact.created", _("Contact created")
    CONTACT_UPDATED = "contact.updated", _("Contact updated")
    CONSENT_RECORDED = "consent.recorded", _("Consent recorded")
    CONTACT_ERASED = "contact.erased", _("Contact erased")
    # kept in the ledger, but older than the change behind the current state: nothing changed
    CONSENT_SUPERSEDED = "consent.superseded", _("Consent recorded, superseded by a newer one")
    # every consent withdrawn and the address suppressed, at the person's request
    CONTACT_UNSUBSCRIBED = "contact.unsubscribed", _("Contact unsubscribed from all marketing")
    # two contacts found to be one person: the CRMs merge their records too
    CONTACT_MERGED = "contact.merged", _("Contacts merged")


class OutboxEvent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    topic = models.CharField(_("topic"), max_length=40, choices=OutboxTopic.choices)
    contact_public_id = models.UUIDField(_("contact"), db_index=True)
    payload = models.JSONField(_("payload"), default=dict)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        verbose_name = _("outbox event")
        verbose_name_plural = _("outbox")
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.topic} {self.contact_public_id}"
