"""The proof archive: an erased person's proof of consent, kept encrypted for a time, then gone.

Erasure (the one path, `privacy.services._erase_contacts`) moves who consented and the
personal evidence of each ledger record here, in one entry per contact, encrypted with
`FIELD_ENCRYPTION_KEY` (GDPR Art. 17(3)(e): kept for the establishment or defence of legal
claims; EDPB Guidelines 05/2020 para 107). Once `delete_after` has passed, the beat job
deletes the entry and strips the person's ledger records (`consent.ledger.ledger_strip`), so
that nothing about them stays past the proof period (Art. 5(1)(e)). Its own module: the
services module is long enough already.

Keys: the content is a Fernet token under a `MultiFernet` of `FIELD_ENCRYPTION_KEY` (writes)
and `FIELD_ENCRYPTION_PREVIOUS_KEYS` (reads only). To rotate, put the new key first, the old
one in the previous keys, run `manage.py rotate_proof_archive`, then drop the old key.
"""

import base64
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cryptography.fernet import InvalidToken
from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from campaigns.services import recipients_proof_expired
from consent.ledger import ledger_strip
from consent.models import ConsentEvidence, ConsentRecord
from contacts.models import Contact
from core.batches import in_batches
from core.encryption import field_cipher as proof_cipher
from core.models import AuditAction
from core.services import audit_record
from privacy.models import ProofArchiveEntry

logger = logging.getLogger(__name__)

# What identifies who consented (and who consented for a minor): kept with the evidence.
PROOF_IDENTITY_FIELDS = (
    "public_id",
    "email",
    "previous_email",
    "phone",
    "first_name",
    "last_name",
    "is_minor",
)
# The evidence row's columns that are not evidence (the document's bytes go in separately)
EVIDENCE_SKIPPED_FIELDS = frozenset({"id", "record"})


def proof_archive_write(
    *, contacts: Sequence[Contact], reason: str, now: datetime | None = None
) -> int:
    """Archive the proof of the people being erased, in the caller's transaction: before
    their evidence is deleted and they are anonymised. Two statements for the whole batch.

    Only people with ledger records have proof to keep; `PROOF_RETENTION_YEARS` = 0 keeps
    nothing (the evidence is deleted at once). Answers how many entries were written.
    """
    years = settings.PROOF_RETENTION_YEARS
    holders = [contact for contact in contacts if contact.ledger_seq > 0]
    if not years or not holders:
        return 0
    now = now or timezone.now()
    evidence = _evidence_by_contact([contact.pk for contact in holders])
    cipher = proof_cipher()
    entries = [
        ProofArchiveEntry(
            contact=contact,
            reason=reason[:100],
            erased_at=now,
            delete_after=now + relativedelta(years=years),
            ciphertext=cipher.encrypt(
                json.dumps(
                    {"contact": _identity(contact), "evidence": evidence.get(contact.pk, [])},
                    cls=DjangoJSONEncoder,
                    sort_keys=True,
                ).encode()
            ).decode("ascii"),
        )
        for contact in holders
    ]
    ProofArchiveEntry.objects.bulk_create(entries)
    return len(entries)


def _identity(contact: Contact) -> dict[str, Any]:
    names = [*PROOF_IDENTITY_FIELDS]
    # whoever holds parental responsibility, however the contact records it
    names += [f.name for f in Contact._meta.concrete_fields if "guardian" in f.name]
    return {name: getattr(contact, name) for name in names}


def _evidence_by_contact(contact_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Each contact's personal evidence, per ledger record, with the documents' bytes."""
    fields = [
        field.attname
        for field in ConsentEvidence._meta.concrete_fields
        if field.name not in EVIDENCE_SKIPPED_FIELDS
    ]
    rows = ConsentEvidence.objects.filter(record__contact_id__in=contact_ids).values(
        "record__uuid", "record__contact_id", *fields
    )
    storage = ConsentEvidence._meta.get_field("document").storage
    found: dict[int, list[dict[str, Any]]] = {}
    for row in rows.order_by("record_id"):
        contact_id = row.pop("record__contact_id")
        row["record"] = str(row.pop("record__uuid"))
        row["document_content"] = _document_content(storage, row.get("document") or "")
        found.setdefault(contact_id, []).append(row)
    return found


def _document_content(storage: Any, name: str) -> str | None:
    """The document's bytes (base64), or None when there is none or it is gone."""
    if not name:
        return None
    try:
        with storage.open(name, "rb") as file:
            return base64.b64encode(file.read()).decode("ascii")
    except FileNotFoundError:
        return None


def proof_archive_read(*, entry: ProofArchiveEntry, request: HttpRequest, why: str) -> Any:
    """The decrypted content of an entry, for the DPO: who read whose proof, when and why is
    written to the audit log first (GDPR Art. 5(2), 32)."""
    with transaction.atomic():
        audit_record(
            request=request,
            action=AuditAction.PROOF_ARCHIVE_READ,
            contact=entry.contact,
            details={"entry": entry.pk, "why": why},
        )
        return json.loads(proof_cipher().decrypt(entry.ciphertext.encode("ascii")))


def proof_archive_rotate(*, batch_size: int = 200) -> int:
    """Re-encrypt every entry with `FIELD_ENCRYPTION_KEY` (after a key rotation), a batch per
    transaction. Answers how many; an entry no key can read stops it, named."""
    cipher = proof_cipher()
    rotated = 0
    for batch in in_batches(ProofArchiveEntry.objects.all(), batch_size=batch_size):
        with transaction.atomic():
            for entry in batch:
                try:
                    token = cipher.rotate(entry.ciphertext.encode("ascii")).decode("ascii")
                except InvalidToken as error:
                    raise InvalidToken(f"proof archive entry #{entry.pk}") from error
                ProofArchiveEntry.objects.filter(pk=entry.pk).update(ciphertext=token)
                rotated += 1
    return rotated


def proof_archives_expire(*, now: datetime | None = None, batch_size: int = 100) -> int:
    """Delete the entries past `delete_after`, and strip their people's ledger records (with
    a signed seal, so the rest still verifies): nothing stays past the proof period (GDPR
    Art. 5(1)(e)). Beat job, daily; safe to run twice, also at once. A batch per transaction;
    if one fails, each of its entries alone (a failure is logged and left for the next run).
    A person with a record not sealed yet keeps their entry until a later run. Answers how
    many entries were deleted."""
    now = now or timezone.now()
    due = ProofArchiveEntry.objects.filter(delete_after__lte=now).values_list("pk", flat=True)
    deleted = 0
    for batch in in_batches(due, batch_size=batch_size, key=lambda pk: pk):
        try:
            deleted += _expire(batch, now)
            continue
        except Exception:
            logger.exception("expiring %d proof archive entries failed: each alone", len(batch))
        for pk in batch:
            try:
                deleted += _expire([pk], now)
            except Exception:  # one that fails must not hold back the others
                logger.exception("proof archive entry %s could not be expired", pk)
    return deleted


def _expire(entry_ids: list[int], now: datetime) -> int:
    with transaction.atomic():
        entries = list(
            ProofArchiveEntry.objects.select_for_update()
            .filter(pk__in=entry_ids, delete_after__lte=now)  # another run may have done them
            .order_by("pk")
        )
        contact_ids = [entry.contact_id for entry in entries]
        stripped = ledger_strip(contact_ids=contact_ids, now=now)
        # the campaign recipients pointing at the deleted records keep their legal basis only
        recipients_proof_expired(contact_ids=stripped)
        waiting = set(
            ConsentRecord.objects.filter(contact_id__in=contact_ids).values_list(
                "contact_id", flat=True
            )
        )
        done = [entry.pk for entry in entries if entry.contact_id not in waiting]
        ProofArchiveEntry.objects.filter(pk__in=done).delete()
    return len(done)
