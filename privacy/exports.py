"""Everything held on a person, as JSON and as a ZIP of CSV files (GDPR Art. 15, 20), with
what Art. 15(1)(a)-(h) says the person must be told besides (EDPB Guidelines 01/2022):
purposes and legal bases, recipients, retention, sources, rights and the right to complain."""

import io
import json
import zipfile
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Count, Max, Min, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from consent.models import (
    Channel,
    ConsentEvidence,
    ConsentRecord,
    ConsentState,
    LegalBasis,
    MessageSent,
    Purpose,
)
from consent.selectors import contact_consent_history, controller_identity
from contacts.models import SUPPRESSION_DIGEST_FIELDS, Contact, NoteStatus
from core.csvfiles import csv_text
from core.models import ApiClient, Scope
from core.recipients import data_recipients
from crmsync.models import OutboxEvent
from privacy.models import PrivacyRequest, PrivacyRequestType

# Every column of the contact row: what we hold is what the person gets (the database key
# stays out; the public id is given as "id").
# Every column of the contact but its keys and the suppression digests (HMACs of the email and
# phone, which say nothing more to the person and are ours to keep secret).
IDENTITY_FIELDS = tuple(
    field.name
    for field in Contact._meta.concrete_fields
    if field.name not in ("id", "public_id", *SUPPRESSION_DIGEST_FIELDS)
)


def personal_data(contact: Contact) -> dict[str, Any]:
    """Identity, interests, consent state and full history with evidence, timeline, notes
    (but those the DPO discarded, whose text is gone), requests."""
    # the history holds the records of contacts merged into this one too, with their evidence
    history = contact_consent_history(contact)
    evidence = {
        item.record_id: item
        for item in ConsentEvidence.objects.filter(record__in=history.values("pk"))
    }
    return {
        "exported_at": timezone.now(),
        "contact": {
            "id": str(contact.public_id),
            **{name: _exported(getattr(contact, name)) for name in IDENTITY_FIELDS},
        },
        "interests": [
            {"slug": interest.slug, "name": interest.name}
            for interest in contact.interests.order_by("slug")
        ],
        "consents": [
            {
                "purpose": state.purpose.slug,
                "channel": state.channel,
                "status": state.status,
                "since": state.since,
                "version": state.purpose_version.number,
                "record": str(state.record.uuid),
            }
            for state in ConsentState.objects.filter(contact=contact)
            .select_related("purpose", "purpose_version", "record")
            .order_by("purpose__slug", "channel")
        ],
        "consent_history": [_history_row(record, evidence.get(record.id)) for record in history],
        "timeline": [
            {"at": event.occurred_at, "kind": event.kind, "summary": event.summary}
            for event in contact.timeline.order_by("occurred_at", "id")
        ],
        "notes": [
            {"written_at": note.created_at, "status": note.status, "text": note.body}
            for note in contact.notes.exclude(status=NoteStatus.DISCARDED).order_by(
                "created_at", "id"
            )
        ],
        "privacy_requests": [
            {
                "id": str(request.id),
                "type": request.type,
                "status": request.status,
                "received_at": request.received_at,
                "due_at": request.due_at,
            }
            for request in PrivacyRequest.objects.filter(contact=contact).order_by("received_at")
        ],
        **processing_information(contact, history),
    }


def processing_information(contact: Contact, history: Iterable[ConsentRecord]) -> dict[str, Any]:
    """What the person is told besides their data (GDPR Art. 15(1)(a)-(h), 13-14), in their
    language: the controller, purposes and legal bases, recipients, retention, sources,
    rights, and the right to complain to the CNIL."""
    history = list(history)
    with translation.override(contact.reading_language()):
        identity = controller_identity()
        purposes = _purposes_concerned(contact, history)
        return {
            "controller": {
                "name": identity["name"],
                "address": identity["address"],
                "dpo_contact": identity["dpo_contact"],
                "privacy_notice": identity["notice_url"],
            },
            "purposes": [_purpose_row(purpose) for purpose in purposes],
            "recipients": _recipients(contact),
            "retention": _retention(purposes),
            "sources": _sources(contact, history),
            "rights": _rights(identity["dpo_contact"]),
            "complaint": {
                "authority": identity["authority"],
                "url": identity["complaint_url"],
                "how": _("You may lodge a complaint with the CNIL (GDPR Art. 77)."),
            },
        }


def _purposes_concerned(contact: Contact, history: list[ConsentRecord]) -> list[Purpose]:
    """The purposes this person's data serves: those their consents name, and the active ones
    that rest on another basis than consent (they apply to the person without a choice)."""
    named = {record.purpose_id for record in history}
    return list(
        Purpose.objects.filter(
            Q(pk__in=named) | Q(is_active=True) & ~Q(legal_basis=LegalBasis.CONSENT)
        ).order_by("slug")
    )


def _purpose_row(purpose: Purpose) -> dict[str, Any]:
    return {
        "purpose": purpose.slug,
        "name": purpose.name,
        "description": purpose.description,
        "legal_basis": purpose.legal_basis,
        "legal_basis_label": purpose.get_legal_basis_display(),
        "legitimate_interest": purpose.legitimate_interest,
        "channels": ", ".join(purpose.channels),
    }


def _recipients(contact: Contact) -> list[dict[str, Any]]:
    """The processors declared (`DATA_RECIPIENTS`), then those the person's data actually went
    to: the CRMs and integrations (outbox events delivered), the API clients that may read
    contacts, and the messages sent to the person (through the email or SMS provider)."""
    rows: list[dict[str, Any]] = [
        {"kind": "processor", **recipient, "sent": "", "first": None, "last": None}
        for recipient in data_recipients()
    ]
    delivered = OutboxEvent.objects.filter(
        contact_public_id=contact.public_id, processed_at__isnull=False
    ).aggregate(count=Count("id"), first=Min("processed_at"), last=Max("processed_at"))
    if delivered["count"]:
        rows.append(
            _sent_row(
                _("CRMs and integrations connected to our contact base"),
                ngettext(
                    "%(count)d change delivered",
                    "%(count)d changes delivered",
                    delivered["count"],
                )
                % {"count": delivered["count"]},
                delivered,
            )
        )
    readers = [
        client.name
        for client in ApiClient.objects.filter(is_active=True).order_by("name")
        if client.has_scope(Scope.CONTACTS_READ)
    ]
    if readers:
        rows.append(_sent_row(_("Our applications reading contacts (API)"), ", ".join(readers)))
    messages = (
        MessageSent.objects.filter(contact=contact)
        .values("channel")
        .annotate(count=Count("id"), first=Min("sent_at"), last=Max("sent_at"))
        .order_by("channel")
    )
    for sent in messages:
        rows.append(
            _sent_row(
                _("Our delivery provider for %(channel)s")
                % {"channel": Channel(sent["channel"]).label},
                ngettext(
                    "%(count)d marketing message", "%(count)d marketing messages", sent["count"]
                )
                % {"count": sent["count"]},
                sent,
            )
        )
    return rows


def _sent_row(name: str, sent: str, when: dict[str, Any] | None = None) -> dict[str, Any]:
    when = when or {}
    return {
        "kind": "sent_to",
        "name": name,
        "role": "",
        "country": "",
        "outside_eu": False,
        "safeguard": "",
        "sent": sent,
        "first": when.get("first"),
        "last": when.get("last"),
    }


def _retention(purposes: list[Purpose]) -> list[dict[str, Any]]:
    """How long data is kept (Art. 15(1)(d)): per purpose, then the rules for the profile."""
    default_days = settings.RETENTION_DEFAULT.days
    rows = [
        {
            "applies_to": purpose.slug,
            "period_days": purpose.retention_days or default_days,
            "rule": _("%(days)d days after your last contact with us, then erased.")
            % {"days": purpose.retention_days or default_days},
        }
        for purpose in purposes
    ]
    years = round(default_days / 365)
    rows += [
        {
            "applies_to": "prospect",
            "period_days": default_days,
            "rule": _(
                "Prospects: %(years)d years after the last contact from you (CNIL, délibération "
                "2021-131), then erased."
            )
            % {"years": years},
        },
        {
            "applies_to": "customer",
            "period_days": default_days,
            "rule": _("Customers: %(years)d years after the end of the contract, then erased.")
            % {"years": years},
        },
        {
            "applies_to": "opted_out_prospect",
            "period_days": settings.RETENTION_OPT_OUT_GRACE.days,
            "rule": _(
                "Prospects who refuse every message: %(days)d days after the last refusal, "
                "then erased."
            )
            % {"days": settings.RETENTION_OPT_OUT_GRACE.days},
        },
        {
            "applies_to": "suppression",
            "period_days": None,
            "rule": _(
                "After an unsubscribe or an erasure, a keyed hash of your address is kept so "
                "that you are not contacted again (at least 3 years)."
            ),
        },
        {
            "applies_to": "proof",
            "period_days": settings.PROOF_RETENTION_YEARS * 365,
            "rule": _(
                "After an erasure, the proof of your consents is kept encrypted for %(years)d "
                "years (the time a claim can be brought), readable only by our data protection "
                "officer, then deleted."
            )
            % {"years": settings.PROOF_RETENTION_YEARS},
        },
    ]
    return rows


def _sources(contact: Contact, history: list[ConsentRecord]) -> list[dict[str, Any]]:
    """Where the data came from (Art. 15(1)(g)): the contact's source, then each way a consent
    of theirs reached us (web form, import, CRM ...), with the first and last time."""
    rows: list[dict[str, Any]] = []
    if contact.source:
        rows.append(
            {
                "what": "contact",
                "source": contact.source,
                "reference": "",
                "first": contact.created_at,
                "last": None,
            }
        )
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for record in history:
        key = (record.source_kind, _source_reference(record))
        row = seen.setdefault(
            key,
            {
                "what": "consent",
                "source": key[0],
                "reference": key[1],
                "first": record.recorded_at,
                "last": None,
            },
        )
        row["last"] = record.recorded_at
    return rows + list(seen.values())


def _source_reference(record: ConsentRecord) -> str:
    """A consent's origin as the person can recognise it: a form's address or a list's name,
    not our internal references to another record."""
    reference = record.source_reference
    return (
        reference
        if "://" in reference or record.source_kind in ("import", "crm", "paper_form")
        else ""
    )


def _rights(dpo_contact: str) -> list[dict[str, str]]:
    """The person's rights and how to exercise them (Art. 15(1)(e), 13(2)(b)-(c))."""
    center = _("from the link at the foot of each of our messages (your preference center)")
    write = _("by writing to our data protection officer: %(contact)s") % {"contact": dpo_contact}
    either = _("%(center)s, or %(write)s") % {"center": center, "write": write}
    return [
        {"right": PrivacyRequestType.ACCESS, "article": "15", "how": either},
        {"right": PrivacyRequestType.RECTIFICATION, "article": "16", "how": either},
        {"right": PrivacyRequestType.ERASURE, "article": "17", "how": either},
        {"right": PrivacyRequestType.RESTRICTION, "article": "18", "how": write},
        {"right": PrivacyRequestType.OBJECTION, "article": "21", "how": either},
        {"right": PrivacyRequestType.PORTABILITY, "article": "20", "how": either},
        {"right": "withdraw_consent", "article": "7(3)", "how": either},
    ]


def _exported(value: Any) -> Any:
    """A contact column as exported: another contact (`merged_into`) by its public id."""
    return str(value.public_id) if isinstance(value, Contact) else value


def _history_row(record: Any, evidence: ConsentEvidence | None) -> dict[str, Any]:
    return {
        "id": str(record.uuid),
        "purpose": record.purpose.slug,
        "version": record.purpose_version.number,
        "channel": record.channel,
        "action": record.action,
        "status": record.status,
        "given_at": record.given_at,
        "recorded_at": record.recorded_at,
        "source": record.source_kind,
        "source_reference": record.source_reference,
        "wording": record.wording,
        "language": record.language,
        "unticked_by_default": record.unticked_by_default,
        "policy_version": record.policy_version,
        "ip": evidence.ip if evidence else None,
        "user_agent": evidence.user_agent if evidence else "",
        "hash": record.hash,
    }


def personal_data_json(contact: Contact) -> bytes:
    data = personal_data(contact)
    return json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2).encode()


def personal_data_csv_zip(contact: Contact) -> bytes:
    """One CSV per section (contact.csv, interests.csv, consents.csv, ...), in a ZIP archive."""
    data = personal_data(contact)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for section, rows in data.items():
            if section == "exported_at":
                continue
            rows = [rows] if isinstance(rows, dict) else rows
            bundle.writestr(f"{section}.csv", csv_text(rows))
    return archive.getvalue()
