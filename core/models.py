"""API clients, the idempotency store, job-run markers and the staff audit log."""

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.tokens import token_hash


class Scope(models.TextChoices):
    CONTACTS_READ = "contacts:read", _("Read contacts and consents")
    CONTACTS_WRITE = "contacts:write", _("Create and update contacts")
    CONSENTS_WRITE = "consents:write", _("Record consents")
    PRIVACY_WRITE = "privacy:write", _("File and read privacy requests")
    IMPORTS_WRITE = "imports:write", _("Import contact lists and follow their progress")
    CAMPAIGNS_READ = (
        "campaigns:read",
        _("Read campaigns, their audience, statistics and recipients"),
    )
    CAMPAIGNS_WRITE = "campaigns:write", _("Create campaigns")
    DELIVERABILITY_WRITE = (
        "deliverability:write",
        _("Report bounces, complaints, deliveries, returned mail and SMS STOP"),
    )
    EVIDENCE_READ = (
        "evidence:read",
        _("Read the personal evidence of consents (IP address, user agent, signed document)"),
    )
    EVENTS_READ = "events:read", _("Read the feed of changes to contacts and consents")


def hash_api_key(key: str) -> str:
    """What is stored of an API key, and looked up when a client presents it."""
    return token_hash(key)


class ApiClient(models.Model):
    """A web form or CRM integration; its key is shown once and stored only as a hash."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("name"), max_length=100, unique=True)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_prefix = models.CharField(_("key prefix"), max_length=8, editable=False)
    scopes = models.JSONField(_("scopes"), default=list)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("API client")
        verbose_name_plural = _("API clients")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def set_new_key(self) -> str:
        """Give the client a fresh key and return it; only its hash is kept."""
        key = secrets.token_urlsafe(32)
        self.key_hash = hash_api_key(key)
        self.key_prefix = key[:8]
        return key

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class IdempotencyRecord(models.Model):
    """The first answer to a write sent with an `Idempotency-Key`, replayed on retries."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "key"], name="idempotency_key_per_client")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.method} {self.path})"


class JobRun(models.Model):
    """Marks a periodic job as done for a key (a day, say), so that it acts once per key even
    when beat fires it twice or two workers run it at the same time."""

    job = models.CharField(_("job"), max_length=100)
    key = models.CharField(_("key"), max_length=100)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("job run")
        verbose_name_plural = _("job runs")
        constraints = [models.UniqueConstraint(fields=["job", "key"], name="one_run_per_job_key")]

    def __str__(self) -> str:
        return f"{self.job} {self.key}"


class AuditAction(models.TextChoices):
    VIEW_CONTACT = "view_contact", _("Viewed a contact")
    EXPORT = "export", _("Downloaded an export")
    ERASURE = "erasure", _("Erased a contact")
    REQUEST_CHANGE = "request_change", _("Handled a privacy request")
    LINK_RENEWAL = "link_renewal", _("Renewed a preference link")
    LIST_CONTACTS = "list_contacts", _("Listed or searched contacts")
    VIEW_OUTBOX_EVENT = "view_outbox_event", _("Viewed a CRM outbox payload")
    RESTRICTION = "restriction", _("Restricted processing")
    RESTRICTION_LIFTED = "restriction_lifted", _("Lifted a processing restriction")
    IMPORT_CONTACTS = "import_contacts", _("Imported a contact list")
    RETURNED_MAIL = "returned_mail", _("Uploaded a returned-mail file")
    MERGE = "merge", _("Merged two contacts")
    PROOF_ARCHIVE_READ = "proof_archive_read", _("Read an erased person's proof archive")
    # not personal data, but it decides who receives marketing (SPEC §4 caps)
    FREQUENCY_CAP = "frequency_cap", _("Changed a channel's frequency cap")
    # not personal data either, but it decides where personal data goes (GDPR Art. 28, 32)
    CRM_CONNECTION = "crm_connection", _("Changed a CRM connection")
    DEAD_LETTER_REPLAY = "dead_letter_replay", _("Replayed CRM dead letters")
    OFFLINE_CONSENT = "offline_consent", _("Recorded a consent from a paper form or a phone call")
    # notes held for special categories of data (GDPR Art. 9, 10): who read, released, discarded
    VIEW_NOTES = "view_notes", _("Listed or read notes on contacts")
    NOTE_RELEASED = "note_released", _("Released a note held for review")
    NOTE_DISCARDED = "note_discarded", _("Discarded a note held for review")
    # staff accounts: whoever assigns roles can take any role, so each change is kept
    STAFF_ACCOUNT_CREATED = "staff_account_created", _("Created a staff account")
    STAFF_ACCOUNT_CHANGED = "staff_account_changed", _("Changed a staff account")
    STAFF_GROUPS_CHANGED = "staff_groups_changed", _("Changed a staff account's roles")
    STAFF_PASSWORD_SET = "staff_password_set", _("Set a staff account's password")
    STAFF_ACCOUNT_DEACTIVATED = "staff_account_deactivated", _("Deactivated a staff account")
    STAFF_DEVICE_DELETED = "staff_device_deleted", _("Deleted a staff member's two-factor device")
    STAFF_PRIVILEGES_CHANGED = (
        "staff_privileges_changed",
        _("Changed a staff account's superuser status or permissions"),
    )
    # the periodic jobs: sealing the ledger, retention, reminders of a request's deadline...
    PERIODIC_TASK_CHANGED = "periodic_task_changed", _("Changed a periodic job")


class AuditEvent(models.Model):
    """An action of a staff user on personal data, for the DPO (GDPR Art. 5(2), 30, 32)."""

    at = models.DateTimeField(_("at"), default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("user"),
    )
    username = models.CharField(_("username"), max_length=150)
    action = models.CharField(_("action"), max_length=30, choices=AuditAction.choices)
    contact = models.ForeignKey(
        "contacts.Contact",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("contact"),
    )
    # the contact's pseudonym, never its email: the log must survive the person's erasure
    contact_public_id = models.UUIDField(_("contact id"), null=True, blank=True, db_index=True)
    details = models.JSONField(_("details"), default=dict, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit log")
        ordering = ["-at", "-id"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.username} {self.get_action_display()} {self.at:%Y-%m-%d %H:%M}"


class StaffDevice(TOTPDevice):
    """A staff member's authenticator app (django-otp's TOTP device, the same rows) as the
    admin shows it: named in the reader's language, which django-otp's model is not."""

    class Meta:
        proxy = True
        verbose_name = _("authenticator app")
        verbose_name_plural = _("authenticator apps (two-factor)")
