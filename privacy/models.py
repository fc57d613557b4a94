"""Data-subject requests (GDPR Art. 12-21) and their status history."""

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from consent.models import LegalBasis, SourceKind, localized
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


# Register of processing activities and processors


class ActivityKind(models.TextChoices):
    MARKETING = "marketing", _("Marketing purpose")
    RIGHTS_REQUESTS = "rights_requests", _("Data-subject requests")
    PROOF_ARCHIVE = "proof_archive", _("Proof archive")
    AUDIT_LOG = "audit_log", _("Audit log")
    CRM_SYNC = "crm_sync", _("CRM synchronisation")
    OTHER = "other", _("Other")


# The activities every installation carries out besides its marketing purposes: one entry
# each in the register (`privacy.registers.processing_register_sync` creates them).
BUILT_IN_ACTIVITY_KINDS = (
    ActivityKind.RIGHTS_REQUESTS,
    ActivityKind.PROOF_ARCHIVE,
    ActivityKind.AUDIT_LOG,
    ActivityKind.CRM_SYNC,
)


class ProcessingActivity(models.Model):
    """An entry of the register of processing activities (GDPR Art. 30(1)(a)-(g)).

    An entry for a marketing purpose reads the purpose's name, legal basis, channels and
    retention live (`privacy.registers`): only what the DPO adds is stored here. A text left
    empty shows the product's default for its kind, in the reader's language."""

    kind = models.CharField(_("kind"), max_length=20, choices=ActivityKind.choices)
    purpose = models.OneToOneField(
        "consent.Purpose",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="processing_activity",
        verbose_name=_("purpose"),
    )
    name_fr = models.CharField(
        _("name (French)"),
        max_length=150,
        blank=True,
        help_text=_("Empty for a marketing purpose: the purpose's name is shown."),
    )
    name_en = models.CharField(_("name (English)"), max_length=150, blank=True)
    description = models.TextField(
        _("purposes of the processing"),
        blank=True,
        help_text=_("Empty: the purpose's description, or the product's default text."),
    )
    legal_basis = models.CharField(
        _("legal basis"),
        max_length=30,
        choices=LegalBasis.choices,
        blank=True,
        help_text=_("For a marketing purpose, the purpose's own legal basis is shown."),
    )
    data_subjects = models.TextField(_("categories of data subjects"), blank=True)
    data_categories = models.TextField(_("categories of personal data"), blank=True)
    recipients = models.TextField(
        _("recipients"),
        blank=True,
        help_text=_("Shown before the processors of the processor register, listed live."),
    )
    transfers = models.TextField(
        _("transfers outside the EU"),
        blank=True,
        help_text=_("Shown after the transfers of the processor register, listed live."),
    )
    retention_note = models.TextField(
        _("retention (notes)"),
        blank=True,
        help_text=_("Shown after the periods the product applies, read from its settings."),
    )
    security_measures = models.TextField(
        _("other security measures"),
        blank=True,
        help_text=_("Shown after the measures the product itself takes."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("processing activity")
        verbose_name_plural = _("processing activities (Art. 30 register)")
        ordering = ["kind", "purpose__slug", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind"],
                condition=models.Q(kind__in=[kind.value for kind in BUILT_IN_ACTIVITY_KINDS]),
                name="processing_activity_one_per_built_in_kind",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """A marketing entry is a purpose's; any other names itself (Art. 30(1)(b))."""
        if self.kind == ActivityKind.MARKETING and self.purpose_id is None:
            raise ValidationError({"purpose": _("A marketing activity names its purpose.")})
        if self.kind != ActivityKind.MARKETING and self.purpose_id is not None:
            raise ValidationError(
                {"purpose": _("Only a marketing activity is linked to a purpose.")}
            )
        if self.purpose_id is None and not (self.name_fr.strip() and self.name_en.strip()):
            raise ValidationError({"name_fr": _("Name the activity in French and in English.")})

    @property
    def name(self) -> str:
        """The purpose's name when linked (read live), else the entry's own, else its kind."""
        if self.purpose is not None:
            return self.purpose.name
        return localized(self, "name") or str(self.get_kind_display())


class ProcessorService(models.TextChoices):
    CRM = "crm", _("CRM")
    EMAIL = "email", _("Emailing (ESP)")
    SMS = "sms", _("SMS")
    PRINT = "print", _("Print and mail house")
    HOSTING = "hosting", _("Hosting")
    OTHER = "other", _("Other")


class TransferTool(models.TextChoices):
    """How a transfer outside the EU/EEA is framed (GDPR Chapter V)."""

    NONE = "none", _("None needed (EU/EEA)")
    ADEQUACY = "adequacy", _("Adequacy decision (Art. 45)")
    DPF = "dpf", _("EU-US Data Privacy Framework")
    SCC = "scc", _("Standard contractual clauses 2021/914")


class ProcessorRisk(models.TextChoices):
    LOW = "low", _("Low")
    MEDIUM = "medium", _("Medium")
    HIGH = "high", _("High")


# The EU's 27 and Iceland, Liechtenstein and Norway: no transfer tool is needed there.
# fmt: off
EEA_COUNTRIES = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
    "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK", "IS", "LI", "NO",
})
# Countries with an adequacy decision in force (Art. 45); the United States only through the
# Data Privacy Framework, a tool of its own here.
ADEQUATE_COUNTRIES = frozenset({
    "AD", "AR", "CA", "CH", "FO", "GB", "GG", "IL", "IM", "JE", "JP", "KR", "NZ", "UY",
})
# fmt: on

# GDPR Art. 28(3)(a)-(h): what the processor's contract commits it to, one box each.
PROCESSOR_CHECKLIST = (
    "clause_instructions",
    "clause_confidentiality",
    "clause_security",
    "clause_sub_processors",
    "clause_rights_assistance",
    "clause_compliance_assistance",
    "clause_deletion",
    "clause_audits",
)


class Processor(models.Model):
    """An entry of the processor register (GDPR Art. 28, 30(2), Chapter V).

    CRM connections and the email and SMS providers of the settings appear by themselves
    (`privacy.registers.processor_register_sync`, keyed by `system_key`); the DPO completes
    the contract's details. Outside the EU/EEA a transfer tool is required."""

    name = models.CharField(_("name"), max_length=150)
    service = models.CharField(_("service"), max_length=20, choices=ProcessorService.choices)
    country = models.CharField(
        _("country"),
        max_length=2,
        blank=True,
        validators=[RegexValidator(r"^[A-Z]{2}$", _("Give the ISO 3166 code, e.g. FR or US."))],
        help_text=_("Where the processor is established: ISO 3166 code, e.g. FR, IE, US."),
    )
    hosting_region = models.CharField(_("hosting region"), max_length=100, blank=True)
    sub_processors = models.TextField(
        _("sub-processors and their locations"),
        blank=True,
        help_text=_("One per line: name, what it does, country."),
    )
    transfer_tool = models.CharField(
        _("transfer tool"),
        max_length=20,
        choices=TransferTool.choices,
        default=TransferTool.NONE,
    )
    dpf_checked_on = models.DateField(
        _("DPF certification checked on"),
        null=True,
        blank=True,
        help_text=_("When the processor's entry on dataprivacyframework.gov was last checked."),
    )
    transfer_assessment_on = models.DateField(
        _("transfer impact assessment on"), null=True, blank=True
    )
    dpa_signed_on = models.DateField(_("DPA signed on"), null=True, blank=True)
    breach_notice_hours = models.PositiveSmallIntegerField(
        _("breach reporting deadline (hours)"),
        default=24,
        help_text=_("Within how many hours the processor tells us of a breach (Art. 33(2))."),
    )
    end_of_contract = models.TextField(_("deletion or return at contract end"), blank=True)
    clause_instructions = models.BooleanField(
        _("acts only on our documented instructions (a)"), default=False
    )
    clause_confidentiality = models.BooleanField(
        _("its staff are bound to confidentiality (b)"), default=False
    )
    clause_security = models.BooleanField(_("security measures of Art. 32 (c)"), default=False)
    clause_sub_processors = models.BooleanField(
        _("sub-processors only with our authorisation, on the same terms (d)"), default=False
    )
    clause_rights_assistance = models.BooleanField(
        _("helps us answer data-subject requests (e)"), default=False
    )
    clause_compliance_assistance = models.BooleanField(
        _("helps with security, breaches and impact assessments (f)"), default=False
    )
    clause_deletion = models.BooleanField(
        _("deletes or returns the data at the end (g)"), default=False
    )
    clause_audits = models.BooleanField(
        _("gives us information and allows audits (h)"), default=False
    )
    risk = models.CharField(_("risk"), max_length=10, choices=ProcessorRisk.choices, blank=True)
    connection = models.OneToOneField(
        "crmsync.Connection",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="processor",
        verbose_name=_("CRM connection"),
    )
    # what the register's sync found it from ("crm:<connection id>", "esp:<provider>",
    # "sms:<provider>"); empty for a processor the DPO added
    system_key = models.CharField(
        _("found from"), max_length=100, unique=True, null=True, blank=True, editable=False
    )
    is_active = models.BooleanField(
        _("in use"),
        default=True,
        help_text=_("Untick when the contract has ended: the entry stays as a record."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("processor")
        verbose_name_plural = _("processors (Art. 28 register)")
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """A transfer outside the EU/EEA needs its tool, and the tool its date (Art. 44-46)."""
        errors: dict[str, Any] = {}
        tool = self.transfer_tool
        if self.outside_eu and tool == TransferTool.NONE:
            errors["transfer_tool"] = _(
                "%(country)s is outside the EU/EEA: choose the transfer tool (an adequacy "
                "decision, the EU-US Data Privacy Framework or the standard contractual "
                "clauses 2021/914)."
            ) % {"country": self.country}
        if tool == TransferTool.ADEQUACY and self.country not in ADEQUATE_COUNTRIES:
            errors["transfer_tool"] = _(
                "No adequacy decision covers this country; for the United States, choose "
                "the EU-US Data Privacy Framework."
            )
        if tool == TransferTool.DPF and self.country != "US":
            errors["transfer_tool"] = _("The Data Privacy Framework covers the United States only.")
        if tool == TransferTool.DPF and self.dpf_checked_on is None:
            errors["dpf_checked_on"] = _("Give the date the certification was checked.")
        if tool == TransferTool.SCC and self.transfer_assessment_on is None:
            errors["transfer_assessment_on"] = _(
                "Standard contractual clauses go with a transfer impact assessment: give its date."
            )
        if errors:
            raise ValidationError(errors)

    @property
    def outside_eu(self) -> bool | None:
        """Whether the processor is outside the EU/EEA; None while its country is unknown."""
        if not self.country:
            return None
        return self.country.upper() not in EEA_COUNTRIES


# Breach register


class BreachRisk(models.TextChoices):
    """The risk to the persons' rights and freedoms (GDPR Art. 33(1), 34(1))."""

    NONE = "none", _("Unlikely to result in a risk")
    RISK = "risk", _("Risk")
    HIGH = "high", _("High risk")


class BreachStatus(models.TextChoices):
    """Where a breach stands, derived from its fields (`Breach.status`), never stored."""

    OPEN = "open", _("Open: the authority decision is pending")
    LATE = "late", _("Late: past the 72-hour deadline without a decision")
    NOTIFIED = "notified", _("Authority notified")
    NOT_NOTIFIED = "not_notified", _("Decided not to notify the authority")
    CLOSED = "closed", _("Closed")


# GDPR Art. 33(1): the authority is notified within 72 hours of awareness.
AUTHORITY_DEADLINE = timedelta(hours=72)
# The DPO is reminded this long after awareness while the authority decision is pending.
BREACH_REMINDERS = (timedelta(hours=24), timedelta(hours=48))


class Breach(models.Model):
    """A personal data breach in the register every controller keeps (GDPR Art. 33(5)),
    notified or not: the facts, their effects, the remedial action, the decisions and why.

    Written only by `privacy.breaches` (which computes the deadline); a register keeps its
    history, so no entry is ever deleted.
    """

    reference = models.CharField(
        _("reference"), max_length=200, help_text=_("A short title to name the breach by.")
    )
    aware_at = models.DateTimeField(
        _("became aware at"),
        help_text=_(
            "When we became reasonably certain that personal data was breached: the "
            "72 hours to notify the authority run from then (Art. 33(1))."
        ),
    )
    authority_deadline = models.DateTimeField(_("authority deadline"), editable=False)
    nature = models.TextField(_("what happened"))
    persons_categories = models.TextField(_("categories of persons concerned"), blank=True)
    persons_count = models.PositiveIntegerField(
        _("approximate number of persons"), null=True, blank=True
    )
    records_categories = models.TextField(_("categories of records concerned"), blank=True)
    records_count = models.PositiveIntegerField(
        _("approximate number of records"), null=True, blank=True
    )
    consequences = models.TextField(_("likely consequences"), blank=True)
    measures = models.TextField(_("measures taken or proposed"), blank=True)
    risk = models.CharField(_("risk to the persons"), max_length=10, choices=BreachRisk.choices)
    risk_reasoning = models.TextField(
        _("why this risk level"),
        help_text=_("Also for a breach not notified: the register shows the authority why."),
    )
    authority_notified_at = models.DateTimeField(_("authority notified at"), null=True, blank=True)
    authority_reference = models.CharField(_("CNIL reference"), max_length=100, blank=True)
    delay_reasons = models.TextField(
        _("reasons for the delay"),
        blank=True,
        help_text=_("Required when the authority was notified after the 72 hours (Art. 33(1))."),
    )
    not_notified = models.BooleanField(_("decided not to notify the authority"), default=False)
    not_notified_reason = models.TextField(_("why not notify the authority"), blank=True)
    persons_told = models.BooleanField(_("persons concerned told"), default=False)
    persons_told_at = models.DateTimeField(_("persons told at"), null=True, blank=True)
    notification_campaign = models.ForeignKey(
        "campaigns.Campaign",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        verbose_name=_("notification campaign"),
    )
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    recorded_by = models.CharField(_("recorded by"), max_length=150, blank=True, editable=False)
    recorded_at = models.DateTimeField(_("recorded at"), default=timezone.now, editable=False)
    # The reminders to the DPO, each claimed by a conditional update so that it goes once.
    reminded_24h_at = models.DateTimeField(
        _("24-hour reminder sent at"), null=True, blank=True, editable=False
    )
    reminded_48h_at = models.DateTimeField(
        _("48-hour reminder sent at"), null=True, blank=True, editable=False
    )

    class Meta:
        verbose_name = _("personal data breach")
        verbose_name_plural = _("breach register")
        ordering = ["-aware_at", "-id"]
        default_permissions = ("add", "change", "view")
        indexes = [
            models.Index(
                fields=["aware_at"],
                condition=models.Q(
                    authority_notified_at__isnull=True, not_notified=False, closed_at__isnull=True
                ),
                name="breach_decision_pending",
            )
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def decision_taken(self) -> bool:
        """Whether the authority was notified or the decision not to notify was taken."""
        return self.authority_notified_at is not None or self.not_notified

    def status_at(self, now: datetime) -> BreachStatus:
        """Where the breach stands at `now`, in the order a reader asks: closed, decided, late."""
        if self.closed_at is not None:
            return BreachStatus.CLOSED
        if self.authority_notified_at is not None:
            return BreachStatus.NOTIFIED
        if self.not_notified:
            return BreachStatus.NOT_NOTIFIED
        return BreachStatus.LATE if now > self.authority_deadline else BreachStatus.OPEN

    @property
    def status(self) -> BreachStatus:
        return self.status_at(timezone.now())


class BreachChange(models.Model):
    """One change to a decisive field of a breach (its time of awareness, its decisions, its
    closing): the register keeps what it said before, who changed it, when and why. Written
    only by `privacy.breaches.breach_update`, never changed nor deleted."""

    breach = models.ForeignKey(
        Breach, on_delete=models.PROTECT, related_name="changes", verbose_name=_("breach")
    )
    changed_at = models.DateTimeField(_("changed at"), default=timezone.now, editable=False)
    changed_by = models.CharField(_("changed by"), max_length=150, blank=True, editable=False)
    field = models.CharField(_("field"), max_length=50, editable=False)
    old_value = models.TextField(_("old value"), blank=True, editable=False)
    new_value = models.TextField(_("new value"), blank=True, editable=False)
    reason = models.TextField(_("reason"), blank=True, editable=False)

    class Meta:
        verbose_name = _("change to a breach")
        verbose_name_plural = _("changes to breaches")
        ordering = ["changed_at", "id"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.breach_id}: {self.field}"

    @staticmethod
    def field_label(name: str) -> str:
        """A breach field's name as a person reads it."""
        field = Breach._meta.get_field(name)
        return str(field.verbose_name) if isinstance(field, models.Field) else name
