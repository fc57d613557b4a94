"""Contacts: the people whose consents we keep, their interests, timeline and suppressions."""

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.http import HttpRequest
from django.utils import timezone, translation
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from contacts.normalization import suppression_digests
from contacts.screening import SpecialCategory
from core.storage import private_storage

# A new address is trusted with the person's data once it has held the contact this long.
EMAIL_TRUST_PERIOD = timedelta(days=7)
# The suppression keys of the contact's own address and phone, stored so that a query over
# millions of contacts can join the suppression list (SPEC §3 campaigns) without computing an
# HMAC per row; `Contact.save` keeps them in step with `email` and `phone`.
SUPPRESSION_DIGEST_FIELDS = ("email_digest", "email_quoted_digest", "phone_digest")


class Language(models.TextChoices):
    FRENCH = "fr", _("French")
    ENGLISH = "en", _("English")


class LifecycleStage(models.TextChoices):
    SUBSCRIBER = "subscriber", _("Subscriber")
    LEAD = "lead", _("Lead")
    MQL = "mql", _("Marketing qualified lead")
    SQL = "sql", _("Sales qualified lead")
    OPPORTUNITY = "opportunity", _("Opportunity")
    CUSTOMER = "customer", _("Customer")


class CrmRecordType(models.TextChoices):
    LEAD = "lead", _("Lead")
    CONTACT = "contact", _("Contact")


class ContactStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    PAUSED = "paused", _("Paused")
    ERASED = "erased", _("Erased")
    # merged into another contact (`Contact.merged_into`), which holds the person from then on
    MERGED = "merged", _("Merged")


class Frequency(models.TextChoices):
    """How often the person wants to hear from us (read by the campaign frequency cap)."""

    AS_PUBLISHED = "as_published", _("As they are published")
    WEEKLY = "weekly", _("At most once a week")
    MONTHLY = "monthly", _("At most once a month")


class Relationship(models.TextChoices):
    """Whether the person bought from us (CNIL: soft opt-in, retention after the contract)."""

    PROSPECT = "prospect", _("Prospect")
    CUSTOMER = "customer", _("Customer")


class EmailDeliverability(models.TextChoices):
    DELIVERABLE = "deliverable", _("Deliverable")
    HARD_BOUNCE = "hard_bounce", _("Hard bounce")
    COMPLAINT = "complaint", _("Complaint")
    # the third soft bounce in a row (a delivery in between starts the count again)
    SOFT_BOUNCES = "soft_bounces", _("Repeated soft bounces")


class PostalDeliverability(models.TextChoices):
    DELIVERABLE = "deliverable", _("Deliverable")
    RETURNED = "returned", _("Returned mail")


class ReturnedMailReason(models.TextChoices):
    """Why the mail house returned a letter (La Poste REFLEX reasons)."""

    UNKNOWN_AT_ADDRESS = "unknown_at_address", _("Unknown at this address")
    REFUSED = "refused", _("Refused")
    NOT_CLAIMED = "not_claimed", _("Not claimed")
    FAULTY_ADDRESS = "faulty_address", _("Faulty address")


class Interest(models.Model):
    """A topic a person can choose, used for personalisation."""

    slug = models.SlugField(_("slug"), unique=True)
    name_fr = models.CharField(_("name (French)"), max_length=100)
    name_en = models.CharField(_("name (English)"), max_length=100)

    class Meta:
        verbose_name = _("interest")
        verbose_name_plural = _("interests")
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        return self.name_en if (get_language() or "fr").startswith("en") else self.name_fr


# The `previous_hash` of a contact's first ledger record (consent.ledger.GENESIS_HASH).
LEDGER_GENESIS_HASH = "0" * 64
LEDGER_HEAD_FIELDS = frozenset({"ledger_seq", "ledger_hash"})


class Contact(models.Model):
    """One natural person; `public_id` is the pseudonym used in links, the API and exports."""

    public_id = models.UUIDField(_("public id"), default=uuid.uuid4, unique=True, editable=False)
    email = models.CharField(_("email"), max_length=254, unique=True)
    email_changed_at = models.DateTimeField(
        _("email changed at"),
        null=True,
        blank=True,
        help_text=_("When the current address replaced the previous one (empty: never changed)."),
    )
    previous_email = models.CharField(
        _("previous email"),
        max_length=254,
        blank=True,
        help_text=_(
            "The address in use before a recent change: data download and erasure links go "
            "there until the new one has held the contact for 7 days, then it is forgotten."
        ),
    )
    first_name = models.CharField(_("first name"), max_length=150, blank=True)
    last_name = models.CharField(_("last name"), max_length=150, blank=True)
    phone = models.CharField(_("phone (E.164)"), max_length=20, blank=True)
    company = models.CharField(_("company"), max_length=200, blank=True)
    job_title = models.CharField(_("job title"), max_length=200, blank=True)
    address_line1 = models.CharField(_("address line 1"), max_length=200, blank=True)
    address_line2 = models.CharField(_("address line 2"), max_length=200, blank=True)
    postal_code = models.CharField(_("postal code"), max_length=20, blank=True)
    city = models.CharField(_("city"), max_length=100, blank=True)
    country = models.CharField(_("country"), max_length=2, blank=True)
    # blank: unknown (the person never said); see `reading_language`
    language = models.CharField(
        _("language"), max_length=2, choices=Language.choices, blank=True, default=""
    )
    lifecycle_stage = models.CharField(
        _("lifecycle stage"),
        max_length=20,
        choices=LifecycleStage.choices,
        default=LifecycleStage.SUBSCRIBER,
    )
    b2b = models.BooleanField(
        _("professional contact (B2B)"),
        default=False,
        help_text=_(
            "A professional address, reached about the person's job: legitimate interest may "
            "then reach them by email, SMS and phone (CPCE L34-5, CNIL)."
        ),
    )
    relationship = models.CharField(
        _("relationship"),
        max_length=10,
        choices=Relationship.choices,
        default=Relationship.PROSPECT,
    )
    customer_since = models.DateField(_("customer since"), null=True, blank=True)
    customer_until = models.DateField(
        _("customer until"),
        null=True,
        blank=True,
        help_text=_(
            "End of the contract (empty: still a customer). Kept three years after it (CNIL)."
        ),
    )
    crm_record_type = models.CharField(
        _("CRM record type"), max_length=10, choices=CrmRecordType.choices, blank=True
    )
    hubspot_id = models.CharField(_("HubSpot id"), max_length=64, blank=True)
    salesforce_id = models.CharField(_("Salesforce id"), max_length=64, blank=True)
    source = models.CharField(_("source"), max_length=200, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=ContactStatus.choices, default=ContactStatus.ACTIVE
    )
    paused_until = models.DateTimeField(_("paused until"), null=True, blank=True)
    merged_into = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="merged_contacts",
        verbose_name=_("merged into"),
        help_text=_("The contact that holds this person since a merge (status: merged)."),
    )
    frequency = models.CharField(
        _("frequency"), max_length=20, choices=Frequency.choices, default=Frequency.AS_PUBLISHED
    )
    processing_restricted_at = models.DateTimeField(
        _("processing restricted since"),
        null=True,
        blank=True,
        help_text=_("While set, no marketing processing at all (GDPR Art. 18)."),
    )
    profiling_objected_at = models.DateTimeField(
        _("objected to profiling at"),
        null=True,
        blank=True,
        help_text=_("Set when the person objects to profiling (GDPR Art. 21)."),
    )
    marketing_objected_at = models.DateTimeField(
        _("objected to marketing at"),
        null=True,
        blank=True,
        help_text=_(
            "Set by an objection (GDPR Art. 21(2)) or an unsubscribe from all: every "
            "legitimate-interest purpose stays off, including one added later."
        ),
    )
    email_deliverability = models.CharField(
        _("email deliverability"),
        max_length=20,
        choices=EmailDeliverability.choices,
        default=EmailDeliverability.DELIVERABLE,
    )
    email_undeliverable_reason = models.CharField(
        _("email undeliverable reason"), max_length=255, blank=True
    )
    postal_deliverability = models.CharField(
        _("postal deliverability"),
        max_length=20,
        choices=PostalDeliverability.choices,
        default=PostalDeliverability.DELIVERABLE,
    )
    postal_undeliverable_reason = models.CharField(
        _("returned mail reason"), max_length=255, blank=True
    )
    email_soft_bounces = models.PositiveSmallIntegerField(
        _("soft bounces in a row"),
        default=0,
        help_text=_("The third makes the email undeliverable; a delivery resets the count."),
    )
    # the year alone (not the date: data minimisation); the age it gives is uncertain by one
    # year, and the eligibility rule takes the younger (consent.minors)
    birth_year = models.PositiveSmallIntegerField(
        _("birth year"),
        null=True,
        blank=True,
        help_text=_(
            "Under the age of digital consent of the country of residence (15 in France), "
            "consent-based marketing needs the guardian's consent, recorded in the ledger "
            "(GDPR Art. 8)."
        ),
    )
    is_minor = models.BooleanField(
        _("minor"),
        default=False,
        help_text=_(
            "A child under the age of digital consent, for people whose birth year is unknown."
        ),
    )
    guardian_consent_evidence = models.TextField(
        _("guardian consent evidence (notes)"),
        blank=True,
        help_text=_(
            "Free notes only: what counts is the guardian's consent recorded in the consent "
            "ledger (GDPR Art. 8)."
        ),
    )
    interests = models.ManyToManyField(
        Interest, verbose_name=_("interests"), blank=True, related_name="contacts"
    )
    last_activity_at = models.DateTimeField(_("last activity at"), null=True, blank=True)
    repermission_sent_at = models.DateTimeField(
        _("re-permission request sent at"),
        null=True,
        blank=True,
        help_text=_("Retention: without an answer, the contact is anonymised after a delay."),
    )
    # NULL, not "", when there is no key: the planner then knows those rows join nothing
    email_digest = models.CharField(max_length=64, null=True, blank=True, editable=False)
    email_quoted_digest = models.CharField(max_length=64, null=True, blank=True, editable=False)
    phone_digest = models.CharField(max_length=64, null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    # The head of the person's own chain in the consent ledger: the position and hash of their
    # last record. Written only by the consent write path, under this row's lock.
    ledger_seq = models.BigIntegerField(_("ledger position"), default=0, editable=False)
    ledger_hash = models.CharField(
        _("ledger head hash"), max_length=64, default=LEDGER_GENESIS_HASH, editable=False
    )

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        ordering = ["-created_at"]
        indexes = [
            # The audience count (`consent.eligibility.eligible_contacts`) on PostgreSQL, by
            # email, SMS or phone: what it tests of a live contact, read from this index alone
            # rather than from the table (at a million contacts, a heap seven times
            # PostgreSQL's default buffers: 0.72 s a count against 1.0 s). A new column the
            # eligibility rule tests belongs here too: tests/consent/test_eligibility_plan.py
            # checks that the count reads no row of the table.
            models.Index(
                fields=["id"],
                include=[
                    "status",
                    "paused_until",
                    "processing_restricted_at",
                    "email_deliverability",
                    "phone",
                    "b2b",
                    "is_minor",
                    "birth_year",
                    "country",
                    *SUPPRESSION_DIGEST_FIELDS,
                ],
                condition=~models.Q(status__in=[ContactStatus.ERASED, ContactStatus.MERGED])
                & models.Q(processing_restricted_at__isnull=True),
                name="contact_audience",
            )
        ]
        # Whoever changes the address receives the person's links from then on: only the
        # person (preference center, confirmed from both addresses) and the DPO handling a
        # rectification may change it, never a marketer (SPEC §3 security).
        permissions = [
            ("change_email_contact", _("Can change the email address of a contact")),
            # a merge changes whose consents are whose: the DPO's decision (SPEC §3 contacts)
            ("merge_contact", _("Can merge two contacts")),
            # staff enter what the person signed or said (SPEC §3 consent: evidence stored apart)
            (
                "record_offline_consent_contact",
                _("Can record a consent from a paper form or a phone call"),
            ),
        ]

    def __str__(self) -> str:
        full_name = f"{self.first_name} {self.last_name}".strip()
        return f"{full_name} <{self.email}>" if full_name else self.email

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save, with the suppression digests following the email and phone being saved (a
        save of other columns only, such as the last activity, skips the HMACs).

        A full save of an existing contact leaves the ledger head alone: only the consent
        write path moves it, and an instance loaded before a write must not set it back."""
        update_fields = kwargs.get("update_fields")
        if update_fields is None and not self._state.adding and not kwargs.get("force_insert"):
            skipped = LEDGER_HEAD_FIELDS | self.get_deferred_fields()
            update_fields = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.attname not in skipped and f.name not in skipped
            ]
            kwargs["update_fields"] = update_fields
        if update_fields is None or {"email", "phone"} & set(update_fields):
            email_keys = suppression_digests(kind=SuppressionKind.EMAIL, value=self.email)
            phone_keys = (
                suppression_digests(kind=SuppressionKind.PHONE, value=self.phone)
                if self.phone
                else []
            )
            self.email_digest, self.email_quoted_digest = (email_keys + [None, None])[:2]
            self.phone_digest = (phone_keys + [None])[0]
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, *SUPPRESSION_DIGEST_FIELDS}
        super().save(*args, **kwargs)

    def reading_language(self, request: HttpRequest | None = None) -> str:
        """The language to address the person in: their own; when unknown, the browser's
        (`Accept-Language`) on a page they opened, else French (SPEC §1) in a message."""
        if self.language:
            return self.language
        if request is not None:
            return translation.get_language_from_request(request)
        return Language.FRENCH

    def trusted_emails(self, *, now: datetime | None = None) -> list[str]:
        """Where links that hand over the person's data (download, erasure, a renewed
        preference link) may go: the current address once it has held the contact for
        `EMAIL_TRUST_PERIOD`; until then, the address it replaced."""
        now = now or timezone.now()
        recent = self.email_changed_at is not None and now < (
            self.email_changed_at + EMAIL_TRUST_PERIOD
        )
        if recent and self.previous_email:
            return [self.previous_email]
        return [self.email]


class TimelineKind(models.TextChoices):
    CREATED = "created", _("Contact created")
    UPDATED = "updated", _("Contact updated")
    FORM_SUBMITTED = "form_submitted", _("Form submitted")
    CONSENT_CHANGED = "consent_changed", _("Consent changed")
    EMAIL_CHANGED = "email_changed", _("Email changed")
    CONFIRMATION_SENT = "confirmation_sent", _("Confirmation email sent")
    CAMPAIGN_SENT = "campaign_sent", _("Campaign sent")
    CRM_SYNCED = "crm_synced", _("CRM synced")
    REQUEST_FILED = "request_filed", _("Privacy request filed")
    INTERESTS_CHANGED = "interests_changed", _("Interests changed")
    PAUSED = "paused", _("Communications paused")
    RESUMED = "resumed", _("Communications resumed")
    UNSUBSCRIBED = "unsubscribed", _("Unsubscribed from all marketing")
    RESUBSCRIBED = "resubscribed", _("Resubscribed")
    PROFILING_OBJECTION = "profiling_objection", _("Objection to profiling")
    DATA_EXPORTED = "data_exported", _("Personal data downloaded")
    LINK_RENEWED = "link_renewed", _("Preference link renewed")
    RESTRICTION = "restriction", _("Processing restriction changed")
    OBJECTION = "objection", _("Objection to legitimate-interest processing")
    ERASED = "erased", _("Personal data erased")
    REQUEST_COMPLETED = "request_completed", _("Privacy request completed")
    REPERMISSION_SENT = "repermission_sent", _("Re-permission request sent")
    KEPT = "kept", _("Asked to keep receiving our messages")
    MERGED = "merged", _("Contacts merged")
    # deliverability feedback (ESP webhooks, the API, the mail house's returned-mail file)
    EMAIL_DELIVERED = "email_delivered", _("Email delivered")
    EMAIL_BOUNCED = "email_bounced", _("Email bounced")
    COMPLAINT = "complaint", _("Complaint (marked as spam)")
    MAIL_RETURNED = "mail_returned", _("Postal mail returned")
    SMS_STOPPED = "sms_stopped", _("SMS opt-out (STOP)")
    DELIVERABILITY_RESET = "deliverability_reset", _("Address corrected: deliverable again")
    NOTE_ADDED = "note_added", _("Note added")


class TimelineEvent(models.Model):
    """An "interesting moment" in a contact's life, shown in the admin."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="timeline")
    kind = models.CharField(_("kind"), max_length=30, choices=TimelineKind.choices)
    summary = models.CharField(_("summary"), max_length=500)
    data = models.JSONField(_("data"), default=dict, blank=True)
    occurred_at = models.DateTimeField(_("occurred at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("timeline event")
        verbose_name_plural = _("timeline events")
        ordering = ["-occurred_at", "-id"]
        # the weeks of one kind of event (core.dashboard.feedback_weeks: unsubscribes and
        # complaints) without reading every other event of those weeks
        indexes = [models.Index(fields=["kind", "occurred_at"], name="timeline_kind_occurred")]

    def __str__(self) -> str:
        return self.summary


class NoteStatus(models.TextChoices):
    STORED = "stored", _("Stored")
    # it looked like a special category of data (GDPR Art. 9, 10): the DPO decides
    HELD = "held", _("Held for review")
    RELEASED = "released", _("Released after review")
    DISCARDED = "discarded", _("Discarded")


class Note(models.Model):
    """Free text about a contact written by staff, screened for special categories of data
    (`contacts.screening`): one that looks like one is held until the DPO releases it (lawful,
    e.g. the person's explicit consent, Art. 9(2)(a)) or discards it (the text is wiped, the
    trail of who decided what and when is kept)."""

    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="notes", verbose_name=_("contact")
    )
    body = models.TextField(_("note"), blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("author"),
    )
    # kept when the author's account goes
    author_name = models.CharField(_("author"), max_length=150, blank=True)
    created_at = models.DateTimeField(_("written at"), default=timezone.now, editable=False)
    status = models.CharField(
        _("status"), max_length=10, choices=NoteStatus.choices, default=NoteStatus.STORED
    )
    # the `contacts.screening.SpecialCategory` values the text looked like, [] for none
    categories = models.JSONField(_("special categories found"), default=list, blank=True)
    reviewed_by_name = models.CharField(_("reviewed by"), max_length=150, blank=True)
    reviewed_at = models.DateTimeField(_("reviewed at"), null=True, blank=True)
    review_comment = models.TextField(_("review comment"), blank=True)

    class Meta:
        verbose_name = _("note")
        verbose_name_plural = _("notes")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "created_at"], name="note_status_created")]
        permissions = [
            ("review_note", _("Can review notes held for special categories of data")),
        ]

    def __str__(self) -> str:
        return f"{self.get_status_display()} {self.created_at:%Y-%m-%d %H:%M}"

    def categories_in_words(self) -> str:
        """The special categories found, as a person reads them ("health, religious beliefs")."""
        return ", ".join(
            str(SpecialCategory(category).label)
            for category in self.categories
            if category in SpecialCategory.values
        )


class SuppressionKind(models.TextChoices):
    EMAIL = "email", _("Email")
    PHONE = "phone", _("Phone")


class SuppressionReason(models.TextChoices):
    ERASED = "erased", _("Erased")
    HARD_BOUNCE = "hard_bounce", _("Hard bounce")
    COMPLAINT = "complaint", _("Complaint")
    GLOBAL_UNSUBSCRIBE = "global_unsubscribe", _("Global unsubscribe")


class Suppression(models.Model):
    """A person never to be re-imported or re-contacted, known only by an HMAC of the address."""

    digest = models.CharField(_("digest"), max_length=64, unique=True, editable=False)
    kind = models.CharField(_("kind"), max_length=10, choices=SuppressionKind.choices)
    reason = models.CharField(_("reason"), max_length=30, choices=SuppressionReason.choices)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("suppression")
        verbose_name_plural = _("suppression list")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.digest[:12]}… ({self.get_reason_display()})"


def import_file_path(instance: "ContactImport", filename: str) -> str:
    """Where an uploaded list is kept (private storage): under its import's public id."""
    suffix = ".xlsx" if filename.lower().endswith(".xlsx") else ".csv"
    return f"imports/{instance.public_id}{suffix}"


class ImportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class ContactImport(models.Model):
    """A list of contacts (CSV or XLSX) loaded in batches by the worker, resumable.

    `position` is the number of data rows already handled: each batch commits its contacts,
    consents, rejected rows, counters and the new position together, so a worker killed in the
    middle of a batch leaves it untouched and the next one starts again from `position`.
    """

    public_id = models.UUIDField(_("public id"), default=uuid.uuid4, unique=True, editable=False)
    file = models.FileField(_("file"), upload_to=import_file_path, storage=private_storage)
    file_name = models.CharField(_("file name"), max_length=255, blank=True)
    file_sha256 = models.CharField(_("file SHA-256"), max_length=64, db_index=True)
    file_format = models.CharField(_("format"), max_length=4, default="csv")
    encoding = models.CharField(_("encoding"), max_length=20, blank=True)
    delimiter = models.CharField(_("delimiter"), max_length=1, blank=True)
    # {column: field} as applied (given, or guessed from the headers)
    mapping = models.JSONField(_("column mapping"), default=dict)
    # {purpose, channel, source_reference, wording, given_at_column}, or {} for no consent
    consent = models.JSONField(_("declared consent"), default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=ImportStatus.choices, default=ImportStatus.QUEUED
    )
    rows = models.PositiveIntegerField(_("rows"), null=True, blank=True)
    position = models.PositiveIntegerField(_("rows handled"), default=0)
    processed = models.PositiveIntegerField(_("processed"), default=0)
    created = models.PositiveIntegerField(_("created"), default=0)
    updated = models.PositiveIntegerField(_("updated"), default=0)
    consents_recorded = models.PositiveIntegerField(_("consents recorded"), default=0)
    rejected = models.PositiveIntegerField(_("rejected"), default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    api_client = models.ForeignKey(
        "core.ApiClient",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("API client"),
    )
    error = models.TextField(_("error"), blank=True)
    # the uploader's language: the rejected rows' reasons are written in it
    language = models.CharField(_("language"), max_length=10, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("contact import")
        verbose_name_plural = _("contact imports")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.file_name or self.public_id} ({self.get_status_display()})"


class ImportRejection(models.Model):
    """A row of an import that was not loaded: its line in the file (header: line 1) and why."""

    contact_import = models.ForeignKey(
        ContactImport, on_delete=models.CASCADE, related_name="rejections"
    )
    line = models.PositiveIntegerField(_("line"))
    reason = models.TextField(_("reason"))

    class Meta:
        verbose_name = _("rejected import row")
        verbose_name_plural = _("rejected import rows")
        ordering = ["line", "id"]

    def __str__(self) -> str:
        return f"{self.line}: {self.reason}"


class DeliverabilityEventType(models.TextChoices):
    """The feedback types of `POST /api/v1/deliverability-events/` (SPEC §4)."""

    HARD_BOUNCE = "hard_bounce", _("Hard bounce")
    SOFT_BOUNCE = "soft_bounce", _("Soft bounce")
    COMPLAINT = "complaint", _("Complaint")
    DELIVERED = "delivered", _("Delivered")
    RETURNED_MAIL = "returned_mail", _("Returned mail")
    SMS_STOP = "sms_stop", _("SMS STOP")


class DeliverabilityEvent(models.Model):
    """A provider's feedback event already applied, kept by its id so that a retried webhook
    or API call is applied once (`contacts.deliverability.deliverability_event_apply`)."""

    event_id = models.CharField(_("provider event id"), max_length=200, unique=True)
    type = models.CharField(_("type"), max_length=20, choices=DeliverabilityEventType.choices)
    campaign = models.CharField(_("campaign"), max_length=100, blank=True)
    applied = models.PositiveIntegerField(_("contacts changed"), default=0)
    created_at = models.DateTimeField(_("received at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("deliverability event")
        verbose_name_plural = _("deliverability events")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
