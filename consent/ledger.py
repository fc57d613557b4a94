"""The hash chain of the consent ledger: how a record is hashed and how the chain is checked."""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from consent.models import ConsentEvidence, ConsentRecord, LedgerHead

GENESIS_HASH = "0" * 64


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def evidence_digest(evidence: ConsentEvidence) -> str:
    """Digest of the personal evidence, salted by its nonce so it cannot be guessed back."""
    payload = {
        "nonce": evidence.nonce,
        "ip": evidence.ip or "",
        "user_agent": evidence.user_agent,
        "document_sha256": evidence.document_sha256,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def record_hash(record: ConsentRecord) -> str:
    """SHA-256 over the record's own fields and the previous record's hash."""
    payload = {
        "uuid": str(record.uuid),
        "contact": record.contact_id,
        "purpose": record.purpose_id,
        "purpose_version": record.purpose_version_id,
        "channel": record.channel,
        "action": record.action,
        "status": record.status,
        "given_at": _timestamp(record.given_at),
        "recorded_at": _timestamp(record.recorded_at),
        "source_kind": record.source_kind,
        "source_reference": record.source_reference,
        "wording": record.wording,
        "language": record.language,
        "unticked_by_default": record.unticked_by_default,
        "policy_version": record.policy_version,
        "evidence_digest": record.evidence_digest,
        "resolves": record.resolves_id,
        "previous_hash": record.previous_hash,
    }
    encoded = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


@dataclass(frozen=True)
class LedgerProblem:
    record: str
    reason: str

    def __str__(self) -> str:
        return f"{self.record}: {self.reason}"


def ledger_verify(*, chunk_size: int = 2000) -> list[LedgerProblem]:
    """Walk the whole chain; return every record whose hash, link or evidence does not match."""
    problems: list[LedgerProblem] = []
    previous = GENESIS_HASH
    count = 0
    last_id = None
    evidence = {
        row.record_id: row
        for row in ConsentEvidence.objects.only(
            "record_id", "nonce", "ip", "user_agent", "document_sha256"
        ).iterator(chunk_size=chunk_size)
    }
    for record in ConsentRecord.objects.order_by("id").iterator(chunk_size=chunk_size):
        label = f"record {record.uuid} (#{record.id})"
        if record.previous_hash != previous:
            problems.append(LedgerProblem(label, "link to the previous record is broken"))
        if record_hash(record) != record.hash:
            problems.append(LedgerProblem(label, "content does not match its hash"))
        personal = evidence.get(record.id)
        if personal is not None and evidence_digest(personal) != record.evidence_digest:
            problems.append(LedgerProblem(label, "personal evidence does not match its digest"))
        previous, count, last_id = record.hash, count + 1, record.id
    head = LedgerHead.objects.filter(id=1).first()
    if head is not None and (head.last_hash != previous or head.record_count != count):
        problems.append(
            LedgerProblem(
                f"ledger head (last #{head.last_record_id})",
                f"expects {head.record_count} records ending in {head.last_hash[:12]}, "
                f"found {count} ending in {previous[:12]} (last #{last_id})",
            )
        )
    return problems
