"""Everything held on a person, as JSON and as a ZIP of CSV files (GDPR Art. 15, 20)."""

import io
import json
import zipfile
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from consent.models import ConsentEvidence, ConsentState
from consent.selectors import contact_consent_history
from contacts.models import SUPPRESSION_DIGEST_FIELDS, Contact
from core.csvfiles import csv_text
from privacy.models import PrivacyRequest

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
    """Identity, interests, consent state and full history with evidence, timeline, requests."""
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
    }


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
