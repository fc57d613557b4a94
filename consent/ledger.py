"""The consent ledger's integrity: how a record is hashed, how the records are sealed every
minute into signed, chained seals, and how records, chains and seals are checked.

Seals (design note docs/design/ledger-at-scale.md): a seal covers the records whose sealing key
`xact` lies in `[key_from, key_to)` and whose `recorded_at` falls in its month (`period`), by
count and by a running digest over their hashes in `(xact, id)` order. `key_to` is a horizon
below which every writing transaction has finished, so a record committed late (out of id
order) always lands in a later seal, never in a closed one. Each seal chains to the previous
one and is signed with HMAC-SHA256 under `LEDGER_SEAL_KEY`, which the database never holds.
"""

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from consent.models import (
    ConsentEvidence,
    ConsentRecord,
    ConsentState,
    HashVersion,
    LedgerSeal,
    LedgerTombstone,
    LedgerVerification,
    SealKind,
)
from contacts.models import LEDGER_GENESIS_HASH
from core.emails import email_send
from core.management.commands.setup_roles import DPO
from core.services import job_run_claim

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
    # a guardian's details only when given: the evidence written before them keeps its digest
    # (read with getattr: the migrations' historical models predate these fields)
    guardian_name = getattr(evidence, "guardian_name", "")
    guardian_contact = getattr(evidence, "guardian_contact", "")
    if guardian_name or guardian_contact:
        payload["guardian_name"] = guardian_name
        payload["guardian_contact"] = guardian_contact
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def record_hash(record: ConsentRecord) -> str:
    """SHA-256 over the record's own fields and the previous record's hash.

    Version 2 (per-contact chain) also covers the record's position in its contact's chain;
    version 3 also who acted, whether the proof is second-hand and where consent was
    collected; version 1 (the legacy global chain) is hashed exactly as it was written.
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
    if record.hash_version >= HashVersion.ACTOR_AND_ORIGIN:
        payload["actor"] = record.actor
        payload["second_hand"] = record.second_hand
        payload["collection_reference"] = record.collection_reference
    encoded = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


SEAL_DIGEST_START = hashlib.sha256(b"ledger-seal").hexdigest()
# Seals that remove records already sealed (the running total of sealed records stays)
REMOVAL_KINDS = frozenset({SealKind.PRUNE, SealKind.STRIP})
# pg_advisory_xact_lock key of the sealer: two runs at once queue here, then read the last seal
SEAL_LOCK_KEY = 0x4C4544474552  # "LEDGER"


@dataclass(frozen=True)
class LedgerProblem:
    record: str
    reason: str

    def __str__(self) -> str:
        return f"{self.record}: {self.reason}"


# Seals: signing and computing.


def seal_key_id(key: str | None = None) -> str:
    """The first 8 hex digits of sha256(key): names the key a seal was signed with."""
    return hashlib.sha256((key or settings.LEDGER_SEAL_KEY).encode()).hexdigest()[:8]


def seal_hash(seal: LedgerSeal) -> str:
    """SHA-256 of the canonical JSON of every field of the seal but the hash and signature."""
    payload = {
        "number": seal.number,
        "kind": seal.kind,
        "period": seal.period.isoformat(),
        "key_from": seal.key_from,
        "key_to": seal.key_to,
        "record_count": seal.record_count,
        "total_count": seal.total_count,
        "first_record_id": seal.first_record_id,
        "last_record_id": seal.last_record_id,
        "records_digest": seal.records_digest,
        "previous_seal_hash": seal.previous_seal_hash,
        "sealed_at": _timestamp(seal.sealed_at),
        "key_id": seal.key_id,
    }
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


def seal_signature(hash_hex: str, key: str | None = None) -> str:
    """HMAC-SHA256 of a seal hash under `LEDGER_SEAL_KEY` (or `key`)."""
    secret = (key or settings.LEDGER_SEAL_KEY).encode()
    return hmac.new(secret, hash_hex.encode(), hashlib.sha256).hexdigest()


def digest_step(digest: str, record_hash_hex: str) -> str:
    """The running digest after one more record: sha256(digest ‖ record hash), in bytes."""
    try:
        tail = bytes.fromhex(record_hash_hex)
    except ValueError:  # a forged, non-hex hash still changes the digest
        tail = record_hash_hex.encode()
    return hashlib.sha256(bytes.fromhex(digest) + tail).hexdigest()


def month_of(moment: datetime) -> date:
    """The seal period of a time: the first day of its month, in UTC."""
    utc = moment.astimezone(UTC)
    return date(utc.year, utc.month, 1)


@dataclass
class _Tally:
    count: int = 0
    raw_digest: bytes = bytes.fromhex(SEAL_DIGEST_START)  # `digest_step`'s, kept in bytes
    first_id: int | None = None
    last_id: int | None = None

    @property
    def digest(self) -> str:
        return self.raw_digest.hex()

    def add(self, record_id: int, record_hash_hex: str) -> None:
        try:
            tail = bytes.fromhex(record_hash_hex)
        except ValueError:  # as in `digest_step`
            tail = record_hash_hex.encode()
        self.count += 1
        self.raw_digest = hashlib.sha256(self.raw_digest + tail).digest()
        if self.first_id is None:
            self.first_id = record_id
        self.last_id = record_id


def seal_build(
    *,
    previous: LedgerSeal | None,
    kind: str,
    period: date,
    key_from: int,
    key_to: int,
    tally: "_Tally",
    sealed_at: datetime,
    key: str | None = None,
) -> LedgerSeal:
    """The next seal after `previous` (unsaved), hashed and signed."""
    seal = LedgerSeal(
        number=(previous.number if previous else 0) + 1,
        kind=kind,
        period=period,
        key_from=key_from,
        key_to=key_to,
        record_count=tally.count,
        total_count=(previous.total_count if previous else 0)
        + (tally.count if kind not in REMOVAL_KINDS else 0),
        first_record_id=tally.first_id,
        last_record_id=tally.last_id,
        records_digest=tally.digest,
        previous_seal_hash=previous.seal_hash if previous else GENESIS_HASH,
        sealed_at=sealed_at,
        key_id=seal_key_id(key),
    )
    seal.seal_hash = seal_hash(seal)
    seal.signature = seal_signature(seal.seal_hash, key)
    return seal


# The oldest transaction that may still write here: the snapshot's running transactions,
# less those a backend of another database holds (xids are cluster-wide, rows are not), else
# the snapshot's end (one past the last finished transaction). A transaction of unknown
# database counts as ours: it only delays. The sealing transaction's own records (a caller
# that wrote before sealing, a test) wait for a later seal: more may follow in it.
PG_HORIZON_SQL = """
WITH snap AS (SELECT pg_current_snapshot() AS s)
SELECT LEAST(
    pg_snapshot_xmax(s)::text::bigint,
    pg_current_xact_id_if_assigned()::text::bigint,
    (SELECT min(x::text::bigint) FROM pg_snapshot_xip(s) AS x
     WHERE NOT EXISTS (
        SELECT 1 FROM pg_stat_activity a
        WHERE a.backend_xid IS NOT NULL
          AND a.backend_xid::text::bigint = mod(x::text::bigint, 4294967296)
          AND a.datname IS DISTINCT FROM current_database()
     ))
) FROM snap
"""


def _horizon() -> int:
    """The sealing key below which every writing transaction has finished.

    PostgreSQL: the oldest transaction of this database still running (`PG_HORIZON_SQL`);
    every `xact` below it is committed (and visible to any later statement) or rolled back.
    SQLite serialises writers (`BEGIN IMMEDIATE`), and `xact` is the row id: the next id.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # pg_stat_activity is read once per transaction and then kept: read it afresh, or
            # a second seal in one transaction counts other databases' new xids as ours
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(PG_HORIZON_SQL)
            return int(cursor.fetchone()[0])
    last_id = ConsentRecord.objects.aggregate(last=Max("id"))["last"]
    return (last_id or 0) + 1


def ledger_seal(*, now: datetime | None = None, chunk_size: int = 2000) -> list[LedgerSeal]:
    """Seal every record written since the previous seal: one seal per month touched, chained
    and signed; an empty window still gives a seal (a heartbeat: a gap in `sealed_at` shows
    the sealer stopped). Two runs at once give one chain: the second waits for the first.
    A transaction still open only delays its records (and the later ones) to a next seal.
    """
    now = now or timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEAL_LOCK_KEY])
        # read after the lock: each statement sees what the run before us committed
        previous = LedgerSeal.objects.order_by("-number").first()
        key_from = previous.key_to if previous else 0
        key_to = max(_horizon(), key_from)
        tallies: dict[date, _Tally] = {}
        rows = (
            ConsentRecord.objects.filter(xact__gte=key_from, xact__lt=key_to)
            .order_by("xact", "id")
            .values_list("id", "hash", "recorded_at")
            .iterator(chunk_size=chunk_size)
        )
        for record_id, record_hash_hex, recorded_at in rows:
            tallies.setdefault(month_of(recorded_at), _Tally()).add(record_id, record_hash_hex)
        if not tallies:
            tallies[month_of(now)] = _Tally()
        seals = []
        for period in sorted(tallies):
            previous = seal_build(
                previous=previous,
                kind=SealKind.RECORDS,
                period=period,
                key_from=key_from,
                key_to=key_to,
                tally=tallies[period],
                sealed_at=now,
            )
            previous.save()
            seals.append(previous)
    return seals


def seal_head_send(*, now: datetime | None = None) -> bool:
    """Email the DPO group the last seal head of yesterday (local time), once a day: a copy
    of the head outside the database, for `verify_ledger --head`. Twice the same day sends
    one email (the day's job marker); a day without a seal sends nothing."""
    now = now or timezone.now()
    day = timezone.localdate(now) - timedelta(days=1)
    day_end = timezone.make_aware(datetime.combine(day + timedelta(days=1), datetime.min.time()))
    with transaction.atomic():
        if not job_run_claim(job="ledger-seal-head", key=day.isoformat()):
            return False
        seal = LedgerSeal.objects.filter(sealed_at__lt=day_end).order_by("-number").first()
        recipients = sorted(
            set(
                get_user_model()
                .objects.filter(groups__name=DPO, is_active=True)
                .exclude(email="")
                .values_list("email", flat=True)
            )
        )
        if seal is None or not recipients:
            return False
        # in the site's language: the DPO's team has no language of its own here
        email_send(
            template="consent/email/seal_head",
            context={"seal": seal, "day": day, "head": f"{seal.number}:{seal.seal_hash}"},
            to=recipients,
            for_staff=True,
        )
    return True


# Removal of erased people's records at the end of their proof period (GDPR Art. 5(1)(e)).

# The PostgreSQL setting the ledger's delete trigger checks (consent migration
# `ledger_strip_trigger`): on only in `ledger_strip`'s transaction, around its DELETE.
STRIP_SETTING = "consent.ledger_strip"


def tombstone_digest(
    record_id: int,
    contact_id: int,
    contact_seq: int,
    hash_version: int,
    xact: int,
    period: date,
    hash_hex: str,
) -> str:
    """What a strip seal digests of one removed record: its hash and where it stood."""
    text = f"{record_id}:{contact_id}:{contact_seq}:{hash_version}:{xact}:{period:%Y-%m}:{hash_hex}"
    return hashlib.sha256(text.encode()).hexdigest()


def ledger_strip(*, contact_ids: Sequence[int], now: datetime | None = None) -> list[int]:
    """Remove every ledger record (and consent state) of the given erased people, leaving for
    each record a tombstone with nothing personal, under one signed `strip` seal that counts
    and digests them: what remains still verifies, and a removal without the seal does not.

    In the caller's transaction. A person with a record not sealed yet waits for a later run.
    Answers the contacts whose records were removed (none again on a second run).
    """
    now = now or timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEAL_LOCK_KEY])
        previous = LedgerSeal.objects.order_by("-number").first()
        sealed_to = previous.key_to if previous else 0
        rows = list(
            ConsentRecord.objects.filter(contact_id__in=list(contact_ids))
            .order_by("xact", "id")
            .values_list(
                "id", "contact_id", "contact_seq", "hash_version", "xact", "recorded_at", "hash"
            )
        )
        waiting = {row[1] for row in rows if row[4] >= sealed_to}
        rows = [row for row in rows if row[1] not in waiting]
        if previous is None or not rows:
            return []
        tombstones = [
            LedgerTombstone(
                record_id=record_id,
                contact_id=contact_id,
                contact_seq=contact_seq,
                hash_version=hash_version,
                xact=xact,
                period=month_of(recorded_at),
                hash=hash_hex,
                seal_number=previous.number + 1,
            )
            for (
                record_id,
                contact_id,
                contact_seq,
                hash_version,
                xact,
                recorded_at,
                hash_hex,
            ) in rows
        ]
        tally = _Tally()
        for tombstone in tombstones:
            tally.add(tombstone.record_id, _tombstone_digest_of(tombstone))
        seal_build(
            previous=previous,
            kind=SealKind.STRIP,
            period=month_of(now),
            key_from=sealed_to,
            key_to=sealed_to,
            tally=tally,
            sealed_at=now,
        ).save()
        LedgerTombstone.objects.bulk_create(tombstones)
        stripped = sorted({row[1] for row in rows})
        ConsentState.objects.filter(contact_id__in=stripped).delete()
        ConsentEvidence.objects.filter(record__contact_id__in=stripped).delete()  # none left
        _records_delete(stripped)
    return stripped


def _tombstone_digest_of(tombstone: LedgerTombstone) -> str:
    return tombstone_digest(
        tombstone.record_id,
        tombstone.contact_id,
        tombstone.contact_seq,
        tombstone.hash_version,
        tombstone.xact,
        tombstone.period,
        tombstone.hash,
    )


def _records_delete(contact_ids: list[int]) -> None:
    """Delete the contacts' records past the append-only refusals: the ORM's (raw SQL) and, on
    PostgreSQL, the trigger's, which lets a DELETE through only while `STRIP_SETTING` is on in
    this transaction and for a record that has its tombstone."""
    placeholders = ", ".join(["%s"] * len(contact_ids))
    delete = f"DELETE FROM consent_consentrecord WHERE contact_id IN ({placeholders})"  # noqa: S608 - placeholders only
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT set_config(%s, 'on', true)", [STRIP_SETTING])
        cursor.execute(delete, contact_ids)
        if connection.vendor == "postgresql":
            cursor.execute("SELECT set_config(%s, 'off', true)", [STRIP_SETTING])


# Verification, streamed in bounded memory.


@dataclass
class _Problems:
    limit: int
    items: list[LedgerProblem] = field(default_factory=list)
    left_off: int = 0

    def add(self, where: str, reason: str) -> None:
        if len(self.items) < self.limit:
            self.items.append(LedgerProblem(where, reason))
        else:
            self.left_off += 1


class LedgerReport(list[LedgerProblem]):
    """The problems `ledger_verify` found (empty: intact), with what it checked."""

    records: int = 0
    stripped: int = 0  # records removed at the end of their proof period (tombstones)
    seals: int = 0
    last_seal: LedgerSeal | None = None
    unsealed: int = 0
    oldest_unsealed_at: datetime | None = None
    # the oldest unsealed record whose transaction had finished when the check began: the
    # sealer could have sealed it (a record of a transaction still open waits rightly)
    oldest_sealable_at: datetime | None = None
    left_off: int = 0  # problems past `max_problems`, counted only

    @property
    def problem_count(self) -> int:
        return len(self) + self.left_off


def _seal_label(seal: LedgerSeal) -> str:
    return f"seal #{seal.number} ({seal.get_kind_display()} {seal.period:%Y-%m})"


@dataclass
class _Window:
    """Consecutive seals of one sealing run: one key range, one seal per month."""

    key_from: int
    key_to: int
    seals: dict[date, LedgerSeal]
    found: dict[date, _Tally] = field(default_factory=dict)


def _seal_windows(chunk_size: int) -> Iterator[_Window]:
    window: _Window | None = None
    seals = (
        LedgerSeal.objects.exclude(kind__in=REMOVAL_KINDS)
        .order_by("number")
        .iterator(chunk_size=chunk_size)
    )
    for seal in seals:
        if window is not None and (seal.key_from, seal.key_to) == (window.key_from, window.key_to):
            window.seals.setdefault(seal.period, seal)
            continue
        if window is not None:
            yield window
        window = _Window(seal.key_from, seal.key_to, {seal.period: seal})
    if window is not None:
        yield window


def _check_seals(
    problems: _Problems, report: LedgerReport, chunk_size: int
) -> tuple[dict[date, LedgerSeal], dict[int, LedgerSeal], int]:
    """Pass A: numbers without gaps, links, hashes, signatures, running totals, windows and
    prune counts. Answers the prune seals by month, the strip seals by number and the sealed
    total."""
    current_key = seal_key_id()
    previous: LedgerSeal | None = None
    window: tuple[int, int] | None = None
    sealed_by_month: dict[date, int] = {}
    prunes: dict[date, LedgerSeal] = {}
    strips: dict[int, LedgerSeal] = {}  # one a day at most: a few thousand in years
    for seal in LedgerSeal.objects.order_by("number").iterator(chunk_size=chunk_size):
        label = _seal_label(seal)
        expected_number = (previous.number if previous else 0) + 1
        if seal.number != expected_number:
            problems.add(label, f"seal(s) missing: numbers jump from {expected_number - 1}")
        expected_link = previous.seal_hash if previous else GENESIS_HASH
        if seal.previous_seal_hash != expected_link:
            problems.add(label, "link to the previous seal is broken")
        if seal_hash(seal) != seal.seal_hash:
            problems.add(label, "content does not match its seal hash")
        if seal.key_id != current_key:
            problems.add(
                label,
                f"signed with key {seal.key_id}, not with LEDGER_SEAL_KEY ({current_key})",
            )
        elif not hmac.compare_digest(seal_signature(seal.seal_hash), seal.signature):
            problems.add(label, "signature does not match (not signed with LEDGER_SEAL_KEY)")
        previous_total = previous.total_count if previous else 0
        added = 0 if seal.kind in REMOVAL_KINDS else seal.record_count
        if seal.total_count != previous_total + added:
            problems.add(
                label, f"running total {seal.total_count} should be {previous_total + added}"
            )
        if seal.kind == SealKind.PRUNE:
            removable = sealed_by_month.get(seal.period, 0)
            if seal.record_count != removable:
                problems.add(
                    label,
                    f"prunes {seal.record_count} record(s) but its month's seals count {removable}",
                )
            prunes[seal.period] = seal
        elif seal.kind == SealKind.STRIP:
            strips[seal.number] = seal  # its tombstones are counted in pass B
        else:
            keys = (seal.key_from, seal.key_to)
            start = window[1] if window else 0
            if keys != window and (seal.key_from != start or seal.key_to < seal.key_from):
                problems.add(
                    label,
                    f"covers keys [{seal.key_from}, {seal.key_to}) where the previous seal "
                    f"ends at {start}",
                )
            window = keys
            sealed_by_month[seal.period] = sealed_by_month.get(seal.period, 0) + seal.record_count
        previous = seal
        report.seals += 1
    report.last_seal = previous
    return prunes, strips, (previous.total_count if previous else 0)


def _close_window(problems: _Problems, window: _Window, prunes: dict[date, LedgerSeal]) -> None:
    for period, seal in sorted(window.seals.items()):
        found = window.found.get(period, _Tally())
        prune = prunes.get(period)
        if prune is not None and prune.number > seal.number:
            if found.count:
                problems.add(
                    _seal_label(seal),
                    f"its month was pruned (seal #{prune.number}) but {found.count} "
                    "record(s) remain",
                )
            continue
        if found.count != seal.record_count:
            problems.add(
                _seal_label(seal),
                f"sealed {seal.record_count} record(s), found {found.count} "
                "(records deleted or inserted)",
            )
        elif found.digest != seal.records_digest:
            problems.add(
                _seal_label(seal),
                "records differ from the sealed digest (modified, replaced or reordered)",
            )


# Pass B reads every record once, as tuples (no model instance), with its personal evidence
# joined; on PostgreSQL the uuid and the two times come as the text the hash covers.
RECORDS_SQL = """
SELECT r.id, {uuid}, r.contact_id, r.purpose_id, r.purpose_version_id, r.channel, r.action,
    r.status, {given_at}, {recorded_at}, r.source_kind, r.source_reference, r.wording,
    r.language, r.unticked_by_default, r.policy_version, r.evidence_digest, r.resolves_id,
    r.previous_hash, r.hash, r.hash_version, r.contact_seq, r.xact,
    r.actor, r.second_hand, r.collection_reference,
    e.id, e.nonce, e.ip, e.user_agent, e.document_sha256, e.guardian_name, e.guardian_contact
FROM consent_consentrecord r
LEFT JOIN consent_consentevidence e ON e.record_id = r.id
ORDER BY r.xact, r.id
"""
PG_UTC_TEXT = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""


def _records_sql() -> str:
    if connection.vendor == "postgresql":
        return RECORDS_SQL.format(
            uuid="r.uuid::text",
            given_at=PG_UTC_TEXT.format("r.given_at"),
            recorded_at=PG_UTC_TEXT.format("r.recorded_at"),
        )
    return RECORDS_SQL.format(uuid="r.uuid", given_at="r.given_at", recorded_at="r.recorded_at")


def _utc_text(value: datetime | str) -> str:
    """A time as `_timestamp` writes it, from what the database answered: the text already
    (PostgreSQL, `PG_UTC_TEXT`), an aware time, or a naive one in UTC (SQLite)."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return _timestamp(value)


def _uuid_text(value: uuid.UUID | str) -> str:
    if isinstance(value, str) and len(value) == 36:
        return value
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(value))


# json.dumps' own string encoders, with ensure_ascii off and on
_json_str = json.encoder.encode_basestring
_json_ascii_str = json.encoder.encode_basestring_ascii


_JSON_FLAG = {None: "null", True: "true", False: "false"}


# `record_hash`'s JSON, its keys in sorted order, for each hash version: `json.dumps` writes
# integers as `%d` does, and strings as `_json_str` quotes them.
_ROW_JSON_V1 = (
    '{"action": %s, "channel": %s, "contact": %d, "evidence_digest": %s, "given_at": %s, '
    '"language": %s, "policy_version": %s, "previous_hash": %s, "purpose": %d, '
    '"purpose_version": %d, "recorded_at": %s, "resolves": %s, "source_kind": %s, '
    '"source_reference": %s, "status": %s, "unticked_by_default": %s, "uuid": %s, '
    '"wording": %s}'
)
_ROW_JSON_V2 = (
    '{"action": %s, "channel": %s, "contact": %d, "contact_seq": %d, "evidence_digest": %s, '
    '"given_at": %s, "hash_version": %d, "language": %s, "policy_version": %s, '
    '"previous_hash": %s, "purpose": %d, "purpose_version": %d, "recorded_at": %s, '
    '"resolves": %s, "source_kind": %s, "source_reference": %s, "status": %s, '
    '"unticked_by_default": %s, "uuid": %s, "wording": %s}'
)
_ROW_JSON_V3 = (
    '{"action": %s, "actor": %s, "channel": %s, "collection_reference": %s, "contact": %d, '
    '"contact_seq": %d, "evidence_digest": %s, "given_at": %s, "hash_version": %d, '
    '"language": %s, "policy_version": %s, "previous_hash": %s, "purpose": %d, '
    '"purpose_version": %d, "recorded_at": %s, "resolves": %s, "second_hand": %s, '
    '"source_kind": %s, "source_reference": %s, "status": %s, "unticked_by_default": %s, '
    '"uuid": %s, "wording": %s}'
)
_LEGACY_VERSION = HashVersion.GLOBAL_CHAIN.value
_PER_CONTACT_VERSION = HashVersion.PER_CONTACT.value


def record_hash_of_row(
    record_uuid: str,
    contact: int,
    purpose: int,
    purpose_version: int,
    channel: str,
    action: str,
    status: str,
    given_at: str,
    recorded_at: str,
    source_kind: str,
    source_reference: str,
    wording: str,
    language: str,
    unticked_by_default: bool | None,
    policy_version: str,
    evidence_digest_hex: str,
    resolves: int | None,
    previous_hash: str,
    hash_version: int,
    contact_seq: int,
    actor: str = "",
    second_hand: bool = False,
    collection_reference: str = "",
) -> str:
    """`record_hash` from a record's column values (times as `_timestamp` text), without
    building a model instance or a dict: the same bytes as `json.dumps(payload,
    sort_keys=True, ensure_ascii=False)`, written in the keys' sorted order (tested against
    `record_hash` in tests/consent/test_ledger_verify_speed.py)."""
    s = _json_str
    resolves_text = "null" if resolves is None else str(resolves)
    if hash_version == _LEGACY_VERSION:
        text = _ROW_JSON_V1 % (
            s(action),
            s(channel),
            contact,
            s(evidence_digest_hex),
            s(given_at),
            s(language),
            s(policy_version),
            s(previous_hash),
            purpose,
            purpose_version,
            s(recorded_at),
            resolves_text,
            s(source_kind),
            s(source_reference),
            s(status),
            _JSON_FLAG[unticked_by_default],
            s(record_uuid),
            s(wording),
        )
    elif hash_version == _PER_CONTACT_VERSION:
        text = _ROW_JSON_V2 % (
            s(action),
            s(channel),
            contact,
            contact_seq,
            s(evidence_digest_hex),
            s(given_at),
            hash_version,
            s(language),
            s(policy_version),
            s(previous_hash),
            purpose,
            purpose_version,
            s(recorded_at),
            resolves_text,
            s(source_kind),
            s(source_reference),
            s(status),
            _JSON_FLAG[unticked_by_default],
            s(record_uuid),
            s(wording),
        )
    else:
        text = _ROW_JSON_V3 % (
            s(action),
            s(actor),
            s(channel),
            s(collection_reference),
            contact,
            contact_seq,
            s(evidence_digest_hex),
            s(given_at),
            hash_version,
            s(language),
            s(policy_version),
            s(previous_hash),
            purpose,
            purpose_version,
            s(recorded_at),
            resolves_text,
            _JSON_FLAG[second_hand],
            s(source_kind),
            s(source_reference),
            s(status),
            _JSON_FLAG[unticked_by_default],
            s(record_uuid),
            s(wording),
        )
    return hashlib.sha256(text.encode()).hexdigest()


def _evidence_digest_of_row(
    nonce: str,
    ip: str | None,
    user_agent: str,
    document_sha256: str,
    guardian_name: str = "",
    guardian_contact: str = "",
) -> str:
    """`evidence_digest` from the evidence's column values: the same bytes as its
    `json.dumps(payload, sort_keys=True)`, written in the keys' sorted order."""
    s = _json_ascii_str
    guardian = ""
    if guardian_name or guardian_contact:
        guardian = (
            f'"guardian_contact": {s(guardian_contact)}, "guardian_name": {s(guardian_name)}, '
        )
    text = (
        f'{{"document_sha256": {s(document_sha256)}, {guardian}"ip": {s(ip or "")}, '
        f'"nonce": {s(nonce)}, "user_agent": {s(user_agent)}}}'
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _check_records(
    problems: _Problems,
    report: LedgerReport,
    prunes: dict[date, LedgerSeal],
    strips: dict[int, LedgerSeal],
    chunk_size: int,
) -> None:
    """Pass B: every record against its hash, its evidence and the seal of its window (a merge
    join of ordered streams: records, tombstones of removed records, seals); the legacy global
    chain's links on the way."""
    sealing = _Sealing(problems, report, prunes, strips, chunk_size)
    legacy_previous = GENESIS_HASH
    legacy_version = HashVersion.GLOBAL_CHAIN.value
    for (
        record_id,
        record_uuid,
        contact,
        purpose,
        purpose_version,
        channel,
        action,
        status,
        given_at,
        recorded_at,
        source_kind,
        source_reference,
        wording,
        language,
        unticked_by_default,
        policy_version,
        evidence_digest_hex,
        resolves,
        previous_hash,
        hash_hex,
        hash_version,
        contact_seq,
        xact,
        actor,
        second_hand,
        collection_reference,
        evidence_id,
        nonce,
        ip,
        user_agent,
        document_sha256,
        guardian_name,
        guardian_contact,
    ) in _stream(_records_sql(), [], chunk_size):
        report.records += 1
        legacy_previous = sealing.tombstones_before(xact, record_id, legacy_previous)
        uuid_text = _uuid_text(record_uuid)
        recorded_text = _utc_text(recorded_at)
        if hash_version == legacy_version:
            if previous_hash != legacy_previous and not prunes:
                problems.add(
                    _row_label(uuid_text, record_id), "link to the previous record is broken"
                )
            legacy_previous = hash_hex
        computed = record_hash_of_row(
            uuid_text,
            contact,
            purpose,
            purpose_version,
            channel,
            action,
            status,
            _utc_text(given_at),
            recorded_text,
            source_kind,
            source_reference,
            wording,
            language,
            None if unticked_by_default is None else bool(unticked_by_default),
            policy_version,
            evidence_digest_hex,
            resolves,
            previous_hash,
            hash_version,
            contact_seq,
            actor,
            bool(second_hand),
            collection_reference,
        )
        if computed != hash_hex:
            problems.add(_row_label(uuid_text, record_id), "content does not match its hash")
        if xact == 0 and hash_version != legacy_version:
            problems.add(
                _row_label(uuid_text, record_id),
                "has no sealing key (the database's consent_record_xact trigger)",
            )
        if (
            evidence_id is not None
            and _evidence_digest_of_row(
                nonce, ip, user_agent, document_sha256, guardian_name, guardian_contact
            )
            != evidence_digest_hex
        ):
            problems.add(
                _row_label(uuid_text, record_id), "personal evidence does not match its digest"
            )
        sealing.add_record(record_id, xact, hash_hex, uuid_text, recorded_text)
    sealing.finish()


class _Sealing:
    """Pass B's tallies of the sealed windows: records as they come, and the tombstones of
    removed records merged in at their place in `(xact, id)` order (their hash stands for the
    record's), each also counted for the strip seal that removed it."""

    def __init__(
        self,
        problems: _Problems,
        report: LedgerReport,
        prunes: dict[date, LedgerSeal],
        strips: dict[int, LedgerSeal],
        chunk_size: int,
    ) -> None:
        self.problems, self.report, self.prunes, self.strips = problems, report, prunes, strips
        self.horizon = _horizon()
        self.windows = _seal_windows(chunk_size)
        self.window = next(self.windows, None)
        self.months: dict[str, date] = {}  # "YYYY-MM" -> its period, a few entries
        self.tombstones = _stream(TOMBSTONES_SQL, [], chunk_size)
        self.tombstone = next(self.tombstones, None)
        self.stripped: dict[int, _Tally] = {}

    def tombstones_before(self, xact: int, record_id: int, legacy_previous: str) -> str:
        """Tally the tombstones that come before the record; answers the legacy chain's last
        hash (a removed legacy record's hash, if one came)."""
        while self.tombstone is not None and (self.tombstone[4], self.tombstone[0]) < (
            xact,
            record_id,
        ):
            legacy_previous = self._add_tombstone(self.tombstone, legacy_previous)
            self.tombstone = next(self.tombstones, None)
        return legacy_previous

    def _add_tombstone(self, row: tuple, legacy_previous: str) -> str:
        record_id, contact_id, contact_seq, hash_version, xact, period, hash_hex, number = row
        period = period if isinstance(period, date) else date.fromisoformat(str(period)[:10])
        self.report.stripped += 1
        label = f"tombstone of record #{record_id}"
        strip = self.strips.get(number)
        if strip is None:
            self.problems.add(label, f"removed without a signed strip seal (seal #{number})")
        else:
            digest = tombstone_digest(
                record_id, contact_id, contact_seq, hash_version, xact, period, hash_hex
            )
            self.stripped.setdefault(number, _Tally()).add(record_id, digest)
        if self._advance(xact):
            self._tally(label, record_id, xact, period, hash_hex)
        else:
            self.problems.add(label, "removed before it was sealed")
        return hash_hex if hash_version == HashVersion.GLOBAL_CHAIN.value else legacy_previous

    def add_record(
        self, record_id: int, xact: int, hash_hex: str, uuid_text: str, recorded_text: str
    ) -> None:
        report = self.report
        if not self._advance(xact):  # written after the last seal: checked, waiting for one
            report.unsealed += 1
            moment = datetime.fromisoformat(recorded_text)
            if report.oldest_unsealed_at is None or moment < report.oldest_unsealed_at:
                report.oldest_unsealed_at = moment
            oldest_sealable = report.oldest_sealable_at
            if xact < self.horizon and (oldest_sealable is None or moment < oldest_sealable):
                report.oldest_sealable_at = moment
            return
        month = recorded_text[:7]
        period = self.months.get(month)
        if period is None:
            period = self.months[month] = date(int(month[:4]), int(month[5:7]), 1)
        self._tally(_row_label(uuid_text, record_id), record_id, xact, period, hash_hex)

    def _advance(self, xact: int) -> bool:
        """Close the windows before `xact`; whether a window is left to hold it (sealed)."""
        while self.window is not None and xact >= self.window.key_to:
            _close_window(self.problems, self.window, self.prunes)
            self.window = next(self.windows, None)
        return self.window is not None

    def _tally(self, label: str, record_id: int, xact: int, period: date, hash_hex: str) -> None:
        window = self.window
        assert window is not None
        if xact < window.key_from or period not in window.seals:
            self.problems.add(
                label,
                f"inserted into sealed keys [{window.key_from}, {window.key_to}): no seal of "
                f"{period:%Y-%m} covers it",
            )
            return
        tally = window.found.get(period)
        if tally is None:
            tally = window.found[period] = _Tally()
        tally.add(record_id, hash_hex)

    def finish(self) -> None:
        """The tombstones after the last record, the last windows, then the strip seals."""
        while self.tombstone is not None:
            self._add_tombstone(self.tombstone, GENESIS_HASH)
            self.tombstone = next(self.tombstones, None)
        while self.window is not None:
            _close_window(self.problems, self.window, self.prunes)
            self.window = next(self.windows, None)
        for number, seal in sorted(self.strips.items()):
            found = self.stripped.get(number, _Tally())
            if found.count != seal.record_count:
                self.problems.add(
                    _seal_label(seal),
                    f"removed {seal.record_count} record(s), {found.count} tombstone(s) found",
                )
            elif found.digest != seal.records_digest:
                self.problems.add(
                    _seal_label(seal), "tombstones differ from the removed records' digest"
                )


TOMBSTONES_SQL = """
SELECT record_id, contact_id, contact_seq, hash_version, xact, period, hash, seal_number
FROM consent_ledgertombstone
ORDER BY xact, record_id
"""


def _row_label(uuid_text: str, record_id: int) -> str:
    return f"record {uuid_text} (#{record_id})"


# The chains: the records, and the tombstones of removed ones in their place (a tombstone's
# own link is not checked: its record's hash covered it, and the seals its hash).
CHAIN_SQL = """
SELECT r.id, r.uuid, r.contact_id, r.contact_seq, r.previous_hash, r.hash, r.hash_version,
    0 AS stripped
FROM consent_consentrecord r
UNION ALL
SELECT t.record_id, NULL, t.contact_id, t.contact_seq, '', t.hash, t.hash_version, 1
FROM consent_ledgertombstone t
"""

CHAIN_BREAKS_SQL = f"""
SELECT id, uuid, contact_seq, previous_hash, prev_hash, prev_seq, hash_version FROM (
    SELECT r.id, r.uuid, r.contact_seq, r.previous_hash, r.hash_version, r.stripped,
        LAG(r.hash) OVER w AS prev_hash, LAG(r.contact_seq) OVER w AS prev_seq
    FROM ({CHAIN_SQL}) r
    WINDOW w AS (PARTITION BY r.contact_id ORDER BY r.contact_seq)
) links
WHERE (prev_seq IS NULL AND contact_seq <> 1)
   OR (prev_seq IS NOT NULL AND contact_seq <> prev_seq + 1)
   OR (stripped = 0 AND hash_version <> 1 AND prev_seq IS NULL AND previous_hash <> %s)
   OR (stripped = 0 AND hash_version <> 1 AND prev_seq IS NOT NULL AND previous_hash <> prev_hash)
ORDER BY id
"""  # noqa: S608 - constant SQL

HEAD_MISMATCHES_SQL = """
SELECT c.id, c.ledger_seq, c.ledger_hash, heads.max_seq, COALESCE(last.hash, gone.hash)
FROM contacts_contact c
LEFT JOIN (
    SELECT contact_id, MAX(contact_seq) AS max_seq FROM (
        SELECT contact_id, contact_seq FROM consent_consentrecord
        UNION ALL
        SELECT contact_id, contact_seq FROM consent_ledgertombstone
    ) chain GROUP BY contact_id
) heads ON heads.contact_id = c.id
LEFT JOIN consent_consentrecord last
    ON last.contact_id = c.id AND last.contact_seq = heads.max_seq
LEFT JOIN consent_ledgertombstone gone
    ON gone.contact_id = c.id AND gone.contact_seq = heads.max_seq
WHERE c.ledger_seq <> COALESCE(heads.max_seq, 0)
   OR c.ledger_hash <> COALESCE(last.hash, gone.hash, %s)
ORDER BY c.id
"""


def _stream(sql: str, params: list[str], chunk_size: int) -> Iterator[tuple]:
    """The rows of a query, fetched in chunks (a server-side cursor on PostgreSQL)."""
    cursor = connection.chunked_cursor()
    try:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(chunk_size):
            yield from rows
    finally:
        cursor.close()


def _check_contact_chains(
    problems: _Problems, prunes: dict[date, LedgerSeal], chunk_size: int
) -> None:
    """Pass C, in SQL: each contact's chain (`contact_seq` without gaps, `previous_hash` the
    hash of the contact's previous record) and its head on the contact row. Only mismatches
    come back. A missing predecessor is accepted when a month was pruned."""
    rows = _stream(CHAIN_BREAKS_SQL, [GENESIS_HASH], chunk_size)
    for record_id, record_uuid, seq, _previous_hash, _prev_hash, prev_seq, _version in rows:
        if prev_seq is None and prunes:
            continue
        label = (
            f"tombstone of record #{record_id}"
            if record_uuid is None
            else f"record {uuid.UUID(str(record_uuid))} (#{record_id})"
        )
        if (prev_seq is None and seq != 1) or (prev_seq is not None and seq != prev_seq + 1):
            problems.add(label, "a record of this contact is missing before it")
        else:
            problems.add(label, "link to the previous record is broken")
    emptied = 0
    for contact_id, ledger_seq, ledger_hash, max_seq, last_hash in _stream(
        HEAD_MISMATCHES_SQL, [GENESIS_HASH], chunk_size
    ):
        if max_seq is None and prunes:
            continue
        if max_seq is None:
            emptied += 1
        problems.add(
            f"contact #{contact_id}",
            f"ledger head expects {ledger_seq} record(s) ending in {ledger_hash[:12]}, "
            f"found {max_seq or 0} ending in {(last_hash or GENESIS_HASH)[:12]}",
        )
    if emptied:
        problems.add(
            "ledger",
            f"emptied: {emptied} contact(s) have a chain head but no record remains",
        )


def ledger_verify(
    *, head: str | None = None, chunk_size: int = 2000, max_problems: int = 1000
) -> LedgerReport:
    """Check records, chains and seals, streamed in bounded memory; answer every problem.

    Pass A checks the seals, pass B each record and the seals' counts and digests, pass C each
    contact's chain in SQL. `head` ("NUMBER:SEAL_HASH", kept outside the database from the
    download or the daily email) proves the tail of the seals was not cut off. Records written
    after the last seal are checked too and counted as unsealed, with the oldest one's time.
    """
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            # one snapshot for every pass (a write between two passes is no false alarm), and
            # cursors streamed as they are read (outside a transaction PostgreSQL would first
            # copy a whole result to hold it past the commit)
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return _verify(head=head, chunk_size=chunk_size, max_problems=max_problems)


def ledger_verification_record(
    *, report: LedgerReport, at: datetime | None = None
) -> LedgerVerification:
    """Keep a full check's outcome (when, what it read, how many problems and the first) for
    the DPO's dashboard (GDPR Art. 5(2): the DPO shows the ledger is checked)."""
    return LedgerVerification.objects.create(
        checked_at=at or timezone.now(),
        records=report.records,
        seals=report.seals,
        problem_count=report.problem_count,
        first_problem=str(report[0]) if len(report) else "",
    )


def _verify(*, head: str | None, chunk_size: int, max_problems: int) -> LedgerReport:
    problems = _Problems(limit=max_problems)
    report = LedgerReport()
    prunes, strips, sealed_total = _check_seals(problems, report, chunk_size)
    if head:
        _check_head(problems, head)
    _check_records(problems, report, prunes, strips, chunk_size)
    pruned = sum(seal.record_count for seal in prunes.values())
    found = report.records + report.stripped - report.unsealed
    if report.last_seal is not None and found < sealed_total - pruned:
        problems.add(
            "ledger",
            f"seals count {sealed_total - pruned} record(s) kept, {found} found sealed",
        )
    _check_contact_chains(problems, prunes, chunk_size)
    _check_sealed_in_time(problems, report)
    report.extend(problems.items)
    report.left_off = problems.left_off
    return report


# The sealer runs every minute and a long transaction (an import's batch) only delays it: a
# record left unsealed longer means the sealer stopped, or the seals after it were deleted
# (with the records rewritten, that deletion leaves nothing else to see without `--head`).
UNSEALED_TOLERANCE = timedelta(hours=1)


def _check_sealed_in_time(problems: _Problems, report: LedgerReport) -> None:
    oldest = report.oldest_sealable_at
    if oldest is not None and oldest < timezone.now() - UNSEALED_TOLERANCE:
        problems.add(
            "ledger",
            f"{report.unsealed} record(s) not sealed, the oldest since "
            f"{oldest.astimezone(UTC):%Y-%m-%d %H:%M} "
            "UTC: the sealer stopped, or seals were deleted",
        )


def _check_head(problems: _Problems, head: str) -> None:
    number_text, _sep, expected_hash = head.partition(":")
    if not number_text.isdigit() or len(expected_hash) != 64:
        problems.add("seal head", f"{head!r} is not NUMBER:SEAL_HASH")
        return
    seal = LedgerSeal.objects.filter(number=int(number_text)).first()
    if seal is None:
        problems.add(
            f"seal head #{number_text}",
            "is missing from the database: seals (and records) were cut off",
        )
    elif not hmac.compare_digest(seal.seal_hash, expected_hash):
        problems.add(f"seal head #{number_text}", "differs from the head kept outside")
