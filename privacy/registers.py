"""The register of processing activities (GDPR Art. 30) and the processor register (Art. 28):
kept in step with what the product does, and read live where the product knows the answer.

`processing_register_sync` gives every purpose its entry, plus the product's own activities
(rights requests, proof archive, audit log, CRM sync); `processor_register_sync` lists every
CRM connection and the email and SMS providers of the settings. What belongs to a purpose (its
name, legal basis, channels, retention) is never copied: the `activity_*` functions read it
from the purpose each time, so that the register cannot drift from it. The product's default
texts are written in French and in English here (like a purpose's name) and shown in the
reader's language while the DPO has not written their own.
"""

import urllib.parse
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils.formats import date_format
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _

from consent.models import Channel, Purpose
from crmsync.models import Connection, ConnectionKind
from privacy.models import (
    BUILT_IN_ACTIVITY_KINDS,
    EEA_COUNTRIES,
    PROCESSOR_CHECKLIST,
    ActivityKind,
    LegalBasis,
    ProcessingActivity,
    Processor,
    ProcessorService,
    TransferTool,
)

Texts = dict[str, str]

BUILT_IN_ACTIVITIES: dict[str, dict[str, object]] = {
    ActivityKind.RIGHTS_REQUESTS: {
        "name": {
            "fr": "Gestion des demandes d'exercice des droits",
            "en": "Handling data-subject requests",
        },
        "legal_basis": LegalBasis.LEGAL_OBLIGATION,
        "description": {
            "fr": "Recevoir, vérifier et traiter les demandes d'accès, de portabilité, de "
            "rectification, d'effacement, de limitation et d'opposition (RGPD art. 12 à 21), "
            "et suivre leurs délais.",
            "en": "Receiving, verifying and carrying out requests for access, portability, "
            "rectification, erasure, restriction and objection (GDPR Art. 12-21), and "
            "following their deadlines.",
        },
        "data_subjects": {
            "fr": "Personnes exerçant leurs droits (prospects, clients, anciens contacts).",
            "en": "People exercising their rights (prospects, customers, former contacts).",
        },
        "data_categories": {
            "fr": "Identité et coordonnées du demandeur, objet de la demande, échanges, "
            "décision et fichiers d'export.",
            "en": "The requester's identity and contact details, the request, the exchanges, "
            "the decision and the export files.",
        },
    },
    ActivityKind.PROOF_ARCHIVE: {
        "name": {
            "fr": "Archive des preuves de consentement",
            "en": "Archive of consent proofs",
        },
        "legal_basis": LegalBasis.LEGAL_OBLIGATION,
        "description": {
            "fr": "Conserver, chiffrée, la preuve des consentements d'une personne effacée "
            "pour répondre à une réclamation (RGPD art. 7(1) et 17(3)(e)).",
            "en": "Keeping, encrypted, the proof of an erased person's consents to answer a "
            "claim (GDPR Art. 7(1) and 17(3)(e)).",
        },
        "data_subjects": {
            "fr": "Personnes dont les données ont été effacées.",
            "en": "People whose data was erased.",
        },
        "data_categories": {
            "fr": "Adresse email, téléphone, nom, preuves de consentement (adresse IP, "
            "navigateur, documents), chiffrés.",
            "en": "Email address, phone, name, consent evidence (IP address, user agent, "
            "documents), encrypted.",
        },
    },
    ActivityKind.AUDIT_LOG: {
        "name": {
            "fr": "Journal d'audit des accès du personnel",
            "en": "Audit log of staff access",
        },
        "legal_basis": LegalBasis.LEGAL_OBLIGATION,
        "description": {
            "fr": "Tracer les consultations, recherches, exports et effacements de données "
            "personnelles par le personnel (RGPD art. 5(2) et 32).",
            "en": "Recording the staff's views, searches, exports and erasures of personal "
            "data (GDPR Art. 5(2) and 32).",
        },
        "data_subjects": {
            "fr": "Membres du personnel ; personnes dont les données ont été consultées.",
            "en": "Staff members; people whose data was looked at.",
        },
        "data_categories": {
            "fr": "Identifiant et adresse IP du membre du personnel, action, date, "
            "pseudonyme de la personne concernée.",
            "en": "The staff member's username and IP address, the action, its time, the "
            "pseudonym of the person concerned.",
        },
    },
    ActivityKind.CRM_SYNC: {
        "name": {
            "fr": "Synchronisation avec les CRM",
            "en": "Synchronisation with the CRMs",
        },
        "legal_basis": LegalBasis.LEGITIMATE_INTERESTS,
        "description": {
            "fr": "Tenir les CRM connectés à jour des contacts, de leurs consentements et de "
            "leurs demandes d'effacement, et relire leurs changements.",
            "en": "Keeping the connected CRMs up to date with the contacts, their consents and "
            "their erasures, and reading back their changes.",
        },
        "data_subjects": {
            "fr": "Prospects et clients.",
            "en": "Prospects and customers.",
        },
        "data_categories": {
            "fr": "Identité, coordonnées, consentements par finalité et canal, centres "
            "d'intérêt, étape du cycle de vie.",
            "en": "Identity, contact details, consents per purpose and channel, interests, "
            "lifecycle stage.",
        },
    },
}

MARKETING_TEXTS: dict[str, Texts] = {
    "data_subjects": {
        "fr": "Prospects et clients qui ont consenti, ou visés par l'intérêt légitime.",
        "en": "Prospects and customers who consented, or reached on legitimate interests.",
    },
    "data_categories": {
        "fr": "Identité, coordonnées des canaux utilisés (%(channels)s), consentements et "
        "leur preuve, préférences et centres d'intérêt, retours des envois (ouvertures, "
        "erreurs, plaintes).",
        "en": "Identity, contact details for the channels used (%(channels)s), consents and "
        "their proof, preferences and interests, feedback on messages (opens, bounces, "
        "complaints).",
    },
}

OTHER_TEXTS: dict[str, Texts] = {
    "data_subjects": {"fr": "", "en": ""},
    "data_categories": {"fr": "", "en": ""},
    "description": {"fr": "", "en": ""},
}

STAFF_RECIPIENTS: Texts = {
    "fr": "Personnel habilité du responsable de traitement (marketing, DPO).",
    "en": "Authorised staff of the controller (marketing, DPO).",
}

# What the product itself does to secure the data (GDPR Art. 32), true of every activity.
SECURITY_MEASURES: Texts = {
    "fr": "Liste d'opposition tenue par clés HMAC (aucune adresse en clair) ; registre des "
    "consentements en ajout seul, chaîné et scellé ; authentification à deux facteurs (TOTP) "
    "et limitation des tentatives de connexion pour le personnel ; rôles au moindre "
    "privilège ; identifiants des CRM et archive des preuves chiffrés ; journal d'audit des "
    "consultations et exports ; politique de sécurité du contenu (CSP), sans ressource "
    "tierce.",
    "en": "Suppression list kept as HMAC keys (no address in clear); append-only, chained and "
    "sealed consent ledger; two-factor authentication (TOTP) and login throttling for staff; "
    "least-privilege roles; CRM credentials and the proof archive encrypted; audit log of "
    "views and exports; content security policy (CSP), no third-party resources.",
}

# Which processors each kind of activity uses: their names are the activity's recipients and
# their transfers its transfers.
ACTIVITY_SERVICES: dict[str, tuple[str, ...]] = {
    ActivityKind.MARKETING: tuple(ProcessorService.values),
    ActivityKind.RIGHTS_REQUESTS: (ProcessorService.HOSTING, ProcessorService.EMAIL),
    ActivityKind.PROOF_ARCHIVE: (ProcessorService.HOSTING,),
    ActivityKind.AUDIT_LOG: (ProcessorService.HOSTING,),
    ActivityKind.CRM_SYNC: (ProcessorService.HOSTING, ProcessorService.CRM),
    ActivityKind.OTHER: tuple(ProcessorService.values),
}


def _in_language(texts: Texts) -> str:
    language = (get_language() or "fr")[:2]
    return texts.get(language) or texts["fr"]


def _default(activity: ProcessingActivity, field: str) -> str:
    built_in = BUILT_IN_ACTIVITIES.get(activity.kind)
    if built_in is not None:
        texts = built_in.get(field)
        return _in_language(texts) if isinstance(texts, dict) else ""
    if activity.kind == ActivityKind.MARKETING and field in MARKETING_TEXTS:
        channels = activity.purpose.channels if activity.purpose else []
        labels = ", ".join(str(Channel(c).label) for c in channels if c in Channel.values)
        return _in_language(MARKETING_TEXTS[field]) % {"channels": labels or "-"}
    return _in_language(OTHER_TEXTS.get(field, {"fr": ""}))


def activity_description(activity: ProcessingActivity) -> str:
    """The purposes of the processing (Art. 30(1)(b)): the DPO's text, else the purpose's
    description (live), else the product's default."""
    if activity.description.strip():
        return activity.description
    if activity.purpose is not None and activity.purpose.description.strip():
        return activity.purpose.description
    return _default(activity, "description")


def activity_legal_basis(activity: ProcessingActivity) -> str:
    """The legal basis (Art. 6): the purpose's own when linked, with the interest pursued."""
    purpose = activity.purpose
    if purpose is not None:
        basis = str(purpose.get_legal_basis_display())
        interest = purpose.legitimate_interest
        if interest:
            return _("%(basis)s: %(interest)s") % {"basis": basis, "interest": interest}
        return basis
    return str(activity.get_legal_basis_display()) if activity.legal_basis else ""


def activity_channels(activity: ProcessingActivity) -> str:
    """The purpose's channels, read live ("" for an activity without a purpose)."""
    channels = activity.purpose.channels if activity.purpose else []
    return ", ".join(str(Channel(c).label) for c in channels if c in Channel.values)


def activity_data_subjects(activity: ProcessingActivity) -> str:
    """The categories of data subjects (Art. 30(1)(c))."""
    return activity.data_subjects.strip() or _default(activity, "data_subjects")


def activity_data_categories(activity: ProcessingActivity) -> str:
    """The categories of personal data (Art. 30(1)(c))."""
    return activity.data_categories.strip() or _default(activity, "data_categories")


def _processors_of(activity: ProcessingActivity) -> list[Processor]:
    """The processors in use for this kind of activity: those `activities_with_processors`
    read for a whole register at once, else one query."""
    known: list[Processor] | None = getattr(activity, "processors_in_use", None)
    if known is not None:
        return known
    services = ACTIVITY_SERVICES.get(activity.kind, ())
    return list(Processor.objects.filter(is_active=True, service__in=services))


def activities_with_processors(
    activities: Iterable[ProcessingActivity],
) -> list[ProcessingActivity]:
    """The activities, each with the processors in use for its kind (`processors_in_use`),
    read in one query for all: an exported or printed register names them on every line."""
    activities = list(activities)
    in_use = list(Processor.objects.filter(is_active=True))
    for activity in activities:
        services = ACTIVITY_SERVICES.get(activity.kind, ())
        activity.processors_in_use = [p for p in in_use if p.service in services]  # type: ignore[attr-defined]
    return activities


def activity_recipients(activity: ProcessingActivity) -> str:
    """The recipients (Art. 30(1)(d)): the DPO's text (else the staff), then the processor
    register's processors for this kind of activity, read live."""
    lines = [activity.recipients.strip() or _in_language(STAFF_RECIPIENTS)]
    for processor in _processors_of(activity):
        lines.append(
            _("%(name)s (processor, %(service)s)")
            % {"name": processor.name, "service": processor.get_service_display()}
        )
    return "\n".join(lines)


def transfer_safeguard(processor: Processor) -> str:
    """How a processor's transfer outside the EU/EEA is framed, with its date, in words."""
    tool = processor.transfer_tool
    if tool == TransferTool.DPF and processor.dpf_checked_on:
        return _("EU-US Data Privacy Framework, certification checked on %(date)s") % {
            "date": date_format(processor.dpf_checked_on)
        }
    if tool == TransferTool.SCC and processor.transfer_assessment_on:
        return _("SCCs 2021/914, transfer impact assessment of %(date)s") % {
            "date": date_format(processor.transfer_assessment_on)
        }
    if tool == TransferTool.NONE:
        return _("no transfer tool yet (to complete)")
    return str(processor.get_transfer_tool_display())


def activity_transfers(activity: ProcessingActivity) -> str:
    """Transfers outside the EU/EEA and their safeguards (Art. 30(1)(e)): the processor
    register's, read live, then the DPO's notes."""
    processors = _processors_of(activity)
    lines = [
        _("%(name)s (%(country)s): %(safeguard)s")
        % {
            "name": processor.name,
            "country": processor.country,
            "safeguard": transfer_safeguard(processor),
        }
        for processor in processors
        if processor.outside_eu
    ]
    lines += [
        _("%(name)s: country unknown (to complete)") % {"name": processor.name}
        for processor in processors
        if processor.outside_eu is None
    ]
    if not lines:
        lines = [_("None known: every processor is in the EU/EEA.")]
    if activity.transfers.strip():
        lines.append(activity.transfers.strip())
    return "\n".join(lines)


def _days(days: int) -> str:
    return ngettext("%(count)d day", "%(count)d days", days) % {"count": days}


def _purpose_retention(purpose: Purpose) -> str:
    if purpose.retention_days:
        period = _days(purpose.retention_days)
    else:
        period = _days(settings.RETENTION_DEFAULT.days)
    return _(
        "%(period)s after the last contact, then a re-permission request; without an answer "
        "within %(grace)s, the contact is anonymised."
    ) % {"period": period, "grace": _days(settings.RETENTION_GRACE.days)}


def activity_retention(activity: ProcessingActivity) -> str:
    """The time limits for erasure (Art. 30(1)(f)): the periods the product applies, read
    from the purpose and the settings, then the DPO's notes."""
    lines: list[str] = []
    if activity.purpose is not None:
        lines.append(_purpose_retention(activity.purpose))
    elif activity.kind == ActivityKind.PROOF_ARCHIVE:
        years = settings.PROOF_RETENTION_YEARS
        lines.append(
            ngettext(
                "%(count)d year after the person's erasure, then deleted with their ledger "
                "records.",
                "%(count)d years after the person's erasure, then deleted with their ledger "
                "records.",
                years,
            )
            % {"count": years}
        )
    elif activity.kind == ActivityKind.RIGHTS_REQUESTS:
        lines.append(
            _("Access and portability exports: %(period)s, then deleted.")
            % {"period": _days(settings.PRIVACY_EXPORT_TTL.days)}
        )
    if activity.retention_note.strip():
        lines.append(activity.retention_note.strip())
    return "\n".join(lines)


def activity_security_measures(activity: ProcessingActivity) -> str:
    """The security measures (Art. 30(1)(g), 32): the product's own, then the DPO's."""
    lines = [_in_language(SECURITY_MEASURES)]
    if activity.security_measures.strip():
        lines.append(activity.security_measures.strip())
    return "\n".join(lines)


@transaction.atomic
def processing_register_sync() -> int:
    """Give every purpose and each of the product's own activities its entry in the register
    (GDPR Art. 30(1)), and mark a marketing entry active as its purpose is. Answers how many
    entries were created; running it twice creates nothing more."""
    created = 0
    for kind in BUILT_IN_ACTIVITY_KINDS:
        defaults = BUILT_IN_ACTIVITIES[kind]
        names = defaults["name"]
        assert isinstance(names, dict)
        _activity, made = ProcessingActivity.objects.get_or_create(
            kind=kind,
            defaults={
                "name_fr": names["fr"],
                "name_en": names["en"],
                "legal_basis": defaults["legal_basis"],
            },
        )
        created += made
    for purpose in Purpose.objects.filter(processing_activity__isnull=True):
        _activity, made = ProcessingActivity.objects.get_or_create(
            purpose=purpose,
            defaults={"kind": ActivityKind.MARKETING, "is_active": purpose.is_active},
        )
        created += made
    marketing = ProcessingActivity.objects.filter(kind=ActivityKind.MARKETING)
    marketing.filter(Q(purpose__isnull=True) | Q(purpose__is_active=False), is_active=True).update(
        is_active=False
    )
    marketing.filter(purpose__is_active=True, is_active=False).update(is_active=True)
    return created


# What a CRM's kind tells of its processor: the company and where it is established.
CRM_PROVIDERS: dict[str, tuple[str, str]] = {
    ConnectionKind.HUBSPOT: ("HubSpot", "US"),
    ConnectionKind.SALESFORCE: ("Salesforce", "US"),
}

# django-anymail's backend module -> the provider and where it is established.
EMAIL_PROVIDERS: dict[str, tuple[str, str]] = {
    "amazon_ses": ("Amazon SES", "US"),
    "brevo": ("Brevo", "FR"),
    "sendinblue": ("Brevo", "FR"),
    "mailgun": ("Mailgun", "US"),
    "mailjet": ("Mailjet", "FR"),
    "mandrill": ("Mailchimp Transactional", "US"),
    "postmark": ("Postmark", "US"),
    "resend": ("Resend", "US"),
    "sendgrid": ("SendGrid", "US"),
    "sparkpost": ("SparkPost", "US"),
}

SMS_PROVIDERS: dict[str, tuple[str, str]] = {"twilio": ("Twilio", "US")}

# Local SMS backends: nothing leaves the installation, no processor.
LOCAL_SMS_SCHEMES = frozenset({"console", "file"})


def _found_processors() -> dict[str, dict[str, object]]:
    """What the installation sends personal data to, by system key: the CRM connections, the
    email backend and the SMS provider of the settings."""
    found: dict[str, dict[str, object]] = {}
    for connection in Connection.objects.all():
        host = urllib.parse.urlsplit(connection.base_url).hostname or connection.base_url
        name, country = CRM_PROVIDERS.get(connection.kind, (f"Webhook ({host})", ""))
        found[f"crm:{connection.pk}"] = {
            "name": name,
            "service": ProcessorService.CRM,
            "country": country,
            "connection": connection,
        }
    backend = settings.EMAIL_BACKEND
    if backend.startswith("anymail.backends."):
        module = backend.split(".")[2]
        name, country = EMAIL_PROVIDERS.get(module, (module.replace("_", " ").title(), ""))
        found[f"esp:{module}"] = {
            "name": name,
            "service": ProcessorService.EMAIL,
            "country": country,
        }
    else:
        host = getattr(settings, "EMAIL_HOST", "") or "localhost"
        found["esp:smtp"] = {
            "name": f"SMTP ({host})",
            "service": ProcessorService.EMAIL,
            "country": "",
        }
    scheme = urllib.parse.urlsplit(settings.SMS_URL).scheme.lower()
    if scheme and scheme not in LOCAL_SMS_SCHEMES:
        name, country = SMS_PROVIDERS.get(scheme, (scheme.title(), ""))
        found[f"sms:{scheme}"] = {
            "name": name,
            "service": ProcessorService.SMS,
            "country": country,
        }
    return found


@transaction.atomic
def processor_register_sync() -> int:
    """List in the processor register every CRM connection and the email and SMS providers
    of the settings (GDPR Art. 28, 30(1)(d)); what is no longer used is marked so. The DPO's
    entries are left alone. Answers how many entries were created."""
    found = _found_processors()
    created = 0
    for key, values in found.items():
        processor, made = Processor.objects.get_or_create(system_key=key, defaults=values)
        created += made
        if not made and not processor.is_active:
            processor.is_active = True
            processor.save(update_fields=["is_active", "updated_at"])
    Processor.objects.filter(system_key__isnull=False, is_active=True).exclude(
        system_key__in=list(found)
    ).update(is_active=False)
    return created


def registers_sync() -> int:
    """Bring both registers in step with the purposes, the CRMs and the settings (beat job)."""
    return processing_register_sync() + processor_register_sync()


# ---- what a processor entry still lacks ("to complete")


def processors_to_complete() -> Q:
    """The entries that lack something the register needs: the queryset form of
    `processor_missing` (the two agree, tests/privacy/test_processor_register.py)."""
    outside_eu = ~Q(country="") & ~Q(country__in=EEA_COUNTRIES)
    lacking = (
        Q(country="")
        | Q(dpa_signed_on__isnull=True)
        | Q(end_of_contract="")
        | Q(risk="")
        | (outside_eu & Q(transfer_tool=TransferTool.NONE))
    )
    for field in PROCESSOR_CHECKLIST:
        lacking |= Q(**{field: False})
    return lacking


def processor_missing(processor: Processor) -> list[str]:
    """What the entry lacks, in words (the DPO's to-do for it)."""
    missing = []
    labels = {field.name: str(field.verbose_name) for field in Processor._meta.fields}
    for field in ("country", "dpa_signed_on", "end_of_contract", "risk"):
        if getattr(processor, field) in ("", None):
            missing.append(labels[field])
    if processor.outside_eu and processor.transfer_tool == TransferTool.NONE:
        missing.append(labels["transfer_tool"])
    unticked = [field for field in PROCESSOR_CHECKLIST if not getattr(processor, field)]
    if unticked:
        missing.append(
            ngettext(
                "%(count)d clause of Art. 28(3)",
                "%(count)d clauses of Art. 28(3)",
                len(unticked),
            )
            % {"count": len(unticked)}
        )
    return missing


def checklist_ticks(processor: Processor) -> list[tuple[str, bool]]:
    """The Art. 28(3)(a)-(h) clauses, each with whether the contract holds it."""
    fields = {field.name: field for field in Processor._meta.fields}
    return [
        (str(fields[name].verbose_name), bool(getattr(processor, name)))
        for name in PROCESSOR_CHECKLIST
    ]
