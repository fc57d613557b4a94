"""Factories for the domain models; consents are made through the real service."""

from datetime import datetime, timedelta
from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from freezegun import freeze_time

from campaigns.models import Campaign
from campaigns.services import campaign_create
from consent.models import LegalBasis, PrivacyNotice, Purpose, PurposeVersion, SourceKind
from consent.services import ConsentWrite, Evidence, consent_record, privacy_notice_save
from contacts.models import Contact, Interest
from core.models import ApiClient, AuditAction, AuditEvent, Scope
from crmsync.models import OutboxEvent
from privacy.breaches import breach_record
from privacy.models import PrivacyRequest, PrivacyRequestType
from privacy.services import privacy_request_file


class InterestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Interest
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"topic-{n}")
    name_fr = factory.LazyAttribute(lambda o: f"Sujet {o.slug}")
    name_en = factory.LazyAttribute(lambda o: f"Topic {o.slug}")


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    email = factory.Sequence(lambda n: f"person{n}@example.fr")
    first_name = "Camille"
    last_name = factory.Sequence(lambda n: f"Martin{n}")
    language = "fr"


class PurposeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Purpose
        skip_postgeneration_save = True

    slug = factory.Sequence(lambda n: f"purpose-{n}")
    name_fr = factory.LazyAttribute(lambda o: f"Finalité {o.slug}")
    name_en = factory.LazyAttribute(lambda o: f"Purpose {o.slug}")
    description_fr = "Description"
    description_en = "Description"
    legal_basis = LegalBasis.CONSENT
    legitimate_interest_fr = factory.LazyAttribute(
        lambda o: (
            "Fidéliser nos clients" if o.legal_basis == LegalBasis.LEGITIMATE_INTERESTS else ""
        )
    )
    legitimate_interest_en = factory.LazyAttribute(
        lambda o: (
            "Keeping our customers" if o.legal_basis == LegalBasis.LEGITIMATE_INTERESTS else ""
        )
    )
    channels = factory.LazyFunction(lambda: ["email", "sms"])
    double_opt_in = False

    @factory.post_generation
    def wording(obj: Purpose, create: bool, extracted: str | None, **kwargs: object) -> None:
        if create:
            PurposeVersion.objects.create(
                purpose=obj,
                number=1,
                wording_fr=extracted or f"J'accepte de recevoir {obj.slug}.",
                wording_en=extracted or f"I agree to receive {obj.slug}.",
            )


class ApiClientFactory(factory.django.DjangoModelFactory):
    """Build with `ApiClientFactory(scopes=[...])`; the plain key is on `client.plain_key`."""

    class Meta:
        model = ApiClient

    name = factory.Sequence(lambda n: f"client-{n}")
    scopes = factory.LazyFunction(lambda: [scope.value for scope in Scope])

    @classmethod
    def _create(cls, model_class: type, *args: object, **kwargs: object) -> ApiClient:
        client = model_class(*args, **kwargs)
        client.plain_key = client.set_new_key()
        client.save()
        return client


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@staff.example.fr")
    is_staff = True
    # Hashed before the insert: a post-generation set_password was never saved.
    password = factory.django.Password("correct horse battery")


class TOTPDeviceFactory(factory.django.DjangoModelFactory):
    """A confirmed authenticator app of a staff user; its key gives the codes (`totp_code`)."""

    class Meta:
        model = TOTPDevice

    user = factory.SubFactory(UserFactory)
    name = "phone"
    confirmed = True


def totp_code(device: TOTPDevice, at: float | None = None) -> str:
    """The code the device's authenticator app shows at `at` (default: now)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    if at is not None:
        totp.time = at
    return f"{totp.token():0{device.digits}d}"


# Where a list's consent was collected, as imports and CRMs must name it.
LIST_COLLECTION_REFERENCE = "https://example.fr/salon-2026/inscription"


def grant(contact: Contact, purpose: Purpose, channel: str = "email", **kwargs: object):
    """Record a grant through the one consent-write path, with complete evidence (from a list,
    import or CRM: with where and when the person consented, now unless given)."""
    second_hand = kwargs.get("source_kind") in ("import", "crm")
    evidence = kwargs.pop(
        "evidence",
        Evidence(
            wording=purpose.current_version.wording_fr,
            unticked_by_default=True,
            policy_version="2026-01",
            ip="203.0.113.7",
            user_agent="Mozilla/5.0 (test)",
            collection_reference=LIST_COLLECTION_REFERENCE if second_hand else "",
        ),
    )
    if second_hand and kwargs.get("given_at") is None:
        kwargs["given_at"] = timezone.now()
    return consent_record(
        write=ConsentWrite(
            contact=contact,
            purpose=purpose,
            channel=channel,
            action=kwargs.pop("action", "grant"),
            source_kind=kwargs.pop("source_kind", "web_form"),
            source_reference=kwargs.pop("source_reference", "https://example.fr/newsletter"),
            evidence=evidence or Evidence(),  # None: no evidence at all, as for a withdrawal
            **kwargs,
        )
    )


class PrivacyRequestFactory(factory.Factory):
    """A privacy request filed through the one filing path, `privacy_request_file`.

    By default an unverified access request filed through the API about a new contact.
    `verified=True` files it verified (its carry-out queued after commit, as for any);
    `at` files it at that moment, the clock frozen so that its receipt, deadline and history
    all date from then (`at="2026-02-10T10:00:00+01:00"`).
    """

    class Meta:
        model = PrivacyRequest

    contact = factory.SubFactory(ContactFactory)
    type = PrivacyRequestType.ACCESS
    source_kind = SourceKind.API
    verified = False

    @classmethod
    def _create(
        cls, model_class: type, *args: object, at: str | datetime | None = None, **kwargs: object
    ) -> PrivacyRequest:
        if at is None:
            return privacy_request_file(**kwargs)
        with freeze_time(at):
            return privacy_request_file(**kwargs)


class EvidenceFactory(factory.Factory):
    """The proof a list or a form sends with a grant: the wording shown (the purpose's current
    French wording with `purpose=`), the box unticked, and no personal evidence."""

    class Meta:
        model = Evidence

    class Params:
        purpose = None

    wording = factory.LazyAttribute(
        lambda o: o.purpose.current_version.wording_fr if o.purpose else "J'accepte."
    )
    unticked_by_default = True
    collection_reference = LIST_COLLECTION_REFERENCE


class OutboxEventFactory(factory.django.DjangoModelFactory):
    """A `contact.updated` event queued for the CRMs about `contact=`, carrying its email."""

    class Meta:
        model = OutboxEvent

    class Params:
        contact = factory.SubFactory(ContactFactory)

    topic = "contact.updated"
    contact_public_id = factory.LazyAttribute(lambda o: o.contact.public_id)
    payload = factory.LazyAttribute(lambda o: {"email": o.contact.email})


class AuditEventFactory(factory.django.DjangoModelFactory):
    """A staff user's view of `contact=`, as `audit_record` logs it (the contact and its
    pseudonym); pass `contact=None, contact_public_id=...` for an entry that kept only the
    pseudonym."""

    class Meta:
        model = AuditEvent

    action = AuditAction.VIEW_CONTACT
    contact = factory.SubFactory(ContactFactory)
    contact_public_id = factory.LazyAttribute(lambda o: o.contact.public_id if o.contact else None)
    details = factory.LazyFunction(dict)


class PrivacyNoticeFactory(factory.Factory):
    """A privacy notice version stored through `privacy_notice_save` (by the DPO), published a
    day ago unless `published_at=` says otherwise."""

    class Meta:
        model = PrivacyNotice

    version = factory.Sequence(lambda n: f"2026-{n + 1:02}")
    text_fr = "Nous traitons vos données pour vous écrire."
    text_en = "We process your data to write to you."
    url = factory.LazyAttribute(lambda o: f"https://www.example.fr/confidentialite/{o.version}")
    published_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))

    @classmethod
    def _create(cls, model_class: type, *args: object, **kwargs: object) -> PrivacyNotice:
        return privacy_notice_save(notice=PrivacyNotice(**kwargs), by="dpo-persona")


def email_step(**content: object) -> dict[str, object]:
    """A campaign step's fields for an email (French content, English falls back to it)."""
    return {
        "channel": "email",
        "subject_fr": "Nos nouveautés",
        "body_text_fr": "Bonjour {first_name}",
        **content,
    }


def campaign_make(purpose: Purpose | None = None, **kwargs: Any) -> Campaign:
    """A draft campaign made through `campaign_create` (one email step unless `steps=`)."""
    return campaign_create(
        name=kwargs.pop("name", "Lettre de novembre"),
        purpose=purpose or PurposeFactory(),
        steps=kwargs.pop("steps", [email_step()]),
        **kwargs,
    )


class ProcessorFactory(factory.django.DjangoModelFactory):
    """A processor in the EU whose contract holds every clause: nothing left to complete."""

    class Meta:
        model = "privacy.Processor"

    name = factory.Sequence(lambda n: f"Processor {n}")
    service = "hosting"
    country = "FR"
    dpa_signed_on = factory.LazyFunction(lambda: timezone.localdate() - timedelta(days=90))
    end_of_contract = "Deletion within 30 days, with a certificate."
    risk = "low"
    clause_instructions = True
    clause_confidentiality = True
    clause_security = True
    clause_sub_processors = True
    clause_rights_assistance = True
    clause_compliance_assistance = True
    clause_deletion = True
    clause_audits = True


class BreachFactory(factory.django.DjangoModelFactory):
    """A breach recorded through `breach_record`, aware an hour ago, the decision pending."""

    class Meta:
        model = "privacy.Breach"

    reference = factory.Sequence(lambda n: f"Fuite du fichier clients n°{n}")
    aware_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))
    nature = "Un export du fichier clients a été envoyé par erreur à un prestataire."
    persons_categories = "Clients et prospects"
    persons_count = 1200
    records_categories = "Nom, adresse email, historique d'achats"
    records_count = 1200
    consequences = "Hameçonnage ciblé possible."
    measures = "Le prestataire a supprimé le fichier et l'a attesté par écrit."
    risk = "risk"
    risk_reasoning = "Adresses email et historique d'achats: hameçonnage crédible."

    @classmethod
    def _create(cls, model_class: type, *args: object, **kwargs: Any) -> Any:
        return breach_record(by=kwargs.pop("by", "dpo-persona"), **kwargs)
