"""The hash chain of the consent ledger: how a record is hashed and how the chain is checked."""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from consent.models import ConsentEvidence, ConsentRecord, HashVersion
from contacts.models import LEDGER_GENESIS_HASH, Contact

GENESIS_HASH = LEDGER_GENESIS_HASH


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
    """SHA-256 over the record's own fields and the previous record's hash.

    Version 2 (per-contact chain) also covers the record's position in its contact's chain;
    version 1 (the legacy global chain) is hashed exactly as it was written.
    """
    payload: dict[str, object] = {
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
    if record.hash_version != HashVersion.GLOBAL_CHAIN:
        payload["hash_version"] = record.hash_version
        payload["contact_seq"] = record.contact_seq
    encoded = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


@dataclass(frozen=True)
class LedgerProblem:
    record: str
    reason: str

    def __str__(self) -> str:
        return f"{self.record}: {self.reason}"


def ledger_verify(*, chunk_size: int = 2000) -> list[LedgerProblem]:
    """Walk the ledger; return every record whose hash, link or evidence does not match.

    Legacy records (hash version 1) form one global chain in id order. Every record belongs
    to its contact's chain (`contact_seq` 1, 2, ...): a version-2 record links to the
    contact's previous record, and the contact's head (`ledger_seq`, `ledger_hash`) names the
    last one. Evidence comes along in the same query (no table of it in memory).
    """
    problems: list[LedgerProblem] = []
    previous = GENESIS_HASH
    legacy = ConsentRecord.objects.filter(hash_version=HashVersion.GLOBAL_CHAIN).order_by("id")
    for record in legacy.only("id", "uuid", "previous_hash", "hash").iterator(chunk_size):
        if record.previous_hash != previous:
            problems.append(LedgerProblem(_label(record), "link to the previous record is broken"))
        previous = record.hash
    records = ConsentRecord.objects.select_related("personal_evidence").order_by(
        "contact_id", "contact_seq"
    )
    heads = (
        Contact.objects.filter(ledger_seq__gt=0)
        .order_by("id")
        .values_list("id", "ledger_seq", "ledger_hash")
    )
    head_iter = iter(heads.iterator(chunk_size))
    head = next(head_iter, None)
    contact_id, seq, last_hash = 0, 0, GENESIS_HASH

    def close_chain() -> None:
        """Compare the chain just walked (contact_id, seq, last_hash) with its contact's head."""
        nonlocal head
        while head is not None and head[0] < contact_id:
            problems.append(_head_without_records(head))
            head = next(head_iter, None)
        expected_seq, expected_hash = 0, GENESIS_HASH
        if head is not None and head[0] == contact_id:
            expected_seq, expected_hash = head[1], head[2]
            head = next(head_iter, None)
        if (expected_seq, expected_hash) != (seq, last_hash):
            problems.append(
                LedgerProblem(
                    f"contact #{contact_id}",
                    f"ledger head expects {expected_seq} record(s) ending in "
                    f"{expected_hash[:12]}, found {seq} ending in {last_hash[:12]}",
                )
            )

    for record in records.iterator(chunk_size):
        if record.contact_id != contact_id:
            if contact_id:
                close_chain()
            contact_id, seq, last_hash = record.contact_id, 0, GENESIS_HASH
        label = _label(record)
        if record.contact_seq != seq + 1:
            problems.append(LedgerProblem(label, "a record of this contact is missing before it"))
        if record.hash_version != HashVersion.GLOBAL_CHAIN and record.previous_hash != last_hash:
            problems.append(LedgerProblem(label, "link to the previous record is broken"))
        if record_hash(record) != record.hash:
            problems.append(LedgerProblem(label, "content does not match its hash"))
        personal = getattr(record, "personal_evidence", None)
        if personal is not None and evidence_digest(personal) != record.evidence_digest:
            problems.append(LedgerProblem(label, "personal evidence does not match its digest"))
        seq, last_hash = record.contact_seq, record.hash
    if contact_id:
        close_chain()
    while head is not None:
        problems.append(_head_without_records(head))
        head = next(head_iter, None)
    return problems


def _head_without_records(head: tuple[int, int, str]) -> LedgerProblem:
    return LedgerProblem(
        f"contact #{head[0]}",
        f"ledger head expects {head[1]} record(s) ending in {head[2][:12]}, found none",
    )


def _label(record: ConsentRecord) -> str:
    return f"record {record.uuid} (#{record.id})"
