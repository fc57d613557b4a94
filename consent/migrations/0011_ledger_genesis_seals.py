"""Genesis seals: the legacy ledger (one global chain, `xact` 0) frozen into signed seals, one per
month, then the global head row dropped.

The migration refuses to run when the legacy chain fails its check (a record's hash, a link,
a personal evidence digest, or the head row's count and last hash): sealing a tampered ledger
would launder it. Hashes and `previous_hash` are left untouched. The seals are signed with the
`LEDGER_SEAL_KEY` this process sees (the settings require it outside DEBUG); `verify_ledger`
names a seal signed with another key (docs/design/ledger-at-scale.md, last section).
"""

import hashlib
import json
from datetime import UTC, date

from django.conf import settings
from django.db import migrations
from django.utils import timezone

GENESIS_HASH = "0" * 64


class LedgerRefused(RuntimeError):
    pass


def _timestamp(value):
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _v1_hash(record):
    """The legacy (version 1) record hash, frozen as it was written."""
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


def _evidence_digest(evidence):
    payload = {
        "nonce": evidence.nonce,
        "ip": evidence.ip or "",
        "user_agent": evidence.user_agent,
        "document_sha256": evidence.document_sha256,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def seal_legacy_ledger(apps, schema_editor):
    from consent.ledger import (
        SEAL_DIGEST_START,
        digest_step,
        seal_hash,
        seal_key_id,
        seal_signature,
    )

    Record = apps.get_model("consent", "ConsentRecord")
    Evidence = apps.get_model("consent", "ConsentEvidence")
    LedgerHead = apps.get_model("consent", "LedgerHead")
    LedgerSeal = apps.get_model("consent", "LedgerSeal")
    if LedgerSeal.objects.exists():
        return
    problems = []
    previous = GENESIS_HASH
    months = {}  # period -> [count, digest, first id, last id]
    legacy = Record.objects.filter(xact=0, hash_version=1).order_by("id")
    for record in legacy.iterator(chunk_size=2000):
        label = f"record {record.uuid} (#{record.id})"
        if record.previous_hash != previous:
            problems.append(f"{label}: link to the previous record is broken")
        if _v1_hash(record) != record.hash:
            problems.append(f"{label}: content does not match its hash")
        previous = record.hash
        utc = record.recorded_at.astimezone(UTC)
        tally = months.setdefault(
            date(utc.year, utc.month, 1), [0, SEAL_DIGEST_START, record.id, record.id]
        )
        tally[0] += 1
        tally[1] = digest_step(tally[1], record.hash)
        tally[3] = record.id
    legacy_evidence = Evidence.objects.select_related("record").filter(record__hash_version=1)
    for evidence in legacy_evidence.iterator(chunk_size=2000):
        if _evidence_digest(evidence) != evidence.record.evidence_digest:
            problems.append(
                f"record {evidence.record.uuid} (#{evidence.record_id}): personal evidence "
                "does not match its digest"
            )
    count = sum(tally[0] for tally in months.values())
    head = LedgerHead.objects.filter(id=1).first()
    if head is not None and count and (head.record_count, head.last_hash) != (count, previous):
        problems.append(
            f"ledger head: expects {head.record_count} records ending in "
            f"{head.last_hash[:12]}, found {count} ending in {previous[:12]}"
        )
    if problems:
        listed = "\n".join(problems[:20])
        raise LedgerRefused(
            f"The consent ledger fails its check ({len(problems)} problem(s)); sealing it would "
            f"launder the tampering. Restore the ledger from a backup, then migrate.\n{listed}"
        )
    now = timezone.now()
    previous_seal = None
    for number, period in enumerate(sorted(months), start=1):
        records, digest, first_id, last_id = months[period]
        seal = LedgerSeal(
            number=number,
            kind="genesis",
            period=period,
            key_from=0,
            key_to=1,
            record_count=records,
            total_count=(previous_seal.total_count if previous_seal else 0) + records,
            first_record_id=first_id,
            last_record_id=last_id,
            records_digest=digest,
            previous_seal_hash=previous_seal.seal_hash if previous_seal else GENESIS_HASH,
            sealed_at=now,
            key_id=seal_key_id(settings.LEDGER_SEAL_KEY),
        )
        seal.seal_hash = seal_hash(seal)
        seal.signature = seal_signature(seal.seal_hash, settings.LEDGER_SEAL_KEY)
        seal.save()
        previous_seal = seal


def restore_head(apps, schema_editor):
    """Backwards (development only): the global head from the legacy records."""
    Record = apps.get_model("consent", "ConsentRecord")
    LedgerHead = apps.get_model("consent", "LedgerHead")
    last = Record.objects.filter(hash_version=1).order_by("-id").first()
    LedgerHead.objects.update_or_create(
        id=1,
        defaults={
            "last_record_id": last.id if last else None,
            "last_hash": last.hash if last else GENESIS_HASH,
            "record_count": Record.objects.filter(hash_version=1).count(),
        },
    )


class Migration(migrations.Migration):
    dependencies = [("consent", "0010_ledger_seals")]

    operations = [
        migrations.RunPython(seal_legacy_ledger, restore_head),
        migrations.DeleteModel(name="LedgerHead"),
    ]
