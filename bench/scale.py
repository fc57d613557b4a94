# ruff: noqa: S608 - the baselines build SQL from model metadata and constants, never input
"""The scale benchmarks of issue 11: every row of the table, the product beside its baseline in
the same run, medians of `--runs` (3) runs, with queries per unit, peak memory and the load.

Run from the repository root (PostgreSQL must be running; nothing else may use the database
`cd_bench_<row>`, created afresh and dropped at the end unless `--keep`):

    .venv/bin/python bench/scale.py import [--contacts 1000000] [--consent]
    .venv/bin/python bench/scale.py writes [--writes 2000]
    .venv/bin/python bench/scale.py api [--writes 20000] [--clients 1 2 4] [--workers 4]
    .venv/bin/python bench/scale.py audience [--contacts 1000000]
    .venv/bin/python bench/scale.py erasure [--contacts 100000] [--erasures 10000] [--per-person]
    .venv/bin/python bench/scale.py verify [--contacts 1700000]
    .venv/bin/python bench/scale.py pages [options of bench/preference_pages.py]

`audience`, `erasure` and `verify` build the dataset (bench/dataset.py) on their database, or
use one kept by `bench/dataset.py --keep` with `--database NAME` (never dropped).

A row whose product function is not in the code base yet prints "needs <function>", still
measures its baseline, and exits with status 2. Results go to bench/results/<row>-<time>.json.
"""

import argparse
import csv
import http.client
import inspect
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402
from bench.harness import Measure, Missing, Summary, measure, needs, runs_median  # noqa: E402

HOST, PORT = "127.0.0.1", 8795
MISSING: list[str] = []


# ---------------------------------------------------------------------------------------------
# Hand-written SQL: the baselines write the same rows as the product, without the ORM


def written_by_hand(field: Any, auto: type | None = None) -> bool:
    """Whether a hand-written INSERT sets the column: not the id, nor a column the database
    fills itself (`db_default`, such as the ledger's sealing key set by a trigger)."""
    from django.db.models.fields import NOT_PROVIDED

    return (auto is None or not isinstance(field, auto)) and field.db_default is NOT_PROVIDED


def columns_and_values(objects: Sequence[Any]) -> tuple[list[str], list[list[Any]]]:
    """The concrete columns (but the id) of unsaved model instances and their database values."""
    from django.db import connection
    from django.db.models.fields import AutoFieldMixin

    model = type(objects[0])
    fields = [f for f in model._meta.concrete_fields if written_by_hand(f, AutoFieldMixin)]
    rows = [
        [f.get_db_prep_save(getattr(o, f.attname), connection) for f in fields] for o in objects
    ]
    return [f.column for f in fields], rows


def insert_rows(
    cursor: Any, objects: Sequence[Any], *, suffix: str = "", returning: str = ""
) -> list[tuple]:
    """One multi-row `INSERT ... VALUES` for model instances (set-based, by hand)."""
    if not objects:
        return []
    table = type(objects[0])._meta.db_table
    columns, rows = columns_and_values(objects)
    one = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([one] * len(rows))}"
        f" {suffix}" + (f" RETURNING {returning}" if returning else "")
    )
    cursor.execute(sql, [value for row in rows for value in row])
    return cursor.fetchall() if returning else []


STATE_UPSERT = (
    "ON CONFLICT (contact_id, purpose_id, channel) DO UPDATE SET status = EXCLUDED.status, "
    "purpose_version_id = EXCLUDED.purpose_version_id, record_id = EXCLUDED.record_id, "
    "since = EXCLUDED.since, actor = EXCLUDED.actor"
)


def hand_records(
    contacts: Sequence[Any],
    purpose: Any,
    *,
    action: str = "grant",
    status: str = "granted",
    source_kind: str = "api",
    evidence: bool = True,
    now: datetime,
) -> tuple[list[Any], list[Any]]:
    """Unsaved ledger records (hashed, each first in its contact's chain) and their evidence."""
    from consent.ledger import GENESIS_HASH, evidence_digest, record_hash
    from consent.models import ConsentEvidence, ConsentRecord

    version = purpose.current_version
    records, evidences = [], []
    for n, contact in enumerate(contacts):
        personal = None
        if evidence:
            personal = ConsentEvidence(
                nonce=os.urandom(16).hex(),
                ip=f"203.0.113.{n % 250 + 1}",
                user_agent=harness.USER_AGENT,
                document="",
                document_sha256="",
                created_at=now,
            )
        record = ConsentRecord(
            uuid=uuid.uuid4(),
            contact_id=contact.pk,
            purpose_id=purpose.pk,
            purpose_version_id=version.pk,
            channel="email",
            action=action,
            status=status,
            given_at=now,
            recorded_at=now,
            source_kind=source_kind,
            source_reference="https://example.fr/bench",
            wording=version.wording_fr,
            language="fr",
            unticked_by_default=True if evidence else None,
            policy_version="2026-01" if evidence else "",
            evidence_digest=evidence_digest(personal) if personal else "",
            resolves_id=None,
            previous_hash=GENESIS_HASH,
        )
        record.hash = record_hash(record)
        records.append(record)
        evidences.append(personal)
    return records, evidences


def chain_by_hand(cursor: Any, records: Sequence[Any]) -> None:
    """Chain unsaved records as the write path does: each after its contact's head (one chain
    per contact, hash version 2), the heads read in one statement and moved in one UPDATE."""
    from consent.ledger import record_hash
    from consent.models import HashVersion

    if not records:
        return
    ids = sorted({record.contact_id for record in records})
    cursor.execute(
        "SELECT id, ledger_seq, ledger_hash FROM contacts_contact WHERE id = ANY(%s)", [ids]
    )
    heads = {contact_id: (seq, head) for contact_id, seq, head in cursor.fetchall()}
    for record in records:
        seq, head = heads[record.contact_id]
        record.contact_seq, record.previous_hash = seq + 1, head
        record.hash_version = HashVersion.PER_CONTACT
        record.hash = record_hash(record)
        heads[record.contact_id] = (seq + 1, record.hash)
    values = ", ".join(["(%s, %s, %s)"] * len(heads))
    cursor.execute(
        "UPDATE contacts_contact c SET ledger_seq = v.seq, ledger_hash = v.head "
        f"FROM (VALUES {values}) AS v(id, seq, head) WHERE c.id = v.id",
        [x for contact_id, (seq, head) in heads.items() for x in (contact_id, seq, head)],
    )


def hand_consents(cursor: Any, contacts: Sequence[Any], purpose: Any, now: datetime) -> None:
    """What a grant writes (record, evidence, state, timeline, outbox, contact touched), for
    `contacts`, set-based: one statement per table, contacts locked first in id order."""
    from consent.models import ConsentState
    from contacts.models import TimelineEvent
    from crmsync.models import OutboxEvent

    ids = sorted(contact.pk for contact in contacts)
    cursor.execute(
        "SELECT id FROM contacts_contact WHERE id = ANY(%s) ORDER BY id FOR UPDATE", [ids]
    )
    cursor.fetchall()
    records, evidences = hand_records(contacts, purpose, now=now)
    chain_by_hand(cursor, records)
    returned = dict(insert_rows(cursor, records, returning="uuid, id"))
    for record in records:
        record.id = returned[record.uuid]
    evidence = []
    for record, personal in zip(records, evidences, strict=True):
        if personal is not None:
            personal.record_id = record.id
            evidence.append(personal)
    insert_rows(cursor, evidence)
    insert_rows(
        cursor,
        [
            ConsentState(
                contact_id=r.contact_id,
                purpose_id=r.purpose_id,
                channel=r.channel,
                status=r.status,
                purpose_version_id=r.purpose_version_id,
                record_id=r.id,
                since=now,
                actor=r.actor,
            )
            for r in records
        ],
        suffix=STATE_UPSERT,
    )
    insert_rows(
        cursor,
        [
            TimelineEvent(
                contact_id=r.contact_id,
                kind="consent_changed",
                summary=f"{purpose.slug}/email: granted",
                occurred_at=now,
                data={"record": str(r.uuid), "action": "grant", "source": "api"},
            )
            for r in records
        ],
    )
    public_ids = {contact.pk: contact.public_id for contact in contacts}
    insert_rows(
        cursor,
        [
            OutboxEvent(
                id=uuid.uuid4(),
                topic="consent.recorded",
                contact_public_id=public_ids[r.contact_id],
                payload={
                    "record": str(r.uuid),
                    "purpose": purpose.slug,
                    "version": 1,
                    "channel": "email",
                    "action": "grant",
                    "status": "granted",
                    "given_at": now.isoformat(),
                },
                created_at=now,
                attempts=0,
                last_error="",
            )
            for r in records
        ],
    )
    cursor.execute(
        "UPDATE contacts_contact SET last_activity_at = %s WHERE id = ANY(%s)", [now, ids]
    )


def contacts_make(count: int, prefix: str) -> list[Any]:
    """`count` plain contacts in bulk (no consent yet), for the write rows."""
    from contacts.models import Contact

    contacts: list[Any] = []
    for start in range(0, count, 5000):
        contacts += Contact.objects.bulk_create(
            Contact(email=f"{prefix}{n}@example.net", first_name="Alex", last_name=f"N{n}")
            for n in range(start, min(count, start + 5000))
        )
    return contacts


def report(
    row: str,
    summaries: dict[str, Summary],
    *,
    unit: str,
    extra: dict | None = None,
    by: str = "rate",
) -> None:
    """Print the row (medians, ratios to the baseline) and save it with the machine's load."""
    print()
    print(
        f"| side | median {unit}/s | median s | queries/unit | peak RSS growth "
        "| CPU µs a unit: Python / PostgreSQL backend | loads |"
    )
    print("|---|---|---|---|---|---|---|")
    print(harness.summary_line(summaries, unit=unit))
    baseline = summaries.get("baseline")
    ratios = {}
    if baseline is not None:
        for name, summary in summaries.items():
            if name == "baseline":
                continue
            if by == "rate":  # throughput rows: the product's rate as a share of the baseline's
                ratios[name] = round(summary.rate / baseline.rate, 3) if baseline.rate else 0.0
                print(f"rate {name} / baseline: {ratios[name]:.3f}x")
            else:  # time rows: how many times the baseline's time the product takes
                ratios[name] = round(summary.seconds / baseline.seconds, 3)
                print(f"time {name} / baseline: {ratios[name]:.2f}x")
    for needed in MISSING:
        print(f"product: {needed}")
    path = harness.result_save(
        row,
        {
            "args": {k: v for k, v in vars(ARGS).items() if k != "handler"},
            "sides": {name: summary.as_dict() for name, summary in summaries.items()},
            "ratios": ratios,
            "missing": MISSING,
            **(extra or {}),
        },
    )
    print(f"saved {path.relative_to(harness.ROOT)}")


# ---------------------------------------------------------------------------------------------
# Row: single consent writes, the domain function vs hand SQL, one transaction each


def row_writes() -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    from consent.services import consent_record

    purpose = harness.purpose_create("offers")
    count = ARGS.writes
    pool = contacts_make(2 * ARGS.runs * count, "writes")

    def product(run: int) -> Measure:
        contacts = pool[2 * run * count : (2 * run + 1) * count]

        def go() -> None:
            for n, contact in enumerate(contacts):
                consent_record(
                    write=harness.grant_write(contact, purpose, "email", n, source_kind="api")
                )

        return measure(go, units=count, label=f"product run {run + 1}")

    def baseline(run: int) -> Measure:
        contacts = pool[(2 * run + 1) * count : (2 * run + 2) * count]

        def go() -> None:
            with connection.cursor() as cursor:
                for contact in contacts:
                    with transaction.atomic():
                        hand_consents(cursor, [contact], purpose, timezone.now())

        return measure(go, units=count, label=f"baseline run {run + 1}")

    summaries = runs_median({"product": product, "baseline": baseline}, runs=ARGS.runs)
    report("writes", summaries, unit="writes")


# ---------------------------------------------------------------------------------------------
# Row: API arrays of 500 consents with 1, 2, 4 clients vs the same rows set-based by hand


def row_api() -> None:
    from django.db import connection, connections, transaction
    from django.utils import timezone

    from core.models import ApiClient

    purpose = harness.purpose_create("offers")
    client = ApiClient(name="bench", scopes=["consents:write", "contacts:read"])
    key = client.set_new_key()
    client.save()
    count = ARGS.writes
    pool = contacts_make(2 * ARGS.runs * len(ARGS.clients) * count + 500, "api")
    slices = iter(range(0, len(pool), count))

    def next_slice() -> list[Any]:
        start = next(slices)
        return pool[start : start + count]

    api_queries = _api_queries(key, pool[-500:])
    pool = pool[:-500]
    print(f"SQL queries of one array of 500 (test client, in this process): {api_queries}")
    server = _gunicorn(ARGS.workers)
    try:
        sides: dict[str, Callable[[int], Measure]] = {}
        for clients in ARGS.clients:

            def product(run: int, clients: int = clients) -> Measure:
                contacts = next_slice()
                parts = [contacts[i::clients] for i in range(clients)]

                def go() -> dict[str, Any]:
                    failures: list[int] = []
                    _in_threads(_post_arrays, [(key, part, failures) for part in parts])
                    return {"failures": len(failures)}

                return measure(go, units=count, label=f"API, {clients} clients, run {run + 1}")

            def baseline(run: int, clients: int = clients) -> Measure:
                contacts = next_slice()
                parts = [contacts[i::clients] for i in range(clients)]

                counted = [0]

                def write(part: list[Any]) -> None:
                    try:
                        with harness.counting_queries(counted), connection.cursor() as cursor:
                            for start in range(0, len(part), 500):
                                with transaction.atomic():
                                    hand_consents(
                                        cursor,
                                        part[start : start + 500],
                                        purpose,
                                        timezone.now(),
                                    )
                    finally:
                        connections.close_all()

                def go() -> dict[str, int]:
                    _in_threads(write, [(part,) for part in parts])
                    return {"queries": counted[0]}

                return measure(go, units=count, label=f"hand, {clients} clients, run {run + 1}")

            sides[f"API arrays of 500, {clients} clients"] = product
            sides[f"baseline, {clients} clients"] = baseline
        summaries = runs_median(sides, runs=ARGS.runs)
    finally:
        server.terminate()
        server.wait(timeout=20)
    print()
    print("| clients | API consents/s | hand set-based consents/s | ratio |")
    print("|---|---|---|---|")
    ratios = {}
    for clients in ARGS.clients:
        api = summaries[f"API arrays of 500, {clients} clients"]
        hand = summaries[f"baseline, {clients} clients"]
        ratios[clients] = round(api.rate / hand.rate, 3)
        print(f"| {clients} | {api.rate:,.1f} | {hand.rate:,.1f} | {ratios[clients]:.3f} |")
    failures = [m.extra.get("failures", 0) for s in summaries.values() for m in s.runs]
    print(f"failed API requests: {sum(failures)}")
    print(f"API: {api_queries / 500:.2f} SQL queries per consent (one array of 500)")
    report(
        "api",
        summaries,
        unit="consents",
        extra={"ratios_by_clients": ratios, "api_queries_per_array_of_500": api_queries},
    )


def _api_queries(key: str, contacts: list[Any]) -> int:
    """The SQL statements of one array of 500 through the API, counted in this process with
    the test client (the server's own are out of reach)."""
    from django.test import Client

    client = Client(HTTP_HOST=HOST, HTTP_AUTHORIZATION=f"Token {key}")
    counter = [0]
    with harness.counting_queries(counter):
        response = client.post(
            "/api/v1/consents/", json.dumps(_array(contacts)), content_type="application/json"
        )
    assert response.status_code == 201, response.content[:500]
    return counter[0]


def _gunicorn(workers: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "-b",
            f"{HOST}:{PORT}",
            "-w",
            str(workers),
            "--log-level",
            "warning",
            "--timeout",
            "600",  # an array waits its turn on the ledger lock: no worker killed meanwhile
        ],
        cwd=harness.ROOT,
    )
    for _attempt in range(200):
        try:
            connection = http.client.HTTPConnection(HOST, PORT, timeout=1)
            connection.request("GET", "/api/schema/")
            connection.getresponse().read()
            return server
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError("gunicorn did not start")


def _in_threads(target: Callable[..., None], arguments: list[tuple]) -> None:
    threads = [threading.Thread(target=target, args=args) for args in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _post_arrays(key: str, contacts: list[Any], failures: list[int]) -> None:
    connection = http.client.HTTPConnection(HOST, PORT, timeout=300)
    headers = {"Authorization": f"Token {key}", "Content-Type": "application/json"}
    for start in range(0, len(contacts), 500):
        body = _array(contacts[start : start + 500])
        connection.request("POST", "/api/v1/consents/", json.dumps(body), headers)
        response = connection.getresponse()
        response.read()
        if response.status != 201:
            failures.append(response.status)


def _array(contacts: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "contact": str(contact.public_id),
            "purpose": "offers",
            "channel": "email",
            "action": "grant",
            "source": {"kind": "api", "reference": "https://example.fr/bench"},
            "evidence": {
                "wording": "J'accepte de recevoir offers.",
                "unticked_by_default": True,
                "policy_version": "2026-01",
                "ip": "203.0.113.9",
                "user_agent": harness.USER_AGENT,
            },
        }
        for contact in contacts
    ]


# ---------------------------------------------------------------------------------------------
# Row: eligible audience count for (purpose, channel) vs hand SQL with a suitable index


# The index of the audience count: the granted states of one (purpose, channel), with the
# contact id inside, so the count reads the index alone for the consent side. The schema has
# it (migration consent.0013); the row drops it for its first pass and creates it again.
AUDIENCE_INDEX = (
    "CREATE INDEX IF NOT EXISTS consent_state_granted_audience ON consent_consentstate "
    "(purpose_id, channel, contact_id) INCLUDE (purpose_version_id) WHERE status = 'granted'"
)


def audience_sql(purpose: Any, channel: str, at: datetime) -> tuple[str, list[Any]]:
    """`eligible_contacts(purpose, channel, at).count()` written by hand, for a consent-based
    purpose without profiling (what the dataset's newsletter is)."""
    from consent.eligibility import frequency_limits

    assert purpose.legal_basis == "consent" and not purpose.is_profiling
    replaced = sorted(purpose.replaced_version_ids()) or [0]
    deliverable = {
        "email": "c.email_deliverability = 'deliverable'",
        "sms": "c.phone <> ''",
    }[channel]
    frequency, params = [], []
    for limit in frequency_limits(at):
        frequency.append(
            "(SELECT count(*) FROM (SELECT 1 FROM consent_messagesent m WHERE m.contact_id = c.id"
            " AND m.channel = %s AND m.sent_at > %s AND m.sent_at <= %s LIMIT %s) q) >= %s"
            + (" AND c.frequency = %s" if limit.frequency else "")
        )
        params += [channel, limit.since, at, limit.count, limit.count]
        params += [limit.frequency] if limit.frequency else []
    sql = f"""
        SELECT count(*) FROM contacts_contact c
        JOIN consent_consentstate s ON s.contact_id = c.id AND s.purpose_id = %s
            AND s.channel = %s AND s.status = 'granted' AND s.purpose_version_id <> ALL(%s)
        WHERE c.status <> 'erased'
          AND (c.paused_until IS NULL OR c.paused_until <= %s)
          AND c.processing_restricted_at IS NULL
          AND {deliverable}
          AND NOT (c.is_minor AND c.guardian_consent_evidence !~ '\\S')
          AND NOT EXISTS (SELECT 1 FROM contacts_suppression x WHERE x.digest = c.email_digest)
          AND NOT EXISTS (SELECT 1 FROM contacts_suppression x
                          WHERE x.digest = c.email_quoted_digest)
          AND NOT EXISTS (SELECT 1 FROM contacts_suppression x WHERE x.digest = c.phone_digest)
          {"".join(f" AND NOT ({condition})" for condition in frequency)}
    """
    return sql, [purpose.pk, channel, replaced, at, *params]


def row_audience() -> None:
    from django.db import connection
    from django.utils import timezone

    from bench.dataset import dataset_build
    from consent.eligibility import eligible_contacts, ineligible_counts
    from consent.models import Purpose
    from consent.selectors import purposes_with_versions
    from contacts.models import Contact

    built = _dataset(dataset_build)
    purpose = purposes_with_versions().get(slug=ARGS.purpose)
    assert isinstance(purpose, Purpose)
    at = timezone.now()
    counts: dict[str, int] = {}

    def side(name: str, count: Callable[[], int]) -> Callable[[int], Measure]:
        def run(number: int) -> Measure:
            def go() -> dict[str, Any]:
                counts[name] = count()
                return {"count": counts[name]}

            return measure(go, units=1, label=f"{name} run {number + 1}")

        return run

    def hand() -> int:
        sql, params = audience_sql(purpose, ARGS.channel, at)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()[0]

    product = side(
        "eligible_contacts().count()", lambda: eligible_contacts(purpose, ARGS.channel, at).count()
    )
    reasons = side("ineligible_counts()", lambda: len(ineligible_counts(purpose, ARGS.channel, at)))
    before: dict[str, Any] = {}
    if not ARGS.indexed_only:
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX IF EXISTS consent_state_granted_audience")
            cursor.execute("ANALYZE")
        before = runs_median(
            {"product, no new index": product, "reasons, no new index": reasons}, runs=ARGS.runs
        )
    with connection.cursor() as cursor:
        cursor.execute(AUDIENCE_INDEX)
        cursor.execute("ANALYZE consent_consentstate")
        cursor.execute(
            f"EXPLAIN ANALYZE {audience_sql(purpose, ARGS.channel, at)[0]}",
            audience_sql(purpose, ARGS.channel, at)[1],
        )
        plan = "\n".join(line for (line,) in cursor.fetchall())
    after = runs_median(
        {"product": product, "ineligible_counts": reasons, "baseline": side("baseline", hand)},
        runs=ARGS.runs,
    )
    agree = counts["eligible_contacts().count()"] == counts["baseline"]
    print(
        f"audience: {counts['baseline']:,} eligible of {Contact.objects.count():,} contacts; "
        f"product and hand SQL agree: {agree}"
    )
    print(f"proposed index: {AUDIENCE_INDEX}")
    report(
        "audience",
        {**before, **after},
        unit="counts",
        by="time",
        extra={
            "dataset": built,
            "counts": counts,
            "agree": agree,
            "index": AUDIENCE_INDEX,
            "baseline_plan": plan,
        },
    )


def _dataset(build: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """Build the dataset of `--contacts` on this row's database, or use the one already in
    `--database` (built by `bench/dataset.py --keep`)."""
    from bench.dataset import dataset_counts

    if ARGS.database:
        counts = dataset_counts()
        print(f"dataset: the one in {ARGS.database}: {counts}", flush=True)
        return {"reused": ARGS.database, **counts}
    started = time.perf_counter()
    built = build(n=ARGS.contacts, progress=True)
    built["seconds"] = time.perf_counter() - started
    print(
        f"dataset: {ARGS.contacts:,} contacts, {built['writes']:,} consent writes in "
        f"{built['seconds']:.1f} s ({built['timings']})",
        flush=True,
    )
    return built


# ---------------------------------------------------------------------------------------------
# Row: erasure of 10,000 contacts, set-based product vs set-based SQL by hand


def row_erasure() -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    from bench.dataset import dataset_build
    from contacts.models import Contact

    built = _dataset(dataset_build)
    count = ARGS.erasures
    sides_wanted = 2 + bool(ARGS.per_person)
    ids = list(Contact.objects.filter(status="active").order_by("id").values_list("id", flat=True))[
        : sides_wanted * ARGS.runs * count
    ]
    if len(ids) < sides_wanted * ARGS.runs * count:
        raise SystemExit(f"--contacts too small: {sides_wanted * ARGS.runs * count} needed")
    slices = iter(range(0, len(ids), count))

    def next_ids() -> list[int]:
        start = next(slices)
        return ids[start : start + count]

    sides: dict[str, Callable[[int], Measure]] = {}
    try:
        erase_many = needs("privacy.services", "contacts_erase_many")
    except Missing as missing:
        MISSING.append(str(missing))
        erase_many = None
    if erase_many is not None:

        def product(run: int) -> Measure:
            batch = next_ids()
            return measure(
                lambda: _erase_many(erase_many, batch),
                units=count,
                label=f"contacts_erase_many run {run + 1}",
            )

        sides["product (set-based)"] = product
    if ARGS.per_person:
        from privacy.services import contact_erase

        def per_person(run: int) -> Measure:
            batch = next_ids()

            def go() -> None:
                for contact in Contact.objects.filter(id__in=batch).iterator(chunk_size=500):
                    contact_erase(contact=contact, reason="bench erasure")

            return measure(go, units=count, label=f"contact_erase one by one run {run + 1}")

        sides["contact_erase, one by one"] = per_person

    def baseline(run: int) -> Measure:
        batch = next_ids()

        def go() -> None:
            with connection.cursor() as cursor:
                for start in range(0, len(batch), 1000):
                    with transaction.atomic():
                        hand_erase(cursor, batch[start : start + 1000], timezone.now())

        return measure(go, units=count, label=f"baseline run {run + 1}")

    sides["baseline"] = baseline
    summaries = runs_median(sides, runs=ARGS.runs)
    erased = Contact.objects.filter(status="erased").count()
    print(f"contacts erased in all: {erased:,}")
    report(
        "erasure", summaries, unit="erasures", by="time", extra={"dataset": built, "erased": erased}
    )
    if MISSING:
        raise SystemExit(2)


def _erase_many(function: Callable[..., Any], ids: list[int]) -> None:
    """Call the set-based erasure with what its signature asks for (contacts or their ids)."""
    from contacts.models import Contact

    parameters = inspect.signature(function).parameters
    kwargs: dict[str, Any] = {}
    if "contact_ids" in parameters:
        kwargs["contact_ids"] = ids
    else:
        kwargs["contacts"] = list(Contact.objects.filter(id__in=ids))
    if "reason" in parameters:
        kwargs["reason"] = "bench erasure"
    function(**kwargs)


def hand_erase(cursor: Any, ids: list[int], now: datetime) -> None:
    """What an erasure writes, for a batch, set-based: live consents withdrawn in the ledger,
    personal evidence and links deleted, email and phone suppressed, the contact anonymised,
    its interests and timeline replaced by one entry, queued outbox payloads deleted and one
    `contact.erased` event."""
    from consent.ledger import GENESIS_HASH
    from consent.models import ConsentRecord
    from contacts.models import Contact
    from contacts.services import PERSONAL_FIELDS

    cursor.execute(
        "SELECT id, public_id FROM contacts_contact WHERE id = ANY(%s) AND status <> 'erased' "
        "ORDER BY id FOR UPDATE",
        [ids],
    )
    public_ids = dict(cursor.fetchall())
    ids = list(public_ids)
    cursor.execute(
        "SELECT s.id, s.contact_id, s.purpose_id, s.channel, s.purpose_version_id "
        "FROM consent_consentstate s WHERE s.contact_id = ANY(%s) "
        "AND s.status IN ('granted', 'pending') FOR UPDATE",
        [ids],
    )
    states = cursor.fetchall()
    records = []
    for _state_id, contact_id, purpose_id, channel, version_id in states:
        record = ConsentRecord(
            uuid=uuid.uuid4(),
            contact_id=contact_id,
            purpose_id=purpose_id,
            purpose_version_id=version_id,
            channel=channel,
            action="withdraw",
            status="withdrawn",
            given_at=now,
            recorded_at=now,
            source_kind="system",
            source_reference="erasure",
            wording="",
            language="fr",
            unticked_by_default=None,
            policy_version="",
            evidence_digest="",
            resolves_id=None,
            previous_hash=GENESIS_HASH,
        )
        records.append(record)
    chain_by_hand(cursor, records)
    returned = dict(insert_rows(cursor, records, returning="uuid, id"))
    if states:
        values = ", ".join(["(%s, %s)"] * len(states))
        cursor.execute(
            f"UPDATE consent_consentstate s SET status = 'withdrawn', record_id = v.record_id, "
            f"since = %s, actor = (SELECT r.actor FROM consent_consentrecord r "
            f"WHERE r.id = v.record_id) "
            f"FROM (VALUES {values}) AS v(state_id, record_id) WHERE s.id = v.state_id",
            [
                now,
                *[
                    x
                    for state, r in zip(states, records, strict=True)
                    for x in (state[0], returned[r.uuid])
                ],
            ],
        )
    cursor.execute(
        "DELETE FROM consent_consentevidence e USING consent_consentrecord r "
        "WHERE e.record_id = r.id AND r.contact_id = ANY(%s)",
        [ids],
    )
    cursor.execute("DELETE FROM preferences_preferencetoken WHERE contact_id = ANY(%s)", [ids])
    cursor.execute(
        "INSERT INTO contacts_suppression (digest, kind, reason, created_at) "
        "SELECT digest, kind, 'erased', %s FROM ("
        " SELECT email_digest AS digest, 'email' AS kind FROM contacts_contact"
        "  WHERE id = ANY(%s) AND email_digest IS NOT NULL"
        " UNION ALL SELECT phone_digest, 'phone' FROM contacts_contact"
        "  WHERE id = ANY(%s) AND phone_digest IS NOT NULL) d "
        "ON CONFLICT (digest) DO UPDATE SET reason = 'erased'",
        [now, ids, ids],
    )
    assignments, params = [], []
    for name in PERSONAL_FIELDS:
        field = Contact._meta.get_field(name)
        if name in ("email", "status", "updated_at"):
            continue
        assignments.append(f"{field.column} = %s")
        params.append(
            None if field.null else field.get_db_prep_save(field.get_default(), cursor.db)
        )
    cursor.execute(
        "UPDATE contacts_contact SET email = 'erased-' || public_id || '@erased.invalid', "
        f"status = 'erased', updated_at = %s, {', '.join(assignments)} WHERE id = ANY(%s)",
        [now, *params, ids],
    )
    cursor.execute("DELETE FROM contacts_contact_interests WHERE contact_id = ANY(%s)", [ids])
    cursor.execute("DELETE FROM contacts_timelineevent WHERE contact_id = ANY(%s)", [ids])
    cursor.execute(
        "INSERT INTO contacts_timelineevent (contact_id, kind, summary, data, occurred_at) "
        "SELECT id, 'erased', 'bench erasure', '{}', %s FROM unnest(%s::bigint[]) AS id",
        [now, ids],
    )
    cursor.execute(
        "DELETE FROM crmsync_outboxevent WHERE contact_public_id = ANY(%s::uuid[]) "
        "AND processed_at IS NULL",
        [[str(p) for p in public_ids.values()]],
    )
    cursor.execute(
        "INSERT INTO crmsync_outboxevent (id, topic, contact_public_id, payload, created_at, "
        "attempts, last_error) SELECT gen_random_uuid(), 'contact.erased', p, "
        "jsonb_build_object('id', p::text, 'status', 'erased'), %s, 0, '' "
        "FROM unnest(%s::uuid[]) AS p",
        [now, [str(p) for p in public_ids.values()]],
    )


# ---------------------------------------------------------------------------------------------
# Row: verify_ledger over the dataset's records vs reading the table once


def ledger_read_once() -> int:
    """The verify row's baseline: every ledger row read once, in id order, through a
    server-side cursor; answers how many."""
    from django.db import connection, transaction

    connection.ensure_connection()
    seen = 0
    with transaction.atomic(), connection.connection.cursor(name="bench_read") as cursor:
        cursor.itersize = 2000
        cursor.execute("SELECT * FROM consent_consentrecord ORDER BY id")
        for _row in cursor:
            seen += 1
    return seen


def row_verify() -> None:
    from bench.dataset import dataset_build
    from consent.ledger import ledger_seal, ledger_verify
    from consent.models import ConsentRecord

    built = _dataset(dataset_build)
    # as in production, where the beat job seals every minute: the records under seals, so
    # that the seals' counts and digests are checked too (once: a kept dataset stays sealed)
    seals = ledger_seal()
    records = ConsentRecord.objects.count()
    print(f"ledger records: {records:,}; {len(seals)} seal(s) made", flush=True)
    problems: list[Any] = []

    def product(run: int) -> Measure:
        def go() -> None:
            problems[:] = ledger_verify()

        return measure(go, units=records, label=f"ledger_verify run {run + 1}")

    def baseline(run: int) -> Measure:
        def go() -> None:
            assert ledger_read_once() == records

        return measure(go, units=records, label=f"reading the table run {run + 1}")

    summaries = runs_median({"product": product, "baseline": baseline}, runs=ARGS.runs)
    print(f"ledger_verify problems: {len(problems)}")
    alone = {
        "ledger_verify": harness.child_measure("consent.ledger:ledger_verify"),
        "reading the table once": harness.child_measure("bench.scale:ledger_read_once"),
    }
    for name, child in alone.items():
        print(
            f"{name}, alone in a fresh process: {child['seconds']:.2f} s, peak RSS "
            f"{child['peak_mb']:.0f} MB ({child['rss_before_mb']:.0f} MB before the call)"
        )
    report(
        "verify",
        summaries,
        unit="records",
        by="time",
        extra={"dataset": built, "records": records, "problems": len(problems)},
    )


# ---------------------------------------------------------------------------------------------
# Row: CSV import of N contacts, without and with one consent each, vs COPY + one upsert


CSV_COLUMNS = ["email", "first_name", "last_name", "country", "phone"]
# Headers the import recognises without a mapping (`consent_date` is an alias of `given_at`);
# the purpose and channel are declared once for the list (`CONSENT_DECLARATION`).
CONSENT_COLUMNS = ["consent_source", "consent_date", "consent_wording"]
CONSENT_DECLARATION = ["--purpose", "offers", "--channel", "email"]


def csv_write(path: Path, count: int, offset: int, *, consent: bool) -> None:
    """A UTF-8 CSV of `count` people, as a list owner exports it."""
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(CSV_COLUMNS + (CONSENT_COLUMNS if consent else []))
        for n in range(offset, offset + count):
            row = [
                f"lead{n}@example.com",
                "Dominique",
                f"Lefèvre{n}",
                "FR",
                f"+336{n:08d}" if n % 2 else "",  # valid French mobiles (+33 6 0x)
            ]
            if consent:
                row += [
                    "https://example.fr/salon-2026",
                    "2026-03-14",
                    "J'accepte de recevoir offers.",
                ]
            writer.writerow(row)


def row_import() -> None:
    from django.core.management import call_command, get_commands

    purpose = harness.purpose_create("offers")
    pgcrypto_create()
    directory = Path(tempfile.mkdtemp(prefix="cd_bench_import_"))
    count, consent = ARGS.contacts, ARGS.consent
    files = iter(range(3 * ARGS.runs))

    def next_file() -> Path:
        number = next(files)
        path = directory / f"list{number}.csv"
        csv_write(path, count, number * count, consent=consent)
        return path

    sides: dict[str, Callable[[int], Measure]] = {}
    if "import_contacts" in get_commands():

        def product(run: int) -> Measure:
            path = next_file()
            extra = (CONSENT_DECLARATION if consent else []) + (
                ARGS.import_args.split() if ARGS.import_args else []
            )
            return measure(
                lambda: call_command("import_contacts", str(path), *extra, stdout=io.StringIO()),
                units=count,
                label=f"import_contacts run {run + 1}",
            )

        sides["product (manage.py import_contacts)"] = product
    else:
        MISSING.append(
            "needs manage.py import_contacts (contacts.imports, not in this code base yet)"
        )

    def baseline(run: int) -> Measure:
        path = next_file()
        return measure(
            lambda: hand_import(path, purpose if consent else None),
            units=count,
            label=f"COPY + upsert run {run + 1}",
        )

    sides["baseline"] = baseline

    def checks_only(run: int) -> Measure:
        path = next_file()
        return measure(
            lambda: row_checks(path, purpose if consent else None),
            units=count,
            label=f"row checks only run {run + 1}",
        )

    if ARGS.checks:
        sides["row checks only (ceiling)"] = checks_only
    try:
        summaries = runs_median(sides, runs=ARGS.runs)
    finally:
        for path in directory.iterdir():
            path.unlink()
        directory.rmdir()
    report("import-consent" if consent else "import", summaries, unit="contacts")
    if MISSING:
        raise SystemExit(2)


def row_checks(path: Path, purpose: Any) -> dict[str, Any]:
    """The product's own checks of each row (`contacts.imports._parse_row`: email and phone
    validated and normalised, fields cleaned, the consent's evidence checked), nothing
    written: a ceiling on any import that validates what this one validates."""
    from contacts.imports import _parse_row, _Plan

    with path.open(newline="") as file:
        reader = csv.reader(file)
        header = next(reader)
        mapping = {"consent_date": "given_at"}
        plan = _Plan(
            columns=[(index, mapping.get(name, name)) for index, name in enumerate(header)],
            purpose=purpose,
            channel="email" if purpose else "",
            wording="",
            source_reference="",
            interests={},
        )
        rejected = sum(
            isinstance(_parse_row(plan, line, cells), str)
            for line, cells in enumerate(reader, start=2)
        )
    assert rejected == 0, f"{rejected} rows rejected"
    return {}


def pgcrypto_create() -> None:
    """pgcrypto's `hmac()` for the suppression digests of the hand import."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")


def hand_import(path: Path, purpose: Any) -> dict[str, Any]:
    """COPY the file into a staging table, then one INSERT ... ON CONFLICT into the contacts
    (normalised email, suppression digests by pgcrypto's HMAC, every column's default); with
    `purpose`, the ledger rows too: one record per new contact (hashed in Python, streamed in
    by COPY) and its consent state by one INSERT ... SELECT. Needs `pgcrypto_create()`."""
    from django.conf import settings
    from django.db import connection, transaction

    from contacts.models import Contact

    consent = purpose is not None
    staging = CSV_COLUMNS + (CONSENT_COLUMNS if consent else [])
    now = datetime.now().astimezone()
    skip = {
        "id",
        "email",
        "first_name",
        "last_name",
        "country",
        "phone",
        "email_digest",
        "email_quoted_digest",
        "phone_digest",
        "public_id",
        "created_at",
        "updated_at",
    }
    defaults = [
        (f.column, f.get_db_prep_save(f.get_default(), connection))
        for f in Contact._meta.concrete_fields
        if f.column not in skip
    ]
    key = settings.SUPPRESSION_HMAC_KEY
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE staging ({', '.join(f'{c} text' for c in staging)}) ON COMMIT DROP"
        )
        with path.open() as file:
            cursor.copy_expert(
                f"COPY staging ({', '.join(staging)}) FROM STDIN WITH (FORMAT csv, HEADER true)",
                file,
            )
        cursor.execute("ANALYZE staging")
        digest = "encode(hmac(%s || {0}, %s, 'sha256'), 'hex')"
        email = "lower(trim(email))"
        quoted = f"'\"' || split_part({email}, '@', 1) || '\"@' || split_part({email}, '@', 2)"
        cursor.execute(
            f"""
            INSERT INTO contacts_contact (email, first_name, last_name, country, phone,
                email_digest, email_quoted_digest, phone_digest, public_id, created_at,
                updated_at, {", ".join(c for c, _v in defaults)})
            SELECT DISTINCT ON ({email}) {email}, first_name, last_name, country,
                coalesce(phone, ''),
                {digest.format(email)}, {digest.format(quoted)},
                CASE WHEN coalesce(phone, '') = '' THEN NULL ELSE {digest.format("phone")} END,
                gen_random_uuid(), %s, %s, {", ".join(["%s"] * len(defaults))}
            FROM staging
            ON CONFLICT (email) DO NOTHING
            RETURNING id
            """,
            ["email:", key, "email:", key, "phone:", key, now, now, *[v for _c, v in defaults]],
        )
        new_ids = [row[0] for row in cursor.fetchall()]
        phases = {"contacts": time.perf_counter() - started}
        if consent:
            _hand_import_ledger(cursor, purpose, new_ids, now, phases)
    phases["commit"] = time.perf_counter() - started
    return {"phases": {name: round(seconds, 3) for name, seconds in phases.items()}}


NULL = "\\N"  # COPY's NULL marker, apart from the empty string


def _hand_import_ledger(
    cursor: Any, purpose: Any, ids: list[int], now: datetime, phases: dict[str, float]
) -> None:
    """The ledger rows of an import by hand: hashed in Python, streamed in by COPY, and the
    states by one INSERT ... SELECT; `phases` gets the seconds of each step."""
    started = time.perf_counter()
    from consent.ledger import GENESIS_HASH, record_hash
    from consent.models import ConsentRecord

    version = purpose.current_version
    fields = [
        f for f in ConsentRecord._meta.concrete_fields if f.column != "id" and written_by_hand(f)
    ]
    columns, attnames = [f.column for f in fields], [f.attname for f in fields]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    cursor.execute(
        "SELECT c.id, s.consent_source, s.consent_date, s.consent_wording FROM contacts_contact c"
        " JOIN staging s ON lower(trim(s.email)) = c.email WHERE c.id = ANY(%s)",
        [ids],
    )
    for contact_id, source, date, wording in cursor.fetchall():
        given = datetime.fromisoformat(date).astimezone()
        record = ConsentRecord(
            uuid=uuid.uuid4(),
            contact_id=contact_id,
            purpose_id=purpose.pk,
            purpose_version_id=version.pk,
            channel="email",
            action="grant",
            status="granted",
            given_at=given,
            recorded_at=now,
            source_kind="import",
            source_reference=source,
            wording=wording,
            language="fr",
            unticked_by_default=True,
            policy_version="",
            evidence_digest="",
            resolves_id=None,
            contact_seq=1,  # the first record of the contact's own chain
            previous_hash=GENESIS_HASH,
        )
        record.hash = record_hash(record)
        writer.writerow(
            [NULL if value is None else value for value in (getattr(record, a) for a in attnames)]
        )
    phases["records hashed"] = time.perf_counter() - started
    buffer.seek(0)
    cursor.copy_expert(
        f"COPY consent_consentrecord ({', '.join(columns)}) FROM STDIN "
        f"WITH (FORMAT csv, NULL '{NULL}')",
        buffer,
    )
    phases["records copied"] = time.perf_counter() - started
    cursor.execute(
        "UPDATE contacts_contact AS c SET ledger_seq = r.contact_seq, ledger_hash = r.hash "
        "FROM consent_consentrecord AS r JOIN unnest(%s::bigint[]) AS new(id) "
        "ON r.contact_id = new.id WHERE r.contact_id = c.id AND r.purpose_id = %s",
        [ids, purpose.pk],
    )
    phases["chain heads"] = time.perf_counter() - started
    cursor.execute(
        "INSERT INTO consent_consentstate (contact_id, purpose_id, channel, status, "
        "purpose_version_id, record_id, since, actor) SELECT contact_id, purpose_id, channel, "
        "status, purpose_version_id, r.id, recorded_at, r.actor FROM consent_consentrecord AS r "
        # joined to the new ids (an index look-up each) rather than `= ANY(array)`, which the
        # planner read as a scan of every record of the purpose: minutes at 300,000 records
        "JOIN unnest(%s::bigint[]) AS new(id) ON r.contact_id = new.id "
        f"WHERE r.purpose_id = %s {STATE_UPSERT}",
        [ids, purpose.pk],
    )
    phases["states"] = time.perf_counter() - started


# ---------------------------------------------------------------------------------------------
# Row: the recipient pages (the existing script, run as it is)


def row_pages(extra: list[str]) -> None:
    script = Path(__file__).resolve().parent / "preference_pages.py"
    subprocess.run([sys.executable, str(script), *extra], cwd=harness.ROOT, check=True)


ROWS: dict[str, Callable[[], None]] = {
    "writes": row_writes,
    "api": row_api,
    "audience": row_audience,
    "erasure": row_erasure,
    "verify": row_verify,
    "import": row_import,
}


def main() -> None:
    print(f"row {ARGS.row}: {harness.machine()}", flush=True)
    if getattr(ARGS, "database", ""):  # a kept dataset: used as it is, never dropped
        harness.configure(database=ARGS.database)
        harness.django_setup()
        ROWS[ARGS.row]()
        return
    harness.configure(database=f"{harness.PREFIX}{ARGS.row.replace('-', '_')}")
    with harness.bench_database(keep=ARGS.keep):
        ROWS[ARGS.row]()


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    rows = parser.add_subparsers(dest="row", required=True)

    def row(name: str, **defaults: Any) -> argparse.ArgumentParser:
        sub = rows.add_parser(name)
        sub.add_argument("--runs", type=int, default=3, help="runs per side (median)")
        sub.add_argument("--keep", action="store_true", help="keep the database afterwards")
        for option, value in defaults.items():
            sub.add_argument(f"--{option.replace('_', '-')}", type=type(value), default=value)
        return sub

    imports = row("import", contacts=1_000_000, import_args="")
    imports.add_argument("--consent", action="store_true", help="one consent per row")
    imports.add_argument(
        "--checks",
        action="store_true",
        help="also time the product's row checks alone (nothing written): the ceiling",
    )
    row("writes", writes=2000)
    api = row("api", writes=20_000, workers=4)
    api.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4])
    audience = row("audience", contacts=1_000_000, purpose="newsletter", channel="email")
    audience.add_argument(
        "--indexed-only",
        action="store_true",
        help="skip the runs without the audience index (in the schema since consent.0013)",
    )
    erasure = row("erasure", contacts=100_000, erasures=10_000)
    erasure.add_argument(
        "--per-person",
        action="store_true",
        help="also time contact_erase one by one (slow: 430 s per 10,000)",
    )
    verify = row("verify", contacts=1_700_000)
    for sub in (audience, erasure, verify):
        sub.add_argument(
            "--database",
            default="",
            help="use the dataset kept in this database (bench/dataset.py --keep) instead of "
            "building one; it is not dropped (erasure erases some of its contacts)",
        )
    rows.add_parser("pages", help="bench/preference_pages.py, with its own options")
    if argv[:1] == ["pages"]:
        return parser.parse_args(["pages"]), argv[1:]
    return parser.parse_args(argv), []


if __name__ == "__main__":
    ARGS, REST = parse(sys.argv[1:])
    if ARGS.row == "pages":
        row_pages(REST)
    else:
        main()
