# ruff: noqa: S608 - the baselines build SQL from model metadata and constants, never input
"""The campaign benchmarks of issue 13: the product beside a hand-written baseline in the same
run, medians of `--runs` (3) runs interleaved, with the load beside each run.

Run from the repository root (PostgreSQL must be running):

    .venv/bin/python bench/campaigns.py audience --database cd_bench_dataset [--contacts N]
    .venv/bin/python bench/campaigns.py send [--emails 100000] [--batch-size 500]

- `audience`: on the million-contact dataset kept by `bench/dataset.py --keep` (`--database`,
  read only: every row written is in a transaction rolled back), or on a dataset of
  `--contacts` built in `cd_bench_camp_audience` (dropped afterwards unless `--keep`). For a
  newsletter campaign with one email step, without a segment and then with the segment
  country FR + language fr: `campaign_audience` (eligible and excluded per first reason)
  against the same count by hand, the eligible count `eligible_contacts(...).count()` against
  the same count by hand, the eligible ids streamed from `eligible_contacts(...).values_list("pk")
  .iterator(chunk_size=...)` against the same ids by hand through a server-side cursor, and
  `step_begin`'s `INSERT ... SELECT` of the recipient rows (each run rolled back) against
  the same rows written by one hand-written `INSERT ... SELECT`.
- `send`: `--emails` eligible contacts (ledger-backed grants through `consents_record_many`)
  in `cd_bench_camp_send`; the product sends a campaign to all of them through
  `campaign_send` and the batch tasks on 2 Celery worker processes (Redis database
  `--redis-db`, 8), the baseline sends as many messages, built with the standard library's
  `email` package in the loop, by `smtplib` on one connection. Both to a local SMTP sink
  (aiosmtpd) in its own process that counts messages and distinct `Message-ID`s.

Results go to bench/results/campaigns-<row>-<time>.json.
"""

import argparse
import json
import os
import re
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402
from bench.harness import Measure, Summary, measure, runs_median  # noqa: E402

SINK_HOST = "127.0.0.1"
# The sink listens here; the workers' EMAIL_URL names it, so every run's sink takes it again.
SINK_PORT = 8825
QUEUE = "bench_campaigns"
SEGMENT = {"countries": ["FR"], "languages": ["fr"]}
SUBJECT = "Nos nouveautés de novembre"
BODY_TEXT = (
    "Bonjour {{ first_name }},\n\nVoici nos nouveautés du mois, choisies pour vous "
    "({{ interests }}).\n\nÀ bientôt."
)
BODY_HTML = (
    "<html><body><h1>Bonjour {{ first_name }}</h1><p>Voici nos nouveautés du mois, choisies "
    "pour vous ({{ interests }}).</p><p>À bientôt.</p></body></html>"
)
MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


# ---------------------------------------------------------------------------------------------
# Hand-written SQL: the audience, its ids and the recipient rows, without the ORM


def _hand_parts(
    purpose: Any, channel: str, at: datetime, segment: dict[str, list[str]] | None
) -> tuple[dict[str, str], dict[str, list[Any]]]:
    """The pieces of the hand-written eligibility rule for a consent-based purpose without
    profiling (the dataset's newsletter): each reason as a condition on the contact `c` and
    its state for the pair `s`, the segment's filter, and the parameters of each piece. The
    frequency limits are sets of contacts the database hashes once (what a person writing this
    by hand would do; `audience_sql` of scale.py runs a subquery per contact instead)."""
    from consent.eligibility import frequency_limits

    assert purpose.legal_basis == "consent" and not purpose.is_profiling
    frequency, frequency_params = [], []
    for limit in frequency_limits(at, channel):
        assert not limit.consumers_only
        condition = (
            "c.id IN (SELECT m.contact_id FROM consent_messagesent m WHERE m.channel = %s"
            " AND m.sent_at > %s AND m.sent_at <= %s GROUP BY m.contact_id"
            " HAVING count(*) >= %s)"
        )
        frequency_params += [channel, limit.since, at, limit.count]
        if limit.frequency:
            condition += " AND c.frequency = %s"
            frequency_params.append(limit.frequency)
        frequency.append(f"({condition})")
    deliverable = {"email": "c.email_deliverability = 'deliverable'", "sms": "c.phone <> ''"}
    suppressed = " OR ".join(
        f"(c.{field} IS NOT NULL AND c.{field} IN (SELECT digest FROM contacts_suppression))"
        for field in ("email_digest", "email_quoted_digest", "phone_digest")
    )
    where, where_params = ["true"], []
    for column, values in (("country", "countries"), ("language", "languages")):
        if segment and segment.get(values):
            where.append(f"c.{column} = ANY(%s)")
            where_params.append(list(segment[values]))
    parts = {
        "paused": "c.paused_until > %s",
        "replaced": "s.purpose_version_id = ANY(%s)",
        "suppressed": suppressed,
        "undeliverable": f"NOT ({deliverable[channel]})",
        "minor": "c.is_minor AND c.guardian_consent_evidence !~ '\\S'",
        "frequency": " OR ".join(frequency) or "false",
        "segment": " AND ".join(where),
    }
    params: dict[str, list[Any]] = {
        "at": [at],
        "replaced": [sorted(purpose.replaced_version_ids()) or [0]],
        "frequency": frequency_params,
        "pair": [purpose.pk, channel],
        "segment": where_params,
    }
    return parts, params


def _hand_reasons(
    purpose: Any, channel: str, at: datetime, segment: dict[str, list[str]] | None
) -> tuple[str, list[Any]]:
    """Every contact of the segment with its first reason ('' when eligible), in the order of
    `consent.eligibility.Ineligible`: one pass over the contacts, their state LEFT JOINed."""
    parts, p = _hand_parts(purpose, channel, at, segment)
    sql = f"""
        SELECT c.id, CASE
            WHEN c.status IN ('erased', 'merged') THEN c.status
            WHEN {parts["paused"]} THEN 'paused'
            WHEN c.processing_restricted_at IS NOT NULL THEN 'restricted'
            WHEN s.status IS NULL OR s.status NOT IN ('granted', 'pending') THEN 'no_consent'
            WHEN {parts["replaced"]} THEN 'outdated_wording'
            WHEN s.status = 'pending' THEN 'pending_confirmation'
            WHEN {parts["suppressed"]} THEN 'suppressed'
            WHEN {parts["undeliverable"]} THEN 'undeliverable'
            WHEN {parts["minor"]} THEN 'minor'
            WHEN {parts["frequency"]} THEN 'frequency'
            ELSE '' END AS reason
        FROM contacts_contact c
        LEFT JOIN consent_consentstate s
            ON s.contact_id = c.id AND s.purpose_id = %s AND s.channel = %s
        WHERE {parts["segment"]}
    """
    return sql, [*p["at"], *p["replaced"], *p["frequency"], *p["pair"], *p["segment"]]


def hand_audience_sql(
    purpose: Any,
    channel: str,
    at: datetime,
    segment: dict[str, list[str]] | None = None,
    *,
    select: str = "count(*)",
) -> tuple[str, list[Any]]:
    """The eligible contacts of the segment by hand: `SELECT count(*)` (the preview's count) or
    `SELECT c.id` (the id stream), the eligibility rule as one join and hashed sets."""
    parts, p = _hand_parts(purpose, channel, at, segment)
    sql = f"""
        SELECT {select} FROM contacts_contact c
        JOIN consent_consentstate s ON s.contact_id = c.id AND s.purpose_id = %s
            AND s.channel = %s AND s.status = 'granted' AND s.purpose_version_id <> ALL(%s)
        WHERE c.status NOT IN ('erased', 'merged')
          AND (c.paused_until IS NULL OR c.paused_until <= %s)
          AND c.processing_restricted_at IS NULL
          AND {parts["segment"]}
          AND NOT ({parts["suppressed"]})
          AND NOT ({parts["undeliverable"]})
          AND NOT ({parts["minor"]})
          AND NOT ({parts["frequency"]})
    """
    return sql, [*p["pair"], *p["replaced"], *p["at"], *p["segment"], *p["frequency"]]


def hand_preview_sql(
    purpose: Any, channel: str, at: datetime, segment: dict[str, list[str]] | None = None
) -> tuple[str, list[Any]]:
    """`campaign_audience`'s one step by hand: in one pass over the segment's contacts (their
    state LEFT JOINed), how many have each first reason against them ('' for the eligible),
    as the step's rows will record it (`_hand_reasons`). Answers the SQL and its parameters."""
    reasons, params = _hand_reasons(purpose, channel, at, segment)
    return f"SELECT r.reason, count(*) FROM ({reasons}) r GROUP BY r.reason", params


def hand_preview(
    purpose: Any, channel: str, at: datetime, segment: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """The preview by hand: eligible, and excluded per first reason (those with a count)."""
    from django.db import connection

    sql, params = hand_preview_sql(purpose, channel, at, segment)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        counts = dict(cursor.fetchall())
    return {"eligible": counts.pop("", 0), "excluded": counts}


def hand_recipients_insert(
    campaign: Any, step: Any, at: datetime, segment: dict[str, list[str]] | None
) -> tuple[str, list[Any]]:
    """`step_begin` by hand: one row per contact of the segment, queued when it has no reason
    against it, skipped with its first reason otherwise, in one `INSERT ... SELECT`."""
    reasons, params = _hand_reasons(campaign.purpose, step.channel, at, segment)
    sql = f"""
        INSERT INTO campaigns_recipient (campaign_id, step_id, contact_id, status,
            exclusion_reason, legal_basis, batch, message_id, error, created_at)
        SELECT %s, %s, r.id, CASE WHEN r.reason = '' THEN 'queued' ELSE 'skipped' END,
            r.reason, %s, '', '', '', %s
        FROM ({reasons}) r
        ON CONFLICT DO NOTHING
    """
    return sql, [campaign.pk, step.pk, campaign.purpose.legal_basis, at, *params]


def hand_ids(sql: str, params: list[Any], chunk_size: int) -> tuple[int, int]:
    """Stream the ids of `sql` through a server-side cursor, `chunk_size` rows a fetch (as
    Django's `iterator(chunk_size=...)` does); answers their count and sum."""
    from django.db import connection, transaction

    count = total = 0
    # in a transaction, as Django's iterator is in the benchmark (a cursor outside one would
    # have to be WITH HOLD: its whole result copied at the DECLARE's commit)
    with transaction.atomic(), connection.connection.cursor(name="bench_hand_ids") as cursor:
        cursor.itersize = chunk_size
        cursor.execute(sql, params)
        for (contact_id,) in cursor:
            count += 1
            total += contact_id
    return count, total


# ---------------------------------------------------------------------------------------------
# Row: the audience of a campaign at a million contacts


class _Rollback(Exception):
    pass


@contextmanager
def rolled_back() -> Iterator[None]:
    """A savepoint whose writes are always undone."""
    from django.db import transaction

    try:
        with transaction.atomic():
            yield
            raise _Rollback
    except _Rollback:
        pass


def campaign_for(purpose: Any, segment: dict[str, list[str]] | None) -> Any:
    """A draft newsletter campaign with one email step, through `campaign_create`."""
    from campaigns.services import SegmentCriteria, campaign_create

    return campaign_create(
        name="Bench " + ("+".join(v for values in segment.values() for v in values) or "all")
        if segment
        else "Bench all",
        purpose=purpose,
        steps=[
            {
                "channel": "email",
                "subject_fr": SUBJECT,
                "body_text_fr": BODY_TEXT,
                "body_html_fr": BODY_HTML,
            }
        ],
        criteria=SegmentCriteria(**segment) if segment else None,
    )


def row_audience() -> None:
    from django.db import transaction
    from django.utils import timezone

    from consent.selectors import purposes_with_versions
    from contacts.models import Contact

    built = _dataset()
    purpose = purposes_with_versions().get(slug=ARGS.purpose)
    at = timezone.now()
    results: dict[str, Any] = {"dataset": built, "chunk_size": ARGS.chunk_size, "checks": {}}
    summaries: dict[str, Summary] = {}
    with transaction.atomic():  # nothing of this row stays in the database
        total = Contact.objects.count()
        for label, segment in (("no segment", None), ("FR+fr", SEGMENT)):
            measured, checks, ratios = audience_sides(purpose, at, label, segment)
            summaries.update(measured)
            results["checks"][label] = {"contacts": total, **checks}
            results["ratios_" + label] = ratios
            print(json.dumps(checks | {"step_begin_plan": "..."}, indent=1))
            print(json.dumps(ratios), flush=True)
        transaction.set_rollback(True)
    report("audience", summaries, results)


def audience_sides(
    purpose: Any, at: datetime, label: str, segment: dict[str, list[str]] | None
) -> tuple[dict[str, Summary], dict[str, Any], dict[str, float]]:
    """The three pairs of one campaign (`segment`), each run rolled back: the medians, what
    each side found (they must agree) and the ratios of the product's time to the baseline's."""
    from django.db import connection

    from campaigns.selectors import campaign_audience, segment_contacts
    from campaigns.sending import step_begin
    from consent.eligibility import eligible_contacts

    campaign = campaign_for(purpose, segment)
    step = campaign.steps.get()
    chunk = ARGS.chunk_size
    seen: dict[str, Any] = {}

    def side(
        name: str, work: Callable[[], Any], check: Callable[[], Any] | None = None
    ) -> Callable[[int], Measure]:
        def run(number: int) -> Measure:
            with rolled_back():
                measured = measure(work, units=1, label=f"{name} run {number + 1}")
                seen[name] = check() if check else measured.extra
            step.started_at = None
            return measured

        return run

    def audience() -> dict[str, Any]:
        (preview,) = campaign_audience(campaign, at)
        return {"eligible": preview.eligible, "excluded": preview.excluded}

    def preview_by_hand() -> dict[str, Any]:
        return hand_preview(purpose, step.channel, at, segment)

    def count() -> dict[str, Any]:
        contacts = segment_contacts(campaign.segment)
        return {"eligible": eligible_contacts(purpose, step.channel, at, queryset=contacts).count()}

    def count_by_hand() -> dict[str, Any]:
        sql, params = hand_audience_sql(purpose, step.channel, at, segment)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return {"eligible": cursor.fetchone()[0]}

    def ids() -> dict[str, Any]:
        contacts = segment_contacts(campaign.segment)
        stream = (
            eligible_contacts(purpose, step.channel, at, queryset=contacts)
            .values_list("pk", flat=True)
            .iterator(chunk_size=chunk)
        )
        count = total_ids = 0
        for contact_id in stream:
            count += 1
            total_ids += contact_id
        return {"ids": count, "sum": total_ids}

    def ids_by_hand() -> dict[str, Any]:
        sql, params = hand_audience_sql(purpose, step.channel, at, segment, select="c.id")
        count, total_ids = hand_ids(sql, params, chunk)
        return {"ids": count, "sum": total_ids}

    def begin() -> dict[str, Any]:
        return {"rows": step_begin(campaign=campaign, step=step, at=at)}

    def insert_by_hand() -> dict[str, Any]:
        sql, params = hand_recipients_insert(campaign, step, at, segment)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return {"rows": cursor.rowcount}

    def rows_written() -> dict[str, int]:
        return {
            f"{status} {reason}".strip(): count for status, reason, count in _fetch_grouped(step.pk)
        }

    names = {
        "audience": f"campaign_audience, {label}",
        "preview": f"baseline preview, {label}",
        "product count": f"eligible_contacts().count(), {label}",
        "count": f"baseline eligible count only, {label}",
        "ids": f"eligible ids streamed, {label}",
        "hand ids": f"baseline ids, {label}",
        "begin": f"step_begin, {label}",
        "insert": f"baseline insert, {label}",
    }
    # each pair on its own, its two sides in alternating order: the rolled-back inserts of a
    # million rows between two runs of a preview would leave that preview's pages cold
    pairs = [
        {
            names["audience"]: side(names["audience"], audience),
            names["preview"]: side(names["preview"], preview_by_hand),
        },
        {
            names["product count"]: side(names["product count"], count),
            names["count"]: side(names["count"], count_by_hand),
        },
        {
            names["ids"]: side(names["ids"], ids),
            names["hand ids"]: side(names["hand ids"], ids_by_hand),
        },
        {
            names["begin"]: side(names["begin"], begin, rows_written),
            names["insert"]: side(names["insert"], insert_by_hand, rows_written),
        },
    ]
    measured: dict[str, Summary] = {}
    for pair in pairs:
        measured |= runs_median(pair, runs=ARGS.runs, alternate=True)
    found = {key: seen[name] for key, name in names.items()}
    checks = {
        "found": found,
        "agree": found["audience"] == found["preview"]
        and found["audience"]["eligible"] == found["count"]["eligible"]
        and found["product count"] == found["count"]
        and found["ids"] == found["hand ids"]
        and found["ids"]["ids"] == found["count"]["eligible"]
        and found["begin"] == found["insert"],
        "step_begin_plan": _explain(step_begin_sql(campaign, step, at)),
    }
    ratios = {
        "campaign_audience / preview": _ratio(measured, names["audience"], names["preview"]),
        "campaign_audience / count only": _ratio(measured, names["audience"], names["count"]),
        "count / count": _ratio(measured, names["product count"], names["count"]),
        "ids / ids": _ratio(measured, names["ids"], names["hand ids"]),
        "step_begin / insert": _ratio(measured, names["begin"], names["insert"]),
    }
    return measured, checks, ratios


def _fetch_grouped(step_id: int) -> list[tuple[str, str, int]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT status, exclusion_reason, count(*) FROM campaigns_recipient"
            " WHERE step_id = %s GROUP BY 1, 2 ORDER BY 1, 2",
            [step_id],
        )
        return cursor.fetchall()


def step_begin_sql(campaign: Any, step: Any, at: datetime) -> tuple[str, list[Any]]:
    """The SELECT behind `step_begin`'s INSERT (for its plan)."""
    from campaigns.kinds import SKIP_REASON, kind_rules
    from campaigns.sending import step_audience_contacts

    rules = kind_rules(campaign)
    contacts = rules.with_reason(campaign, step, step_audience_contacts(campaign, step), at)
    sql, params = contacts.values_list("pk", SKIP_REASON).query.sql_with_params()
    return sql, list(params)


def _explain(statement: tuple[str, Any]) -> str:
    from django.db import connection

    sql, params = statement
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(line for (line,) in cursor.fetchall())


def _ratio(summaries: dict[str, Summary], product: str, baseline: str) -> float:
    return round(summaries[product].seconds / summaries[baseline].seconds, 3)


def _dataset() -> dict[str, Any]:
    """The dataset kept in `--database` (read only), or one of `--contacts` built here."""
    from bench.dataset import dataset_build, dataset_counts

    if ARGS.database:
        counts = dataset_counts()
        print(f"dataset: the one in {ARGS.database}: {counts}", flush=True)
        return {"reused": ARGS.database, **counts}
    started = time.perf_counter()
    built = dataset_build(n=ARGS.contacts, progress=True)
    built["seconds"] = time.perf_counter() - started
    print(f"dataset: {ARGS.contacts:,} contacts in {built['seconds']:.1f} s", flush=True)
    return built


# ---------------------------------------------------------------------------------------------
# The SMTP sink: its own process, counting messages and distinct Message-IDs


def sink_main(port: int, out: str) -> None:
    """Accept every message on `port` until SIGTERM, then write how many came and how many
    distinct `Message-ID`s they carried to `out` (JSON)."""
    from aiosmtpd.controller import Controller

    class Counting:
        def __init__(self) -> None:
            self.messages = 0
            self.recipients = 0
            self.ids: set[bytes] = set()
            self.without_id = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            head = envelope.content.split(b"\r\n\r\n", 1)[0]
            found = MESSAGE_ID.search(head)
            self.messages += 1
            self.recipients += len(envelope.rcpt_tos)
            if found:
                self.ids.add(found.group(1))
            else:
                self.without_id += 1
            return "250 Message accepted"

    handler = Counting()
    controller = Controller(handler, hostname=SINK_HOST, port=port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("sink ready", flush=True)
    while not stop.wait(0.2):
        pass
    controller.stop()
    Path(out).write_text(
        json.dumps(
            {
                "messages": handler.messages,
                "recipients": handler.recipients,
                "distinct_message_ids": len(handler.ids),
                "without_message_id": handler.without_id,
            }
        )
    )


class Sink:
    """The sink process of one run."""

    def __init__(self, port: int = SINK_PORT) -> None:
        self.port = port
        self.out = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "sink", "--port", str(port)]
            + ["--out", self.out],
            cwd=harness.ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "ready" not in line:
            raise RuntimeError(f"the SMTP sink did not start: {line!r}")

    def stop(self) -> dict[str, int]:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        stats = json.loads(Path(self.out).read_text())
        os.unlink(self.out)
        return stats


# ---------------------------------------------------------------------------------------------
# Row: sending 100,000 emails, campaign_send and 2 Celery workers vs one smtplib loop


def send_environment(database: str) -> dict[str, str]:
    """What the benchmark process and its workers share: the production settings, the bench
    database, Redis (`--redis-db`) as broker, the sink as SMTP server, the batch size."""
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "REDIS_URL": f"{ARGS.redis}/{ARGS.redis_db}",
        "CELERY_QUEUE": QUEUE,
        "EMAIL_URL": f"smtp://{SINK_HOST}:{SINK_PORT}",
        "DEFAULT_FROM_EMAIL": "Bench <news@bench.example>",
        "CAMPAIGN_BATCH_SIZE": str(ARGS.batch_size),
        "CAMPAIGN_PARALLEL_BATCHES": str(ARGS.parallel_batches),
        "DATABASE_URL": f"{harness.PG}/{database}",
    }


def send_fixture(count: int) -> Any:
    """`count` eligible contacts for the newsletter by email: contacts in bulk (with the
    suppression digests the product stores, 0 to 2 interests, French or English), each with a
    grant recorded through the set-based write path (`consents_record_many`: ledger records,
    evidence, states), as the eligibility rule wants them. Answers the purpose."""
    from django.db import connection

    from bench.harness import grant_write, purpose_create, writes_record
    from contacts.models import Contact, Interest
    from contacts.normalization import suppression_digests

    purpose = purpose_create("newsletter", channels=("email",))
    interests = [
        Interest.objects.create(slug=slug, name_fr=slug, name_en=slug.capitalize()).pk
        for slug in ("cycling", "hiking", "running")
    ]
    through = Contact.interests.through
    for start in range(0, count, 5000):
        block = []
        for n in range(start, min(count, start + 5000)):
            email = f"reader{n}@example.org"
            digest, quoted = suppression_digests(kind="email", value=email)
            block.append(
                Contact(
                    email=email,
                    first_name=f"Camille{n}",
                    last_name="Martin",
                    language="en" if n % 3 == 0 else "fr",
                    country="FR",
                    email_digest=digest,
                    email_quoted_digest=quoted,
                )
            )
        contacts = Contact.objects.bulk_create(block)
        through.objects.bulk_create(
            through(contact_id=contact.pk, interest_id=interests[(contact.pk + k) % 3])
            for contact in contacts
            for k in range(contact.pk % 3)
        )
        writes_record([grant_write(contact, purpose, "email", contact.pk) for contact in contacts])
        print(f"  fixture: {start + len(block):,} of {count:,} contacts", flush=True)
    # what autovacuum's ANALYZE does soon after a bulk load in production (this server runs
    # with autovacuum off): without it the planner takes the tables for empty (see README)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return purpose


class Workers:
    """Two (`--workers`) Celery worker processes (solo pool: one process each) on the bench
    database and queue, their resident memory sampled from /proc/<pid>/status."""

    def __init__(self, environment: dict[str, str], count: int) -> None:
        self.processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "--quiet",
                    "-A",
                    "config",
                    "worker",
                    "--pool",
                    "solo",
                ]
                + ["--loglevel", "WARNING", "--without-gossip", "--without-mingle"]
                + ["--without-heartbeat", "-Q", QUEUE, "-n", f"bench-campaigns-{n}@%h"],
                cwd=harness.ROOT,
                env=environment,
            )
            for n in range(1, count + 1)
        ]
        self.samples: dict[int, list[float]] = {p.pid: [] for p in self.processes}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            for pid, samples in self.samples.items():
                rss = vm_rss_mb(pid)
                if rss:
                    samples.append(rss)

    def wait_ready(self) -> None:
        from config.celery import app

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            answers = app.control.ping(timeout=1.0) or []
            names = {name for answer in answers for name in answer}
            if sum(name.startswith("bench-campaigns-") for name in names) >= len(self.processes):
                return
        raise RuntimeError("the Celery workers did not answer")

    def rss(self, since: int = 0) -> dict[str, Any]:
        """Per worker: resident memory at its first and last sample from `since` and its peak."""
        return {
            str(pid): {
                "first_mb": round(samples[since], 1),
                "last_mb": round(samples[-1], 1),
                "peak_mb": round(max(samples[since:]), 1),
            }
            for pid, samples in self.samples.items()
            if samples[since:]
        }

    def marks(self) -> int:
        return min(len(samples) for samples in self.samples.values())

    def close(self) -> None:
        self._stop.set()
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def vm_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


def product_send(purpose: Any, workers: Workers, number: int, expected: int) -> dict[str, Any]:
    """A campaign to every contact: `campaign_send`, then wait until the workers marked every
    row sent (polled every 0.2 s). The sink, the RSS and the duplicates are checked here."""
    from django.db.models import Count

    from campaigns.models import Recipient, RecipientStatus
    from campaigns.sending import campaign_advance, campaign_send

    campaign = campaign_for(purpose, None)
    sink = Sink()
    mark = workers.marks()
    started = time.perf_counter()
    campaign_send(campaign=campaign)
    sent, last_change, previous = 0, time.monotonic(), -1
    rows = Recipient.objects.filter(campaign=campaign, status=RecipientStatus.SENT)
    while sent < expected:
        time.sleep(0.2)
        sent = rows.count()
        if sent != previous:
            previous, last_change = sent, time.monotonic()
        elif time.monotonic() - last_change > 120:
            break  # stuck: reported as such
    seconds = time.perf_counter() - started
    stats = sink.stop()
    campaign_advance(campaign_id=campaign.pk)  # closes the step and the campaign
    distinct_rows = rows.aggregate(n=Count("message_id", distinct=True))["n"]
    campaign.refresh_from_db()
    return {
        "seconds": seconds,
        "sent_rows": sent,
        "distinct_row_message_ids": distinct_rows,
        "sink": stats,
        "campaign_status": campaign.status,
        "workers_rss": workers.rss(mark),
        "run": number,
    }


def baseline_messages(count: int) -> list[tuple[str, str, str]]:
    """(address, first name, language) of the first `count` contacts: what the loop sends."""
    from contacts.models import Contact

    return list(
        Contact.objects.order_by("pk").values_list("email", "first_name", "language")[:count]
    )


def baseline_send(
    people: list[tuple[str, str, str]], number: int, *, host: str = SINK_HOST, port: int = SINK_PORT
) -> int:
    """The same messages by hand: for each person a message built with the standard library's
    `email` package (subject, text and HTML parts with the name and a word where the product
    writes the interests, a Message-ID, the List-Unsubscribe headers, the footer's links),
    sent by `smtplib` on one connection."""
    footer = (
        "\n\nVous recevez ce message car vous avez accepté la newsletter.\n"
        "Vos choix : https://bench.example/p/{token}/\n"
        "Se désinscrire : https://bench.example/u/{token}/\n"
    )
    with smtplib.SMTP(host, port) as smtp:
        for n, (address, first_name, language) in enumerate(people):
            token = f"{number}x{n:040d}"
            message = EmailMessage()
            message["Subject"] = SUBJECT
            message["From"] = "Bench <news@bench.example>"
            message["To"] = address
            message["Message-ID"] = f"<baseline-{number}.{n}@bench.example>"
            message["List-Unsubscribe"] = f"<https://bench.example/u/{token}/>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            text = BODY_TEXT.replace("{{ first_name }}", first_name).replace(
                "{{ interests }}", language
            )
            message.set_content(text + footer.format(token=token))
            html = BODY_HTML.replace("{{ first_name }}", first_name).replace(
                "{{ interests }}", language
            )
            message.add_alternative(
                html.replace("</body>", f"<p>{footer.format(token=token)}</p></body>"),
                subtype="html",
            )
            smtp.send_message(message)
    return len(people)


def row_send() -> None:
    import django
    from django.db import connection

    database = harness.configure(database=ARGS.database or "cd_bench_camp_send")
    environment = send_environment(database)
    os.environ.update(environment)
    keep = ARGS.keep or bool(ARGS.database)
    if not ARGS.database:
        harness.database_recreate()
    elif not _database_exists(database):
        subprocess.run(
            ["psql", f"{harness.PG}/postgres", "-qc", f"CREATE DATABASE {database}"], check=True
        )
    django.setup()
    from django.core.management import call_command

    from consent.models import MessageSent
    from consent.selectors import purposes_with_versions
    from contacts.models import Contact

    call_command("migrate", verbosity=0)
    fixture_seconds = 0.0
    if not Contact.objects.exists():
        started = time.perf_counter()
        send_fixture(ARGS.emails)
        fixture_seconds = time.perf_counter() - started
        print(f"fixture: {ARGS.emails:,} contacts in {fixture_seconds:.0f} s", flush=True)
    purpose = purposes_with_versions().get(slug="newsletter")
    expected = Contact.objects.count()
    _redis_flush()
    workers = Workers({**os.environ, **environment}, ARGS.workers)
    try:
        workers.wait_ready()
        people = baseline_messages(expected)
        runs: dict[str, list[dict[str, Any]]] = {"product": [], "baseline": []}

        def product(number: int) -> Measure:
            MessageSent.objects.all().delete()  # the day's cap would skip everyone again
            connection.close()
            measured = measure(
                lambda: product_send(purpose, workers, number, expected),
                units=lambda result: result["sent_rows"],
                label=f"product run {number + 1}",
            )
            measured.seconds = measured.extra["seconds"]  # until the last row was marked sent
            runs["product"].append(measured.extra)
            print(json.dumps(measured.extra), flush=True)
            return measured

        def baseline(number: int) -> Measure:
            sink = Sink()
            measured = measure(
                lambda: baseline_send(people, number), units=len(people), label="baseline"
            )
            measured.extra["sink"] = sink.stop()
            runs["baseline"].append(measured.extra)
            print(json.dumps(measured.extra), flush=True)
            return measured

        summaries = runs_median({"product": product, "baseline": baseline}, runs=ARGS.runs)
    finally:
        workers.close()
        _redis_flush()
    ratio = round(summaries["product"].rate / summaries["baseline"].rate, 3)
    peak = max(
        worker["peak_mb"] for run in runs["product"] for worker in run["workers_rss"].values()
    )
    checks = [
        run["sent_rows"] == expected
        and run["distinct_row_message_ids"] == expected
        and run["sink"]["messages"] == expected
        and run["sink"]["distinct_message_ids"] == expected
        for run in runs["product"]
    ]
    print(f"rate product / baseline: {ratio:.3f}x; workers' peak RSS {peak:.0f} MB")
    print(f"every product run sent each message once, all of them: {all(checks)}")
    report(
        "send",
        summaries,
        {
            "ratio": ratio,
            "expected": expected,
            "fixture_seconds": fixture_seconds,
            "batch_size": ARGS.batch_size,
            "parallel_batches": ARGS.parallel_batches,
            "workers": ARGS.workers,
            "baseline_kind": "built with the stdlib email package in the loop, smtplib",
            "runs_detail": runs,
            "once_each": checks,
            "workers_peak_rss_mb": peak,
        },
    )
    if not keep:
        harness.database_drop()


def _database_exists(name: str) -> bool:
    found = subprocess.run(
        [
            "psql",
            f"{harness.PG}/postgres",
            "-tAc",
            f"SELECT 1 FROM pg_database WHERE datname = '{name}'",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return found.stdout.strip() == "1"


def _redis_flush() -> None:
    """Empty the benchmark's own Redis database (the queue, results, the cache)."""
    import redis

    redis.Redis.from_url(f"{ARGS.redis}/{ARGS.redis_db}").flushdb()


# ---------------------------------------------------------------------------------------------


def report(row: str, summaries: dict[str, Summary], extra: dict[str, Any]) -> None:
    print()
    print("| side | median s | median units/s | queries/unit | peak RSS growth | loads |")
    print("|---|---|---|---|---|---|")
    for summary in summaries.values():
        print(
            f"| {summary.name} | {summary.seconds:.3f} | {summary.rate:,.1f} "
            f"| {summary.queries_per_unit:.3f} | +{summary.rss_growth_mb:.0f} MB "
            f"| {' '.join(f'{load:.1f}' for load in summary.loads)} |"
        )
    path = harness.result_save(
        f"campaigns-{row}",
        {
            "args": {k: v for k, v in vars(ARGS).items() if k != "handler"},
            "sides": {name: summary.as_dict() for name, summary in summaries.items()},
            **extra,
        },
    )
    print(f"saved {path.relative_to(harness.ROOT)}")


def main() -> None:
    print(f"row {ARGS.row}: {harness.machine()}", flush=True)
    if ARGS.row == "send":
        row_send()
        return
    if ARGS.database:  # a kept dataset: read, every write rolled back, never dropped
        harness.configure(database=ARGS.database)
        harness.django_setup()
        row_audience()
        return
    harness.configure(database="cd_bench_camp_audience")
    with harness.bench_database(keep=ARGS.keep):
        row_audience()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    rows = parser.add_subparsers(dest="row", required=True)
    for name in ("audience", "send"):
        sub = rows.add_parser(name)
        sub.add_argument("--runs", type=int, default=3, help="runs per side (median)")
        sub.add_argument("--keep", action="store_true", help="keep the database afterwards")
        sub.add_argument("--database", default="", help="use this database as it is")
    audience = rows.choices["audience"]
    audience.add_argument("--contacts", type=int, default=1_000_000)
    audience.add_argument("--purpose", default="newsletter")
    audience.add_argument("--chunk-size", type=int, default=2000)
    send = rows.choices["send"]
    send.add_argument("--emails", type=int, default=100_000)
    send.add_argument("--batch-size", type=int, default=500)
    send.add_argument("--parallel-batches", type=int, default=4)
    send.add_argument("--workers", type=int, default=2)
    send.add_argument("--redis", default="redis://127.0.0.1:6379")
    send.add_argument("--redis-db", type=int, default=8)
    sink = rows.add_parser("sink", help="the SMTP sink process (used by `send`)")
    sink.add_argument("--port", type=int, default=SINK_PORT)
    sink.add_argument("--out", required=True)
    return parser.parse_args(argv)


if __name__ == "__main__":
    ARGS = parse(sys.argv[1:])
    if ARGS.row == "sink":
        sink_main(ARGS.port, ARGS.out)
    else:
        main()
