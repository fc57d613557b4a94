"""Data-subject requests (GDPR Art. 12-21) and their status history."""

import uuid

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from consent.models import SourceKind
from contacts.models import Contact
from core.storage import private_storage


class PrivacyRequestType(models.TextChoices):
    ACCESS = "access", _("Access (Art. 15)")
    PORTABILITY = "portability", _("Portability (Art. 20)")
    RECTIFICATION = "rectification", _("Rectification (Art. 16)")
    ERASURE = "erasure", _("Erasure (Art. 17)")
    RESTRICTION = "restriction", _("Restriction (Art. 18)")
    OBJECTION = "objection", _("Objection (Art. 21)")


class PrivacyRequestStatus(models.TextChoices):
    RECEIVED = "received", _("Received")
    VERIFIED = "verified", _("Identity verified")
    IN_PROGRESS = "in_progress", _("In progress")
    # an erasure carried out here, waiting for the connected CRMs to acknowledge theirs
    AWAITING_CRMS = "awaiting_crms", _("Waiting for the CRMs' acknowledgements")
    COMPLETED = "completed", _("Completed")
    REJECTED = "rejected", _("Rejected")


class PrivacyRequest(models.Model):
    """A data-subject request, due one month after receipt (GDPR Art. 12(3))."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # empty when an API client without `contacts:read` named an email no contact has: the
    # request is kept (and answered like any other) without telling the client who is known
    contact = models.ForeignKey(
        Contact,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="privacy_requests",
        verbose_name=_("contact"),
    )
    type = models.CharField(_("type"), max_length=20, choices=PrivacyRequestType.choices)
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=PrivacyRequestStatus.choices,
        default=PrivacyRequestStatus.RECEIVED,
    )
    details = models.TextField(_("details"), blank=True)
    source_kind = models.CharField(_("filed through"), max_length=30, choices=SourceKind.choices)
    source_reference = models.CharField(_("source reference"), max_length=500, blank=True)
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    due_at = models.DateTimeField(_("due at"))
    extension_reason = models.TextField(_("extension reason"), blank=True)
    held_reason = models.TextField(
        _("held for the DPO"),
        blank=True,
        help_text=_("Why the workers did not carry it out at once: it waits for the DPO."),
    )
    handled_by = models.CharField(_("handled by"), max_length=150, blank=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    export_json = models.FileField(
        _("export (JSON)"), storage=private_storage, upload_to="exports/", blank=True
    )
    export_archive = models.FileField(
        _("export (CSV archive)"), storage=private_storage, upload_to="exports/", blank=True
    )
    export_expires_at = models.DateTimeField(_("export available until"), null=True, blank=True)

    class Meta:
        verbose_name = _("privacy request")
        verbose_name_plural = _("privacy requests")
        ordering = ["due_at"]
        permissions = [
            (
                "close_privacyrequest",
                _("Can close an erasure request without every CRM's acknowledgement"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_type_display()} ({self.get_status_display()})"


class PrivacyRequestEvent(models.Model):
    """One step of a request's status history."""

    request = models.ForeignKey(PrivacyRequest, on_delete=models.CASCADE, related_name="history")
    status = models.CharField(_("status"), max_length=20, choices=PrivacyRequestStatus.choices)
    at = models.DateTimeField(_("at"), default=timezone.now)
    by = models.CharField(_("by"), max_length=150, blank=True)
    note = models.TextField(_("note"), blank=True)
    # an extension or a rejection is emailed to the person with its reasons (GDPR Art.
    # 12(3)-(4)): when that email left, so that a retried task never sends it twice
    person_notified_at = models.DateTimeField(_("person told at"), null=True, blank=True)

    class Meta:
        verbose_name = _("status change")
        verbose_name_plural = _("status history")
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.get_status_display()} {self.at:%Y-%m-%d %H:%M}"


class AcknowledgementStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    # the last attempt failed: tried again later, with backoff, until acknowledged or closed
    FAILED = "failed", _("Failed (retried)")
    # the DPO closed the request without this acknowledgement (with a note on the request)
    CLOSED = "closed", _("Closed by the DPO")


class ErasureAcknowledgement(models.Model):
    """One connected CRM told to erase one person, and its answer (GDPR Art. 17(2), 19).

    Written in the erasure's transaction, before the contact is anonymised, with what that
    CRM needs to find the person: its remote id, or (HubSpot without one) the email, kept
    only encrypted and only until the CRM acknowledged or the DPO closed the request."""

    contact = models.ForeignKey(
        Contact,
        on_delete=models.CASCADE,
        related_name="erasure_acknowledgements",
        verbose_name=_("contact (anonymised)"),
    )
    # empty for an erasure no request asked for (retention, the admin)
    request = models.ForeignKey(
        PrivacyRequest,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="acknowledgements",
        verbose_name=_("privacy request"),
    )
    connection = models.ForeignKey(
        "crmsync.Connection",
        on_delete=models.CASCADE,
        related_name="erasure_acknowledgements",
        verbose_name=_("CRM connection"),
    )
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=AcknowledgementStatus.choices,
        default=AcknowledgementStatus.PENDING,
    )
    remote_id = models.CharField(_("remote id"), max_length=255, blank=True)
    # a Fernet token of the email (core.encryption), only when the CRM has no other key
    email_token = models.TextField(editable=False, blank=True)
    # the contact.erased outbox event, which the webhook receives as the erasure itself
    event_id = models.UUIDField(null=True, blank=True, editable=False)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    # also the claim of the worker sending it: no other sends before this time
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    at = models.DateTimeField(_("acknowledged or closed at"), null=True, blank=True)
    error = models.TextField(_("last error"), blank=True)

    class Meta:
        verbose_name = _("CRM erasure acknowledgement")
        verbose_name_plural = _("CRM erasure acknowledgements")
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "connection"], name="erasure_ack_one_per_connection"
            )
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status__in=["pending", "failed"]),
                name="erasure_ack_due",
            )
        ]

    def __str__(self) -> str:
        return f"{self.connection_id}: {self.get_status_display()}"


class ProofArchiveEntry(models.Model):
    """The proof of an erased person's consents, kept for the proof period, then deleted.

    On erasure, who consented (the identity key: email, phone, name, guardian) and the
    personal evidence of each ledger record (IP, user agent, documents) move here, encrypted
    with `FIELD_ENCRYPTION_KEY`: the ledger rows stay under the anonymised contact, so that a
    complaint can still be answered (GDPR Art. 17(3)(e), EDPB Guidelines 05/2020 para 107).
    After `delete_after` the beat job deletes the entry and the person's ledger records
    (Art. 5(1)(e)). Only the DPO reads it, through an audited admin action.
    """

    contact = models.OneToOneField(
        Contact,
        on_delete=models.PROTECT,
        related_name="proof_archive",
        verbose_name=_("contact (anonymised)"),
    )
    reason = models.CharField(_("erased for"), max_length=100, blank=True)
    erased_at = models.DateTimeField(_("erased at"))
    delete_after = models.DateTimeField(_("deleted after"), db_index=True)
    # a Fernet token (MultiFernet: see core.encryption.field_cipher) of the JSON content
    ciphertext = models.TextField(_("encrypted content"), editable=False)

    class Meta:
        verbose_name = _("proof archive entry")
        verbose_name_plural = _("proof archive")
        ordering = ["delete_after"]
        default_permissions = ("view",)
        permissions = [("read_proofarchiveentry", _("Can read a proof archive entry (audited)"))]

    def __str__(self) -> str:
        return f"#{self.pk} ({self.erased_at:%Y-%m-%d})"
