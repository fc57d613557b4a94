"""The outbox (every change to a contact or a consent, written in the same transaction as the
change itself so that nothing is lost), the CRM connections it is pushed to, what each one
has received, and what it refused."""

import uuid

from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from contacts.models import Language, LifecycleStage


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
    # the contact it is about, joined on its public id: no column and no constraint (an event
    # outlives its contact's merge), so that the push reads both in one query
    contact = models.ForeignObject(
        "contacts.Contact",
        on_delete=models.DO_NOTHING,
        from_fields=["contact_public_id"],
        to_fields=["public_id"],
        null=True,
        related_name="+",
    )
    payload = models.JSONField(_("payload"), default=dict)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    # its place in the outbox, given after its transaction committed (`outbox_sequence`):
    # the push cursors and the event feed read numbered events only, in this order
    sequence = models.BigIntegerField(_("sequence"), null=True, blank=True, unique=True)
    # delivered everywhere: every enabled connection's cursor is past it, none refused it
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        verbose_name = _("outbox event")
        verbose_name_plural = _("outbox")
        ordering = ["created_at"]
        indexes = [
            # the sequencer's work list: committed events waiting for their number
            models.Index(
                fields=["created_at", "id"],
                condition=models.Q(sequence__isnull=True),
                name="outbox_unnumbered",
            ),
            # the push's "processed" marking: numbered events not yet delivered everywhere
            models.Index(
                fields=["sequence"],
                condition=models.Q(processed_at__isnull=True),
                name="outbox_undelivered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.topic} {self.contact_public_id}"


class OutboxSequenceMark(models.Model):
    """The highest outbox sequence ever given (one row, written by `outbox_sequence` under its
    lock): it only goes up, so that a number is never given twice even when the events that
    held the highest ones are deleted (an erasure deletes the undelivered events of the
    person); a cursor past them would skip the next events numbered below it."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    sequence = models.BigIntegerField(_("highest sequence given"), default=0)

    class Meta:
        verbose_name = _("outbox sequence mark")
        verbose_name_plural = _("outbox sequence mark")

    def __str__(self) -> str:
        return str(self.sequence)


class ConnectionKind(models.TextChoices):
    HUBSPOT = "hubspot", _("HubSpot")
    SALESFORCE = "salesforce", _("Salesforce")
    WEBHOOK = "webhook", _("Signed webhook")


class MappingDirection(models.TextChoices):
    PUSH = "push", _("Push (ours to the CRM)")
    PULL = "pull", _("Pull (the CRM's to ours)")
    BOTH = "both", _("Both ways")


class ConflictRule(models.TextChoices):
    OURS = "ours", _("Ours wins")
    THEIRS = "theirs", _("Theirs wins")
    LATEST = "latest", _("Latest wins")


class Connection(models.Model):
    """A CRM (or a generic webhook) our changes are pushed to; its credentials are stored only
    encrypted (`crmsync.services.connection_credentials`)."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    kind = models.CharField(_("kind"), max_length=20, choices=ConnectionKind.choices)
    base_url = models.URLField(_("base URL"), max_length=500)
    # a Fernet token of the JSON credentials (core.encryption): never plaintext in the database
    credentials_token = models.TextField(editable=False, blank=True)
    # [{"field", "remote", "direction", "conflict"}] (crmsync.services.field_mappings_problems)
    field_mappings = models.JSONField(_("field mappings"), default=list, blank=True)
    # our purpose slug -> the CRM's subscription type or data-use purpose
    purpose_map = models.JSONField(_("purpose map"), default=dict, blank=True)
    options = models.JSONField(_("options"), default=dict, blank=True)
    pull_interval = models.PositiveIntegerField(
        _("pull interval (seconds)"), default=60, validators=[MinValueValidator(10)]
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("CRM connection")
        verbose_name_plural = _("CRM connections")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ConnectionState(models.Model):
    """Where a connection's push stands: its own row, so that saving the connection in the
    admin never writes over the cursor or the lease a worker holds."""

    connection = models.OneToOneField(
        Connection, on_delete=models.CASCADE, primary_key=True, related_name="state"
    )
    # the sequence of the last outbox event delivered (or parked as a dead letter)
    push_cursor = models.BigIntegerField(_("push cursor"), default=0)
    # the claim of the worker pushing now (a conditional UPDATE takes it; it expires)
    lease_token = models.UUIDField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # backoff after a failure: no push before this time
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    failures = models.PositiveIntegerField(_("consecutive failures"), default=0)
    last_push_at = models.DateTimeField(_("last push"), null=True, blank=True)
    last_pull_at = models.DateTimeField(_("last pull"), null=True, blank=True)
    # the pull's own: where the CRM's changes were read up to (the adapter's opaque text), and
    # the claim of the worker pulling now (apart from the push's: both run at once)
    pull_cursor = models.TextField(_("pull cursor"), blank=True)
    pull_lease_token = models.UUIDField(null=True, blank=True)
    pull_lease_until = models.DateTimeField(null=True, blank=True)
    pull_error = models.TextField(_("last pull error"), blank=True)
    pull_error_at = models.DateTimeField(_("last pull error at"), null=True, blank=True)
    # the last verified change notification from the CRM (crmsync.notifications)
    last_notification_at = models.DateTimeField(
        _("last change notification"), null=True, blank=True
    )
    last_error = models.TextField(_("last error"), blank=True)
    last_error_at = models.DateTimeField(_("last error at"), null=True, blank=True)

    class Meta:
        verbose_name = _("push state")
        verbose_name_plural = _("push states")

    def __str__(self) -> str:
        return f"{self.connection_id} @ {self.push_cursor}"


class ContactLink(models.Model):
    """What a connected CRM calls one of our contacts (learned from its answers, or a pull)."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="links")
    contact = models.ForeignKey(
        "contacts.Contact", on_delete=models.CASCADE, related_name="crm_links"
    )
    remote_id = models.CharField(_("remote id"), max_length=255)
    # the record's owner in the CRM, as the last pull read it: staff data, for the sales
    # alerts (`crmsync.alerts`); blanked when the person is erased
    owner_id = models.CharField(_("owner in the CRM"), max_length=255, blank=True)
    owner_email = models.EmailField(_("owner's email"), blank=True)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)

    class Meta:
        verbose_name = _("CRM contact link")
        verbose_name_plural = _("CRM contact links")
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "contact"], name="crm_link_one_per_contact"
            ),
            models.UniqueConstraint(
                fields=["connection", "remote_id"], name="crm_link_one_per_remote_id"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.connection_id}:{self.remote_id}"


class DeadLetter(models.Model):
    """An event a connection refused, or that kept failing: parked for staff to replay.
    Deleted with its event (an erasure deletes the events not delivered)."""

    connection = models.ForeignKey(
        Connection, on_delete=models.CASCADE, related_name="dead_letters"
    )
    event = models.ForeignKey(OutboxEvent, on_delete=models.CASCADE, related_name="dead_letters")
    error = models.TextField(_("error"))
    attempts = models.PositiveIntegerField(_("attempts"), default=1)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)

    class Meta:
        verbose_name = _("dead letter")
        verbose_name_plural = _("dead letters")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "event"], name="dead_letter_one_per_event"
            )
        ]

    def __str__(self) -> str:
        return f"{self.connection_id}: {self.event_id}"


class SalesAlert(models.Model):
    """Email sales when a contact reaches a lifecycle stage (once per reach, not on every
    update while it stays there)."""

    stage = models.CharField(
        _("lifecycle stage reached"), max_length=20, choices=LifecycleStage.choices
    )
    recipient = models.EmailField(_("recipient"))
    # the owner in the CRM (the most recently pulled link that names one) gets the alert;
    # the recipient above catches the contacts nobody owns yet
    to_owner = models.BooleanField(
        _("send to the contact's owner"),
        default=False,
        help_text=_(
            "Email the contact's owner in the CRM instead of the recipient; the recipient "
            "gets the alerts of contacts without a known owner."
        ),
    )
    language = models.CharField(
        _("language of the email"), max_length=2, choices=Language.choices, default=Language.FRENCH
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("sales alert")
        verbose_name_plural = _("sales alerts")
        ordering = ["stage", "recipient"]
        constraints = [
            models.UniqueConstraint(fields=["stage", "recipient"], name="sales_alert_unique")
        ]

    def __str__(self) -> str:
        return f"{self.get_stage_display()} -> {self.recipient}"


class SalesAlertCursor(models.Model):
    """How far the sales alerts read the outbox (one row): each reach is seen once."""

    sequence = models.BigIntegerField(_("outbox sequence read"), default=0)

    class Meta:
        verbose_name = _("sales alert cursor")
        verbose_name_plural = _("sales alert cursor")

    def __str__(self) -> str:
        return str(self.sequence)


class SalesAlertDelivery(models.Model):
    """One alert due for one reach (the outbox event that recorded it): sent once."""

    alert = models.ForeignKey(SalesAlert, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.UUIDField(_("outbox event"))
    contact_public_id = models.UUIDField(_("contact"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    # the claim of the worker sending it; a claim older than the lease is taken again
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("sales alert sent")
        verbose_name_plural = _("sales alerts sent")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["alert", "event_id"], name="sales_alert_once")
        ]

    def __str__(self) -> str:
        return f"{self.alert_id}: {self.event_id}"
