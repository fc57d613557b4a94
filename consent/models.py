"""Purposes with versioned wording, the append-only consent ledger and the current state."""

import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from contacts.models import Contact


class LegalBasis(models.TextChoices):
    """The six lawful bases of GDPR Art. 6(1)."""

    CONSENT = "consent", _("Consent (Art. 6(1)(a))")
    CONTRACT = "contract", _("Contract (Art. 6(1)(b))")
    LEGAL_OBLIGATION = "legal_obligation", _("Legal obligation (Art. 6(1)(c))")
    VITAL_INTERESTS = "vital_interests", _("Vital interests (Art. 6(1)(d))")
    PUBLIC_TASK = "public_task", _("Public task (Art. 6(1)(e))")
    LEGITIMATE_INTERESTS = "legitimate_interests", _("Legitimate interests (Art. 6(1)(f))")


# The legal bases a purpose may send messages on: marketing on consent or legitimate interests
# (CPCE L34-5), and the messages a contract requires (reaching only current customers,
# `consent.status.reach_problem`). Vital interests, public task and legal obligation send
# nothing from a marketing product.
MESSAGING_BASES = frozenset(
    {LegalBasis.CONSENT, LegalBasis.LEGITIMATE_INTERESTS, LegalBasis.CONTRACT}
)


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    POSTAL = "postal", _("Postal mail")
    PHONE = "phone", _("Phone")
    PUSH = "push", _("Push notification")


class ConsentAction(models.TextChoices):
    GRANT = "grant", _("Grant")
    WITHDRAW = "withdraw", _("Withdraw")
    CONFIRM = "confirm", _("Confirm")
    EXPIRE = "expire", _("Expire")


class ConsentStatus(models.TextChoices):
    GRANTED = "granted", _("Granted")
    PENDING = "pending", _("Pending confirmation")
    WITHDRAWN = "withdrawn", _("Withdrawn")
    EXPIRED = "expired", _("Expired")


class SourceKind(models.TextChoices):
    WEB_FORM = "web_form", _("Web form")
    PREFERENCE_CENTER = "preference_center", _("Preference center")
    API = "api", _("API")
    IMPORT = "import", _("Import")
    CRM = "crm", _("CRM")
    ADMIN = "admin", _("Admin")
    PAPER_FORM = "paper_form", _("Paper form")
    EMAIL_CONFIRMATION = "email_confirmation", _("Email confirmation")
    ONE_CLICK_UNSUBSCRIBE = "one_click_unsubscribe", _("One-click unsubscribe")
    SYSTEM = "system", _("Automatic job")
    # carried over from a contact merged into this one (the origin record stays on its contact)
    MERGE = "merge", _("Contact merge")
    # told to staff on the phone and entered by them, with the call's reference
    PHONE_CALL = "phone_call", _("Phone call")


def localized(obj: object, field: str) -> str:
    """The French or English variant of a translated field, French when unknown."""
    language = (get_language() or "fr")[:2]
    value = getattr(obj, f"{field}_{language}", "") if language in ("fr", "en") else ""
    return value or getattr(obj, f"{field}_fr")


class Purpose(models.Model):
    """What a person's data is used for; its wording lives in numbered versions."""

    slug = models.SlugField(_("slug"), unique=True)
    name_fr = models.CharField(_("name (French)"), max_length=150)
    name_en = models.CharField(_("name (English)"), max_length=150)
    description_fr = models.TextField(_("description (French)"), blank=True)
    description_en = models.TextField(_("description (English)"), blank=True)
    legal_basis = models.CharField(
        _("legal basis"), max_length=30, choices=LegalBasis.choices, default=LegalBasis.CONSENT
    )
    channels = models.JSONField(_("channels"), default=list)
    double_opt_in = models.BooleanField(_("double opt-in required"), default=False)
    is_profiling = models.BooleanField(
        _("profiling or personalisation"),
        default=False,
        help_text=_("An objection to profiling (GDPR Art. 21) withdraws this purpose."),
    )
    similar_products = models.BooleanField(
        _("similar products or services"),
        default=False,
        help_text=_(
            "Legitimate interest only: offers of products or services similar to those the "
            "customer bought (soft opt-in, CPCE L34-5), which may reach customers by email, "
            "SMS and push when the refusal was offered at collection."
        ),
    )
    # GDPR Art. 13(1)(d): a purpose on legitimate interests states the interest pursued
    legitimate_interest_fr = models.TextField(
        _("legitimate interest pursued (French)"),
        blank=True,
        help_text=_("Required for a purpose on legitimate interests: the interest it pursues."),
    )
    legitimate_interest_en = models.TextField(
        _("legitimate interest pursued (English)"), blank=True
    )
    retention_days = models.PositiveIntegerField(
        _("retention (days)"),
        null=True,
        blank=True,
        help_text=_("Empty: the default of three years after the last contact (CNIL)."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("purpose")
        verbose_name_plural = _("purposes")
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Refuse what the law does not allow a purpose to be (SPEC §3, issue 12): messages
        sent on a basis other than consent, legitimate interests (marketing) or a contract
        (the messages the contract itself requires), and the soft opt-in of "similar products"
        on any basis but legitimate interests; a legitimate interest must state the interest
        it pursues."""
        unknown = sorted(set(self.channels or []) - set(Channel.values))
        if unknown:
            raise ValidationError({"channels": _("Unknown channel: %s") % ", ".join(unknown)})
        errors: dict[str, Any] = {}
        if self.channels and self.legal_basis not in MESSAGING_BASES:
            errors["channels"] = _(
                "Messages are sent only on consent or legitimate interests (marketing, "
                "CPCE L34-5) or on a contract (the messages it requires). Choose one "
                "of these legal bases, or no channel."
            )
        if self.similar_products and self.legal_basis != LegalBasis.LEGITIMATE_INTERESTS:
            errors["similar_products"] = _(
                "Soft opt-in for similar products or services rests on legitimate "
                "interests (CPCE L34-5): set that legal basis, or untick this."
            )
        if self.legal_basis == LegalBasis.LEGITIMATE_INTERESTS:
            # GDPR Art. 13(1)(d): the interest pursued is told, in both languages
            for name in ("legitimate_interest_fr", "legitimate_interest_en"):
                if not getattr(self, name).strip():
                    errors[name] = _(
                        "A purpose on legitimate interests states the interest it pursues, in "
                        "French and in English (GDPR Art. 13(1)(d))."
                    )
        if errors:
            raise ValidationError(errors)

    @property
    def name(self) -> str:
        return localized(self, "name")

    @property
    def description(self) -> str:
        return localized(self, "description")

    @property
    def legitimate_interest(self) -> str:
        """The interest pursued, in the reader's language; "" unless on legitimate interests."""
        if self.legal_basis != LegalBasis.LEGITIMATE_INTERESTS:
            return ""
        return localized(self, "legitimate_interest")

    @property
    def current_version(self) -> "PurposeVersion | None":
        prefetched = getattr(self, "versions_newest_first", None)  # see selectors.purposes_active
        if prefetched is not None:
            return prefetched[0] if prefetched else None
        return self.versions.order_by("-number").first()

    def replaced_version_ids(self) -> set[int]:
        """The wording versions a later material change replaced: a consent given on one of
        them no longer counts, and the person must be asked again. A minor change (a typo)
        replaces nothing."""
        versions = getattr(self, "versions_newest_first", None)
        if versions is None:
            versions = list(self.versions.order_by("-number"))
        material = [v.number for v in versions if v.is_material]
        last_material = max(material, default=0)
        return {v.id for v in versions if v.number < last_material}

    def wording_outdated(self, version_id: int) -> bool:
        """Whether a consent given on `version_id` needs re-consent (`replaced_version_ids`)."""
        return version_id in self.replaced_version_ids()


class PrivacyNotice(models.Model):
    """One version of the controller's privacy notice (GDPR Art. 12-13), named by the
    `policy_version` a consent record carries. The current one is the latest published.

    A version a consent record names is the evidence of what the person was shown: the admin
    no longer edits or deletes it (consent.admin.PrivacyNoticeAdmin).
    """

    version = models.CharField(
        _("version"),
        max_length=50,  # ConsentRecord.policy_version
        unique=True,
        help_text=_("What consent records name as their privacy policy version, e.g. 2026-01."),
    )
    text_fr = models.TextField(_("text (French)"))
    text_en = models.TextField(_("text (English)"))
    url = models.URLField(_("URL"), max_length=500, help_text=_("Where the notice is published."))
    published_at = models.DateTimeField(_("published at"), default=timezone.now)
    created_by = models.CharField(_("created by"), max_length=150, blank=True, editable=False)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("privacy notice version")
        verbose_name_plural = _("privacy notice versions")
        ordering = ["-published_at", "-id"]

    def __str__(self) -> str:
        return self.version

    @property
    def text(self) -> str:
        return localized(self, "text")


class ImmutableQuerySet(models.QuerySet):
    """Refuses bulk updates and deletes: rows of these tables are written once."""

    def update(self, **kwargs: object) -> int:
        raise ValidationError(_("These records are append-only and cannot be updated."))

    def delete(self) -> tuple[int, dict[str, int]]:
        raise ValidationError(_("These records are append-only and cannot be deleted."))

    def bulk_update(self, *args: object, **kwargs: object) -> int:
        raise ValidationError(_("These records are append-only and cannot be updated."))


class AppendOnlyModel(models.Model):
    objects = ImmutableQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValidationError(_("These records are append-only and cannot be updated."))
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ValidationError(_("These records are append-only and cannot be deleted."))


class PurposeVersion(AppendOnlyModel):
    """One wording of a purpose; a consent always points at the exact version it was given on."""

    purpose = models.ForeignKey(
        Purpose, on_delete=models.PROTECT, related_name="versions", verbose_name=_("purpose")
    )
    number = models.PositiveIntegerField(_("version"))
    wording_fr = models.TextField(_("wording (French)"))
    wording_en = models.TextField(_("wording (English)"))
    is_material = models.BooleanField(
        _("material change"),
        default=True,
        help_text=_("A material change makes earlier consents need re-consent."),
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    created_by = models.CharField(_("created by"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("purpose wording version")
        verbose_name_plural = _("purpose wording versions")
        ordering = ["purpose", "number"]
        constraints = [
            models.UniqueConstraint(fields=["purpose", "number"], name="purpose_version_number")
        ]

    def __str__(self) -> str:
        return f"{self.purpose.slug} v{self.number}"

    @property
    def wording(self) -> str:
        return localized(self, "wording")


class HashVersion(models.IntegerChoices):
    GLOBAL_CHAIN = 1, _("One global chain (legacy)")
    PER_CONTACT = 2, _("One chain per contact")
    # version 2 plus who acted, whether the proof is second-hand and where it was collected
    ACTOR_AND_ORIGIN = 3, _("One chain per contact, with the actor and the origin")


class Actor(models.TextChoices):
    """Who gave or ended a consent (hashed from version 3; blank on older records).

    `person`: the data subject, wherever they acted (a form, the preference center, a paper
    form they signed, a list that relays what they did elsewhere). `guardian`: the holder of
    parental responsibility for a child under the age of digital consent (GDPR Art. 8(1)).
    `person_and_guardian`: both together, as France requires under 15 (loi Informatique et
    Libertés art. 45). `staff`: one of our users recording on the person's behalf (the
    admin). `system`: an automatic job (expiry, erasure, a merge) applying a rule.
    """

    PERSON = "person", _("The person")
    GUARDIAN = "guardian", _("The holder of parental responsibility")
    PERSON_AND_GUARDIAN = (
        "person_and_guardian",
        _("The person and the holder of parental responsibility"),
    )
    STAFF = "staff", _("Staff, on the person's behalf")
    SYSTEM = "system", _("Automatic job")


class ConsentRecord(AppendOnlyModel):
    """One entry of the ledger: never updated or deleted, chained to the previous entry by hash.

    Each contact has its own chain (`contact_seq`, `previous_hash`), so writes for different
    contacts never wait for each other. Personal evidence (IP, user agent, documents) lives in
    `ConsentEvidence`; this row keeps only its digest, so erasing the evidence leaves the chain
    intact (GDPR Art. 7(1), 17).
    """

    uuid = models.UUIDField(_("id"), default=uuid.uuid4, unique=True, editable=False)
    contact = models.ForeignKey(
        Contact, on_delete=models.PROTECT, related_name="consent_records", verbose_name=_("contact")
    )
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, verbose_name=_("purpose"))
    purpose_version = models.ForeignKey(
        PurposeVersion, on_delete=models.PROTECT, verbose_name=_("wording version")
    )
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    action = models.CharField(_("action"), max_length=10, choices=ConsentAction.choices)
    status = models.CharField(_("resulting status"), max_length=10, choices=ConsentStatus.choices)
    given_at = models.DateTimeField(_("given at"))
    recorded_at = models.DateTimeField(_("recorded at"))
    source_kind = models.CharField(_("source"), max_length=30, choices=SourceKind.choices)
    source_reference = models.CharField(_("source reference"), max_length=500, blank=True)
    wording = models.TextField(_("wording shown"), blank=True)
    language = models.CharField(_("language"), max_length=2, blank=True)
    unticked_by_default = models.BooleanField(_("box unticked by default"), null=True)
    policy_version = models.CharField(_("privacy policy version"), max_length=50, blank=True)
    evidence_digest = models.CharField(_("evidence digest"), max_length=64, blank=True)
    # hash version 3: who acted, and whether the proof is second-hand (an import, a CRM: the
    # person acted elsewhere, at `collection_reference`); blank and false on older records
    actor = models.CharField(_("actor"), max_length=20, choices=Actor.choices, blank=True)
    second_hand = models.BooleanField(_("second-hand proof"), default=False)
    collection_reference = models.CharField(
        _("where consent was collected"), max_length=500, blank=True
    )
    resolves = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("resolves pending grant"),
    )
    # Position in the contact's own chain (1, 2, ...): `previous_hash` is the hash of the
    # contact's record at `contact_seq - 1` (hash_version 2). Legacy records (hash_version 1)
    # were chained in one global order by id; they keep that chain and got a position.
    contact_seq = models.BigIntegerField(_("position in the contact's chain"))
    hash_version = models.PositiveSmallIntegerField(
        _("hash version"), choices=HashVersion.choices, default=HashVersion.ACTOR_AND_ORIGIN
    )
    previous_hash = models.CharField(_("previous hash"), max_length=64)
    hash = models.CharField(_("hash"), max_length=64, unique=True)
    # The sealing key, written by the database and never by the ORM (not hashed): on
    # PostgreSQL the writing transaction's id (a BEFORE INSERT trigger), on SQLite the row id
    # (an AFTER INSERT trigger); 0 for the records of the legacy global chain (genesis seals).
    xact = models.BigIntegerField(_("sealing key"), db_default=0, editable=False)

    class Meta:
        verbose_name = _("consent record")
        verbose_name_plural = _("consent ledger")
        ordering = ["id"]
        indexes = [
            models.Index(fields=["xact", "id"], name="consent_record_xact_id"),
            # the dashboards' weekly counts (core.dashboard.ledger_weeks) read a week's records
            models.Index(fields=["recorded_at"], name="consent_record_recorded_at"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "contact_seq"], name="consent_record_contact_seq"
            )
        ]
        default_permissions = ("add", "view")

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.purpose.slug}/{self.channel} ({self.uuid})"


class ConsentEvidence(models.Model):
    """Personal evidence of a ledger record, stored apart so that erasure can remove it."""

    record = models.OneToOneField(
        ConsentRecord, on_delete=models.PROTECT, related_name="personal_evidence"
    )
    nonce = models.CharField(max_length=32, editable=False)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.TextField(_("user agent"), blank=True)
    document = models.FileField(_("signed document"), upload_to="evidence/%Y/%m/", blank=True)
    document_sha256 = models.CharField(_("document SHA-256"), max_length=64, blank=True)
    # who consented for a child (GDPR Art. 8): personal data of the guardian, erased with it
    guardian_name = models.CharField(_("guardian's name"), max_length=200, blank=True)
    guardian_contact = models.CharField(_("guardian's email or phone"), max_length=254, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("personal evidence")
        verbose_name_plural = _("personal evidence")

    def __str__(self) -> str:
        return f"#{self.record_id}"


class SealKind(models.TextChoices):
    GENESIS = "genesis", _("Genesis (legacy ledger)")
    RECORDS = "records", _("Records")
    PRUNE = "prune", _("Prune (a month removed)")
    # the records of people whose proof period ended (their tombstones: `LedgerTombstone`)
    STRIP = "strip", _("Strip (erased people's records removed)")


class LedgerSeal(AppendOnlyModel):
    """A signed, chained statement of the records written in one window and one month.

    Written every minute by `consent.ledger.ledger_seal`: it covers the records with
    `key_from <= xact < key_to` recorded in `period`, by count and running digest, and is
    signed with `LEDGER_SEAL_KEY` (HMAC-SHA256), a key the database never holds. A head kept
    outside the database (`number:seal_hash`) proves the tail was not cut off.
    """

    number = models.BigIntegerField(_("number"), unique=True)
    kind = models.CharField(_("kind"), max_length=10, choices=SealKind.choices)
    period = models.DateField(_("month"))
    key_from = models.BigIntegerField(_("from key"))
    key_to = models.BigIntegerField(_("to key"))
    record_count = models.BigIntegerField(_("records"))
    total_count = models.BigIntegerField(_("records sealed in all"))
    first_record_id = models.BigIntegerField(_("first record"), null=True, blank=True)
    last_record_id = models.BigIntegerField(_("last record"), null=True, blank=True)
    records_digest = models.CharField(_("records digest"), max_length=64)
    previous_seal_hash = models.CharField(_("previous seal hash"), max_length=64)
    seal_hash = models.CharField(_("seal hash"), max_length=64, unique=True)
    signature = models.CharField(_("signature"), max_length=64)
    key_id = models.CharField(_("key id"), max_length=8)
    sealed_at = models.DateTimeField(_("sealed at"))

    class Meta:
        verbose_name = _("ledger seal")
        verbose_name_plural = _("ledger seals")
        ordering = ["number"]
        default_permissions = ("view",)
        permissions = [("download_heads_ledgerseal", _("Can download the seal heads"))]

    def __str__(self) -> str:
        return f"#{self.number} {self.seal_hash[:12]}"


class LedgerVerification(models.Model):
    """The outcome of one full check of the ledger (`verify_ledger`, command or daily task):
    the DPO shows that the proof is checked, and when it last was (GDPR Art. 5(2))."""

    checked_at = models.DateTimeField(_("checked at"), default=timezone.now, db_index=True)
    records = models.PositiveBigIntegerField(_("records checked"), default=0)
    seals = models.PositiveIntegerField(_("seals checked"), default=0)
    problem_count = models.PositiveIntegerField(_("problems found"), default=0)
    first_problem = models.TextField(_("first problem"), blank=True)

    class Meta:
        verbose_name = _("ledger verification")
        verbose_name_plural = _("ledger verifications")
        ordering = ["-checked_at", "-id"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.checked_at:%Y-%m-%d %H:%M} {self.problem_count}"

    @property
    def intact(self) -> bool:
        return self.problem_count == 0


class LedgerTombstone(AppendOnlyModel):
    """What stays of a ledger record removed at the end of its proof period (GDPR Art.
    5(1)(e)): only what verification needs, nothing about the person.

    Written by `consent.ledger.ledger_strip` with the signed `strip` seal (`seal_number`)
    that counts and digests the removed records: `ledger_verify` puts `hash` in place of the
    record's in its window's seal and in its contact's chain, and a tombstone no strip seal
    covers shows as tampering.
    """

    record_id = models.BigIntegerField(_("record"), unique=True)
    contact = models.ForeignKey(
        Contact, on_delete=models.PROTECT, related_name="+", verbose_name=_("contact")
    )
    contact_seq = models.BigIntegerField(_("position in the contact's chain"))
    hash_version = models.PositiveSmallIntegerField(_("hash version"), choices=HashVersion.choices)
    xact = models.BigIntegerField(_("sealing key"))
    period = models.DateField(_("sealed month"))
    hash = models.CharField(_("hash"), max_length=64)
    seal_number = models.BigIntegerField(_("strip seal"))

    class Meta:
        verbose_name = _("ledger tombstone")
        verbose_name_plural = _("ledger tombstones")
        ordering = ["xact", "record_id"]
        indexes = [models.Index(fields=["xact", "record_id"], name="consent_tombstone_xact")]
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "contact_seq"], name="consent_tombstone_contact_seq"
            )
        ]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"#{self.record_id} (seal #{self.seal_number})"


class ConsentState(models.Model):
    """Current status per (contact, purpose, channel), written with each ledger record."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="consent_states")
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, verbose_name=_("purpose"))
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    status = models.CharField(_("status"), max_length=10, choices=ConsentStatus.choices)
    purpose_version = models.ForeignKey(
        PurposeVersion, on_delete=models.PROTECT, verbose_name=_("wording version")
    )
    record = models.ForeignKey(
        ConsentRecord, on_delete=models.PROTECT, related_name="+", verbose_name=_("record")
    )
    since = models.DateTimeField(_("since"))
    # the record's actor, kept beside it: the eligibility rule's test of a child's consent
    # (set by the guardian?) reads it from the state, without joining every contact's record
    actor = models.CharField(_("actor"), max_length=20, choices=Actor.choices, blank=True)

    class Meta:
        verbose_name = _("consent state")
        verbose_name_plural = _("consent states")
        ordering = ["purpose__slug", "channel"]
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "purpose", "channel"], name="one_state_per_purpose_channel"
            )
        ]
        indexes = [
            models.Index(fields=["status", "since"]),
            # the eligibility rule's join: the states of one purpose and channel, by status
            models.Index(fields=["purpose", "channel", "status"]),
            # the audience count: the granted states of one pair with what its join needs,
            # read from the index alone on PostgreSQL
            models.Index(
                fields=["purpose", "channel", "contact"],
                include=["purpose_version"],
                condition=models.Q(status=ConsentStatus.GRANTED),
                name="consent_state_granted_audience",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.purpose.slug}/{self.channel}: {self.status}"


class MessageSent(models.Model):
    """A marketing message sent to a contact: what the frequency rule counts (SPEC §4 caps).

    Senders (campaigns) write one per marketing message; double opt-in confirmations, privacy
    notices and breach notices are exempt from the caps and never recorded here.
    """

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="messages_sent")
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, verbose_name=_("purpose"))
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    sent_at = models.DateTimeField(_("sent at"), default=timezone.now)

    class Meta:
        verbose_name = _("marketing message sent")
        verbose_name_plural = _("marketing messages sent")
        ordering = ["-sent_at"]
        indexes = [models.Index(fields=["contact", "channel", "sent_at"])]

    def __str__(self) -> str:
        return f"{self.purpose.slug}/{self.channel} {self.sent_at:%Y-%m-%d %H:%M}"


class FrequencyCap(models.Model):
    """The global marketing caps of one channel (SPEC §3 campaigns, §4 caps): how many
    marketing messages (`MessageSent`) one person may receive on it in a day and in 7 days,
    0 meaning no cap. The eligibility rule's `frequency` reason reads them
    (`consent.selectors.frequency_caps_in_force`); a channel without a row has the defaults of
    `settings.MARKETING_CAPS` (env `MARKETING_CAP_DAY`, `MARKETING_CAP_WEEK`).

    Staff edit them in the admin (`consent.admin.FrequencyCapAdmin`, through
    `consent.services.frequency_cap_save`); the model's change permission governs setting,
    changing and removing a channel's caps, and `manage.py setup_roles` gives it to the
    Marketers (the DPO views them). Each change is written to the audit log.
    """

    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices, unique=True)
    per_day = models.PositiveSmallIntegerField(
        _("per day"), help_text=_("Marketing messages per person in a day (0: no cap).")
    )
    per_week = models.PositiveSmallIntegerField(
        _("per 7 days"), help_text=_("Marketing messages per person in 7 days (0: no cap).")
    )
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now, editable=False)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        verbose_name=_("updated by"),
    )

    class Meta:
        verbose_name = _("frequency cap")
        verbose_name_plural = _("frequency caps")
        ordering = ["channel"]

    def __str__(self) -> str:
        return str(self.get_channel_display())

    def clean(self) -> None:
        """Refuse a weekly cap below the daily one (it would make the daily cap meaningless
        and is most likely a typo), unless either is 0 (no cap)."""
        if self.per_day and self.per_week and self.per_week < self.per_day:
            raise ValidationError(
                {
                    "per_week": _(
                        "The cap per 7 days cannot be lower than the cap per day "
                        "(%(per_day)d). Use 0 for no cap."
                    )
                    % {"per_day": self.per_day}
                }
            )


class ConsentRateSnapshot(models.Model):
    """How many people held a granted consent per (purpose, channel) on a day, and how many
    people were on file then: the consent rate's history for the DPO's dashboard.

    Written once a day by the beat job `consent.tasks.snapshot_consent_rates` (one GROUP BY
    over `ConsentState`, `consent.rates.consent_rates_snapshot`); a second run the same day
    overwrites that day's rows. Counts only, nothing about a person.
    """

    day = models.DateField(_("day"))
    purpose = models.ForeignKey(
        Purpose, on_delete=models.CASCADE, related_name="+", verbose_name=_("purpose")
    )
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    granted = models.PositiveIntegerField(_("people with a granted consent"))
    contacts = models.PositiveIntegerField(_("people on file"))
    taken_at = models.DateTimeField(_("taken at"), default=timezone.now)

    class Meta:
        verbose_name = _("consent rate snapshot")
        verbose_name_plural = _("consent rate snapshots")
        ordering = ["day", "purpose", "channel"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "purpose", "channel"], name="one_rate_snapshot_per_day_pair"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.purpose_id}/{self.channel}: {self.granted}/{self.contacts}"
