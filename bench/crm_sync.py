# ruff: noqa: S608 - the pull baseline builds SQL from model metadata and placeholders, never input
"""The CRM sync benchmark of issue 14 (push): the product beside a bare `requests` loop making
the same batch calls to the same HubSpot emulator in the same run, medians of `--runs` (3)
runs interleaved, with the load beside each run.

Run from the repository root (PostgreSQL must be running):

    .venv/bin/python bench/crm_sync.py push [--events 100000] [--runs 3] [--ratio 0.1]

- `push`: `--events` contacts made in bulk (`bulk_create`) and one `contact.updated` event
  each, written by `crmsync.services.outbox_emit_many` (as a real change leaves it: the
  contact's payload and the fields it changed), numbered by `outbox_sequence`, in
  `cd_bench_crm_sync`. One HubSpot connection (`connection_create`) to the HubSpot emulator
  of `tests/emulators`, which runs **in its own process** (`crm_sync.py emulator`: client and
  server do not share a GIL). Product: `connection_push` called until the outbox is drained
  (on a failure it sleeps `retry_in`, the CRM's Retry-After, then calls again, as the
  periodic safety net would). Baseline: one loop with a `requests.Session` reading the same
  events joined to their contacts 100 at a time (keyset on the sequence), making the same
  batch upsert calls (idProperty email, the same properties) and, on a 429, sleeping the
  Retry-After and sending the same body again. Two rows: the emulator answering every call,
  then answering 429 (Retry-After: `--retry-after`, 1 s) on `--ratio` (10%) of the calls,
  drawn from the same seed for every run of both sides.

  Between runs the emulator is emptied (`/bench/reset`) and, for the product, the
  connection's cursor, the processed marks, the contact links and any dead letter are put
  back, so that every run does the same work. The emulator counts the upsert calls it
  answered, the inputs of each (batches full: every call but the last of 100) and the bytes
  of their bodies (the same bodies on both sides), and the 429s it gave.

- `emulator`: the HubSpot emulator process (used by `push`): prints its URL, then serves
  until terminated.

- `pull` (`--contacts` 100,000, `--runs` 3): the HubSpot emulator (`pull-emulator`, its own
  process) holds `--contacts` contacts changed since the cursor, three to a millisecond (30%
  ours already, a tenth of all changed in HubSpot, 20% opted out of the newsletter's
  subscription); our database (`cd_bench_crm_pull`) holds the 30% with a newsletter grant
  each, and the connection with the newsletter mapped. The fixture is kept as a template
  database: each run starts from a copy (`CREATE DATABASE ... TEMPLATE`), the pull's cursor
  included. Product: `connection_pull` until the emulator has nothing left. Baseline: the
  same searches with `requests`, each page written with hand-written SQL (`BaselineWriter`).
  Each run is checked complete (`pull_check`), the product's ledger verified.
- `pull-profile`: one product run of `pull` under cProfile, with the statements counted and
  timed per contact.

Results go to bench/results/crm_sync-<row>-<time>.json.
"""

import argparse
import json
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402
from bench.harness import Measure, Summary, measure, runs_median  # noqa: E402

TOKEN = "bench-hubspot-token"  # noqa: S105 - the emulator's own
UPSERT = "/crm/v3/objects/contacts/batch/upsert"
BATCH = 100
SEED = 14
# the properties the HubSpot adapter sends by default (crmsync.adapters.hubspot)
PROPERTIES = (
    ("email", "email"),
    ("first_name", "firstname"),
    ("last_name", "lastname"),
    ("phone", "phone"),
    ("company", "company"),
    ("job_title", "jobtitle"),
    ("country", "country"),
    ("lifecycle_stage", "lifecyclestage"),
)
LIFECYCLE = {"subscriber": "subscriber", "lead": "lead", "mql": "marketingqualifiedlead"}


# ---------------------------------------------------------------------------------------------
# The emulator process


def emulator_main() -> None:
    """Serve the HubSpot emulator with the benchmark's counters and controls until SIGTERM."""
    from tests.emulators import Response, Throttle
    from tests.emulators.hubspot import HubSpotEmulator

    class BenchHubSpot(HubSpotEmulator):
        """The emulator, keeping no request bodies, counting the upserts' inputs and bytes;
        `/bench/stats` and `/bench/reset` answer outside authentication and faults."""

        def __init__(self) -> None:
            super().__init__(token=TOKEN, keep_bodies=False)
            self.sizes: Counter[int] = Counter()
            self.answers: Counter[int] = Counter()  # HTTP status -> calls
            self.upsert_bytes = 0

        def batch_upsert(self, body: Any) -> Response:
            response = super().batch_upsert(body)
            if response.status < 300:
                self.sizes[len((body or {}).get("inputs") or [])] += 1
            return response

        def answer(self, method: str, target: str, headers: Any, raw: bytes) -> Response:
            if target.startswith("/bench/"):
                return self.control(target, raw)
            response = super().answer(method, target, headers, raw)
            with self.lock:
                self.answers[response.status] += 1
                if target.startswith(UPSERT) and response.status < 300:
                    self.upsert_bytes += len(raw)
                self.calls.clear()  # counted above: the log stays empty, memory flat
            return response

        def control(self, target: str, raw: bytes) -> Response:
            with self.lock:
                if target == "/bench/reset":
                    options = json.loads(raw or b"{}")
                    self.contacts.clear()
                    self.ids_by_email.clear()
                    self.modified.clear()
                    self.modified_key.clear()
                    self.answers.clear()
                    self.statuses.clear()  # the subscriptions' (none here)
                    self.history.clear()  # the properties' history
                    self.sizes.clear()
                    self.upsert_bytes = 0
                    self.retry_after = str(options.get("retry_after", "1"))
                    ratio = float(options.get("ratio", 0.0))
                    self.throttle = Throttle(ratio=ratio, seed=SEED) if ratio else None
                    return Response(200, {"reset": True})
                return Response(
                    200,
                    {
                        "contacts": len(self.contacts),
                        "upsert_calls": sum(self.sizes.values()),
                        "inputs_per_call": {str(k): v for k, v in sorted(self.sizes.items())},
                        "upsert_bytes": self.upsert_bytes,
                        "statuses": {str(k): v for k, v in sorted(self.answers.items())},
                        "rss_mb": round(harness.rss_mb(), 1),
                    },
                )

    emulator = BenchHubSpot().start()
    print(emulator.url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_args: stop.set())
    stop.wait()
    emulator.stop()


class Emulator:
    """The emulator process, started and stopped by the benchmark."""

    command = "emulator"  # this script's subcommand that serves it

    def __init__(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own script
            [sys.executable, __file__, self.command],
            cwd=harness.ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            raise RuntimeError(f"the emulator did not start: {self.url!r}")
        import requests

        self.session = requests.Session()

    def reset(self, *, ratio: float, retry_after: str) -> None:
        self.session.post(
            f"{self.url}/bench/reset", json={"ratio": ratio, "retry_after": retry_after}
        ).raise_for_status()

    def stats(self) -> dict[str, Any]:
        answer = self.session.get(f"{self.url}/bench/stats")
        answer.raise_for_status()
        return dict(answer.json())

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=10)


# ---------------------------------------------------------------------------------------------
# The fixture: contacts and their outbox events


def push_fixture(count: int, url: str) -> int:
    """`count` contacts in bulk, a `contact.updated` event each through `outbox_emit_many`
    (numbered), then the HubSpot connection, its cursor at the start. Answers its id."""
    from contacts.models import Contact
    from contacts.services import contact_payload
    from crmsync.models import ConnectionState
    from crmsync.services import outbox_emit_many, outbox_sequence

    started = time.perf_counter()
    stages = list(LIFECYCLE)
    for block in harness.chunks(range(count), 5000):
        contacts = Contact.objects.bulk_create(
            [
                Contact(
                    email=f"person{n}@bench-crm.example",
                    first_name=f"Camille{n % 97}",
                    last_name=f"Martin{n}",
                    phone=f"+336{n:08d}",
                    company=f"Company {n % 1000}",
                    job_title="Buyer" if n % 3 else "",
                    country="FR" if n % 4 else "BE",
                    language="fr",
                    lifecycle_stage=stages[n % len(stages)],
                )
                for n in block
            ]
        )
        outbox_emit_many(
            events=[
                (
                    "contact.updated",
                    contact,
                    {**contact_payload(contact), "changed": ["first_name", "company"]},
                )
                for contact in contacts
            ]
        )
    while outbox_sequence():
        pass
    print(f"  fixture: {count:,} contacts and events in {time.perf_counter() - started:.1f} s")
    connection_id = _connection_create(url)
    ConnectionState.objects.filter(pk=connection_id).update(push_cursor=0)
    return connection_id


def _connection_create(url: str) -> int:
    from crmsync.connections import connection_create

    connection = connection_create(
        name="hubspot-bench",
        kind="hubspot",
        base_url=url,
        credentials={"token": TOKEN},
    )
    return int(connection.pk)


def push_state_reset(connection_id: int) -> None:
    """The connection as before any push: cursor at the start, nothing processed, no link."""
    from crmsync.models import ConnectionState, ContactLink, DeadLetter, OutboxEvent

    ConnectionState.objects.filter(pk=connection_id).update(
        push_cursor=0, failures=0, next_attempt_at=None, lease_token=None, lease_until=None
    )
    OutboxEvent.objects.filter(processed_at__isnull=False).update(processed_at=None)
    ContactLink.objects.all().delete()
    DeadLetter.objects.all().delete()


# ---------------------------------------------------------------------------------------------
# The two sides


def product_push(connection_id: int) -> dict[str, Any]:
    """`connection_push` until the outbox is drained, sleeping each failure's `retry_in`."""
    from crmsync.push import connection_push, connection_waiting

    delivered = rejected = parked = pushes = failures = 0
    waited = 0.0
    while True:
        outcome = connection_push(connection_id=connection_id)
        pushes += 1
        delivered += outcome.delivered
        rejected += outcome.rejected
        parked += outcome.parked
        if outcome.retry_in is not None:
            failures += 1
            waited += outcome.retry_in
            time.sleep(outcome.retry_in)
            continue
        if outcome.more or connection_waiting(connection_id=connection_id):
            continue
        break
    return {
        "delivered": delivered,
        "rejected": rejected,
        "parked": parked,
        "pushes": pushes,
        "failures": failures,
        "waited_s": round(waited, 2),
    }


def processed_marks_timed() -> dict[str, Any]:
    """The processed marks of what the push delivered, the task a worker runs after it (and
    beat every minute): timed apart, outside the push."""
    from crmsync.push import outbox_mark_processed

    started = time.perf_counter()
    marked = outbox_mark_processed()
    seconds = time.perf_counter() - started
    print(f"    processed marks (a task of their own): {marked:,} events in {seconds:.2f} s")
    return {"events": marked, "seconds": round(seconds, 3)}


BASELINE_SQL = """
SELECT e.sequence, c.email, c.first_name, c.last_name, c.phone, c.company, c.job_title,
       c.country, c.lifecycle_stage
FROM crmsync_outboxevent e JOIN contacts_contact c ON c.public_id = e.contact_public_id
WHERE e.sequence > %s ORDER BY e.sequence LIMIT %s
"""


def baseline_push(url: str) -> dict[str, Any]:
    """The same upsert calls by hand: the events 100 at a time, one POST each, a 429 slept
    and sent again."""
    import requests
    from django.db import connection

    session = requests.Session()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    cursor_at, delivered, throttled, waited = 0, 0, 0, 0.0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(BASELINE_SQL, [cursor_at, BATCH])
            rows = cursor.fetchall()
        if not rows:
            break
        inputs = []
        for row in rows:
            values = dict(zip([ours for ours, _theirs in PROPERTIES], row[1:], strict=True))
            properties = {
                theirs: LIFECYCLE.get(values[ours], values[ours])
                if ours == "lifecycle_stage"
                else str(values[ours])
                for ours, theirs in PROPERTIES
                if values[ours] or ours in ("first_name", "company")
            }
            inputs.append({"idProperty": "email", "id": values["email"], "properties": properties})
        body = json.dumps({"inputs": inputs})
        while True:
            answer = session.post(f"{url}{UPSERT}", data=body, headers=headers, timeout=30)
            if answer.status_code == 429:
                pause = float(answer.headers.get("Retry-After") or 1)
                throttled += 1
                waited += pause
                time.sleep(pause)
                continue
            answer.raise_for_status()
            break
        answer.json()  # read, as the product reads the ids it is given
        delivered += len(rows)
        cursor_at = rows[-1][0]
    return {"delivered": delivered, "throttled": throttled, "waited_s": round(waited, 2)}


# ---------------------------------------------------------------------------------------------
# The row


def row_push() -> None:
    emulator = Emulator()
    try:
        connection_id = push_fixture(ARGS.events, emulator.url)
        for ratio in dict.fromkeys((0.0, ARGS.ratio)):  # --ratio 0: the first row alone
            label = "push" if not ratio else f"push-429-{int(ratio * 100)}pct"
            print(f"row {label}: {ARGS.events:,} events, 429 on {ratio:.0%} of calls", flush=True)
            seen: dict[str, list[dict[str, Any]]] = {"product": [], "baseline": []}
            summaries = runs_median(
                {
                    side: side_runner(side, ratio, emulator, connection_id, seen[side])
                    for side in ("product", "baseline")
                },
                runs=ARGS.runs,
            )
            report(label, summaries, {"ratio": ratio, "emulator": seen})
    finally:
        emulator.stop()


def side_runner(
    side: str, ratio: float, emulator: Emulator, connection_id: int, seen: list[dict[str, Any]]
) -> Callable[[int], Measure]:
    """One run of a side: the emulator emptied (and the product's state put back), the run
    measured, then checked complete at the emulator."""

    def one(number: int) -> Measure:
        emulator.reset(ratio=ratio, retry_after=ARGS.retry_after)
        if side == "product":
            push_state_reset(connection_id)
            measured = measure(
                lambda: product_push(connection_id), units=ARGS.events, label=f"{side} {number + 1}"
            )
            measured.extra["processed_marks"] = processed_marks_timed()
        else:
            measured = measure(
                lambda: baseline_push(emulator.url), units=ARGS.events, label=f"{side} {number + 1}"
            )
        stats = emulator.stats()
        _check(side, measured.extra, stats)
        measured.extra["emulator"] = stats
        seen.append(stats)
        return measured

    return one


def _check(side: str, result: dict[str, Any], seen: dict[str, Any]) -> None:
    """Both sides did the whole work: every event delivered, every contact at the emulator."""
    if result.get("delivered") != ARGS.events or seen["contacts"] != ARGS.events:
        raise RuntimeError(f"{side}: incomplete run: {result} / emulator {seen}")
    print(
        f"    emulator: {seen['upsert_calls']} upserts, inputs per call "
        f"{seen['inputs_per_call']}, {seen['upsert_bytes'] / 1e6:.1f} MB of bodies, "
        f"answers {seen['statuses']}, its RSS {seen['rss_mb']} MB; side: {result}",
        flush=True,
    )


def report(row: str, summaries: dict[str, Summary], extra: dict[str, Any]) -> None:
    product, baseline = summaries["product"], summaries["baseline"]
    ratio = product.rate / baseline.rate if baseline.rate else 0.0
    print()
    print("| side | median s | median events/s | queries/event | peak RSS growth | loads |")
    print("|---|---|---|---|---|---|")
    for summary in summaries.values():
        print(
            f"| {summary.name} | {summary.seconds:.3f} | {summary.rate:,.1f} "
            f"| {summary.queries_per_unit:.3f} | +{summary.rss_growth_mb:.0f} MB "
            f"| {' '.join(f'{load:.1f}' for load in summary.loads)} |"
        )
    print(f"product / baseline: {ratio:.3f}x (target >= 0.5x)")
    path = harness.result_save(
        f"crm_sync-{row}",
        {
            "args": {k: v for k, v in vars(ARGS).items() if k != "handler"},
            "ratio_product_to_baseline": round(ratio, 3),
            "sides": {name: summary.as_dict() for name, summary in summaries.items()},
            **extra,
        },
    )
    print(f"saved {path.relative_to(harness.ROOT)}", flush=True)


# ---------------------------------------------------------------------------------------------
# Pull: the emulator holding `--contacts` changed contacts, read by `connection_pull`

PULL_DATABASE = "cd_bench_crm_pull"
PULL_TEMPLATE = "cd_bench_crm_pull_template"
PURPOSE = "newsletter"
SUBSCRIPTION = "1001"  # the emulator's "Newsletter" subscription type
OPT_OUT_PROPERTY = f"hs_email_optout_{SUBSCRIPTION}"
# the property naming a contact's owner, which the adapter asks for too (its OWNER_PROPERTY)
OWNER_PROPERTY = "hubspot_owner_id"
SEARCH = "/crm/v3/objects/contacts/search"
BATCH_READ = "/crm/v3/objects/contacts/batch/read"
SEARCH_PAGE = 200  # HubSpot's most results a page, the pull's default page size
FIRST_ID = 1001  # the emulator's first HubSpot id: contact n is FIRST_ID + n
PER_MILLISECOND = 3  # contacts sharing one lastmodifieddate: the cursor's ids at one time
DAY_MS = 86_400_000
FIRST_NAMES = ("Camille", "Louis", "Emma", "Hugo", "Léa", "Lukas", "Sofia", "Jan", "Inès", "Noah")
LAST_NAMES = ("Martin", "Bernard", "Dubois", "Müller", "García", "Rossi", "De Vries", "Peeters")
COUNTRIES = ("FR", "FR", "FR", "BE", "DE", "ES", "IT", "NL", "CH", "LU")
JOB_TITLES = ("Buyer", "Marketing manager", "CTO", "", "Office manager", "Founder")
STAGES = ("subscriber", "lead", "mql", "customer")  # ours (HubSpot's in LIFECYCLE, below)
PULL_STAGES = {**LIFECYCLE, "opportunity": "opportunity", "customer": "customer"}
# (ours, HubSpot's) of the fields the pull maps by default (crmsync.adapters.hubspot)
PULLED = PROPERTIES


def pull_existing(n: int) -> bool:
    """Contact n is already ours (30%): found by email by the pull."""
    return n % 10 in (0, 1, 2)


def pull_changed(n: int) -> bool:
    """Contact n is ours and was changed in HubSpot since (10%): company and stage."""
    return n % 10 == 1


def pull_opted_out(n: int) -> bool:
    """Contact n opted out of the newsletter in HubSpot (20%): half of them ours with a live
    grant (a withdrawal written), half new (nothing to withdraw)."""
    return n % 5 == 0


def pull_withdrawn(n: int) -> bool:
    return pull_existing(n) and pull_opted_out(n)


def pull_email(n: int) -> str:
    return f"person{n}@bench-pull.example"


def pull_ours(n: int) -> dict[str, str]:
    """Our fields of contact n as we held them before HubSpot changed some."""
    return {
        "first_name": FIRST_NAMES[n % len(FIRST_NAMES)],
        "last_name": f"{LAST_NAMES[n % len(LAST_NAMES)]}{n}",
        "phone": f"+336{n % 100_000_000:08d}",
        "company": f"Company {n % 1000}",
        "job_title": JOB_TITLES[n % len(JOB_TITLES)],
        "country": COUNTRIES[n % len(COUNTRIES)],
        "lifecycle_stage": STAGES[n % len(STAGES)],
    }


def pull_theirs(n: int) -> dict[str, str]:
    """Our fields of contact n as HubSpot holds them (what both sides must end with)."""
    fields = pull_ours(n)
    if pull_changed(n):
        fields["company"] = f"{fields['company']} Group"
        fields["lifecycle_stage"] = "opportunity"
    return fields


def pull_remote(n: int) -> dict[str, str]:
    """Contact n's HubSpot properties (an empty one is not set, as in HubSpot)."""
    fields = pull_theirs(n)
    properties = {"email": pull_email(n)}
    for ours, theirs in PULLED:
        value = fields.get(ours, "")
        if ours == "lifecycle_stage":
            value = PULL_STAGES[value]
        if value:
            properties[theirs] = value
    if pull_opted_out(n):
        properties[OPT_OUT_PROPERTY] = "true"
    return properties


def pull_expected(count: int) -> dict[str, int]:
    """What a complete pull of `count` contacts does."""
    return {
        "fetched": count,
        "created": sum(1 for n in range(count) if not pull_existing(n)),
        "updated": sum(1 for n in range(count) if pull_changed(n)),
        "unchanged": sum(1 for n in range(count) if pull_existing(n) and not pull_changed(n)),
        "consents": sum(1 for n in range(count) if pull_withdrawn(n)),
    }


def pull_emulator_main() -> None:
    """Serve the HubSpot emulator for the pull: `/bench/load` fills it with the fixture's
    contacts (made here, not sent over HTTP), `/bench/reset` zeroes the counters,
    `/bench/stats` answers them, all outside authentication."""
    import itertools

    from tests.emulators import Response
    from tests.emulators.hubspot import HubSpotEmulator

    class PullHubSpot(HubSpotEmulator):
        def __init__(self) -> None:
            super().__init__(token=TOKEN, keep_bodies=False)
            self.searches = 0
            self.served = 0
            self.search_bytes = 0
            self.answers: Counter[int] = Counter()

        def search(self, body: Any) -> Response:
            response = super().search(body)
            if response.status == 200:
                self.searches += 1
                self.served += len(response.body["results"])
            return response

        def answer(self, method: str, target: str, headers: Any, raw: bytes) -> Response:
            if target.startswith("/bench/"):
                return self.control(target, raw)
            response = super().answer(method, target, headers, raw)
            with self.lock:
                self.answers[response.status] += 1
                if target.startswith(SEARCH):
                    self.search_bytes += len(raw)
                self.calls.clear()  # counted above: the log stays empty, memory flat
            return response

        def load(self, count: int, since: int) -> None:
            """`count` contacts, PER_MILLISECOND to a modification time from `since` on,
            the opted-out ones with their subscription status (as `set_status` leaves it)."""
            self.contacts.clear()
            self.ids_by_email.clear()
            self.modified.clear()
            self.modified_key.clear()
            self.statuses.clear()
            self.ids = itertools.count(FIRST_ID)
            self.changes = itertools.count(1)
            clock = self.clock
            try:
                for n in range(count):
                    at = since + n // PER_MILLISECOND
                    self.clock = partial(int, at)
                    properties = pull_remote(n)
                    self._write(None, properties["email"], properties)
                    if pull_opted_out(n):
                        self.statuses[properties["email"]] = {
                            SUBSCRIPTION: {
                                "status": "NOT_SUBSCRIBED",
                                "optedOut": True,
                                "legalBasis": None,
                                "legalBasisExplanation": None,
                            }
                        }
            finally:
                self.clock = clock

        def control(self, target: str, raw: bytes) -> Response:
            with self.lock:
                if target == "/bench/load":
                    options = json.loads(raw or b"{}")
                    self.load(int(options["contacts"]), int(options["since"]))
                if target in ("/bench/load", "/bench/reset"):
                    self.searches = self.served = self.search_bytes = 0
                    self.answers.clear()
                    return Response(200, {"reset": True})
                return Response(
                    200,
                    {
                        "contacts": len(self.contacts),
                        "opted_out": len(self.statuses),
                        "searches": self.searches,
                        "served": self.served,
                        "search_bytes": self.search_bytes,
                        "statuses": {str(k): v for k, v in sorted(self.answers.items())},
                        "rss_mb": round(harness.rss_mb(), 1),
                    },
                )

    emulator = PullHubSpot().start()
    print(emulator.url, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_args: stop.set())
    stop.wait()
    emulator.stop()


class PullEmulator(Emulator):
    """The pull's emulator process (`crm_sync.py pull-emulator`)."""

    command = "pull-emulator"

    def load(self, *, contacts: int, since: int) -> None:
        self.session.post(
            f"{self.url}/bench/load", json={"contacts": contacts, "since": since}, timeout=600
        ).raise_for_status()

    def counters_reset(self) -> None:
        self.session.post(f"{self.url}/bench/reset").raise_for_status()


def pull_since() -> int:
    """The emulator's first modification time: a day ago (our contacts and grants are older,
    so HubSpot's changes are the latest)."""
    return int(time.time() * 1000) - DAY_MS


def pull_fixture(count: int, url: str) -> int:
    """Our side before the pull: the newsletter purpose; the 30% of the emulator's contacts
    that are ours already (in bulk), each with a newsletter grant by email (through
    `consents_record_many`, two days ago), last changed two days ago; the HubSpot connection
    (the newsletter mapped to subscription 1001), never pulled; the baseline's table of
    withdrawals. Answers the connection's id."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from contacts.models import Contact
    from crmsync.connections import connection_create

    started = time.perf_counter()
    purpose = harness.purpose_create(PURPOSE, channels=("email",))
    long_ago = timezone.now() - timedelta(days=2)
    ours = [n for n in range(count) if pull_existing(n)]
    for block in harness.chunks(ours, 5000):
        contacts = Contact.objects.bulk_create(
            [Contact(email=pull_email(n), language="fr", **pull_ours(n)) for n in block]
        )
        harness.writes_record(
            [
                harness.grant_write(contact, purpose, "email", n, given_at=long_ago)
                for n, contact in zip(block, contacts, strict=True)
            ]
        )
    Contact.objects.update(updated_at=long_ago)
    pulled = connection_create(
        name="hubspot-pull-bench",
        kind="hubspot",
        base_url=url,
        credentials={"token": TOKEN},
        purpose_map={PURPOSE: SUBSCRIPTION},
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE bench_pull_withdrawal (contact_id bigint NOT NULL, "
            "purpose_id bigint NOT NULL, channel varchar(10) NOT NULL, "
            "given_at timestamp with time zone NOT NULL, source_reference varchar(255) NOT NULL)"
        )
    print(
        f"  fixture: {len(ours):,} of {count:,} contacts ours, with a grant each, "
        f"in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return int(pulled.pk)


# the product's own push, queued after each commit of new outbox events, is not the pull's
# work (a worker runs it, measured by `push`): counted, not run
PUSH_TASK = "crmsync.tasks.push_connection"


def product_pull(connection_id: int) -> dict[str, Any]:
    """`connection_pull` until the emulator has nothing left: a pull that ends before its
    time budget (`CRM_PULL_TIME_BUDGET`) ended because the CRM had nothing more."""
    from unittest import mock

    from django.conf import settings

    from crmsync.pull import connection_pull
    from crmsync.tasks import push_connection

    totals: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    pulls = 0
    with mock.patch.object(push_connection, "delay") as queued:
        while True:
            started = time.monotonic()
            outcome = connection_pull(connection_id=connection_id)
            pulls += 1
            if outcome.error or outcome.busy:
                raise RuntimeError(f"the pull failed: {outcome}")
            for name in ("pages", "fetched", "created", "updated", "unchanged", "consents"):
                totals[name] += getattr(outcome, name)
            skipped.update({str(reason): n for reason, n in outcome.skipped.items()})
            if time.monotonic() - started < settings.CRM_PULL_TIME_BUDGET:
                break
    return {
        **totals,
        "pulls": pulls,
        "skipped": dict(skipped),
        "pushes_queued": queued.call_count,
    }


def _pull_body(since: int, seen: set[str]) -> dict[str, Any]:
    """The search the HubSpot adapter sends (crmsync.adapters.hubspot `_search`)."""
    properties = {
        "email",
        "lastmodifieddate",
        OWNER_PROPERTY,
        OPT_OUT_PROPERTY,
        *(t for _o, t in PULLED),
    }
    return {
        "filterGroups": [
            {
                "filters": [
                    {"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(since)}
                ]
            }
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": sorted(properties),
        "limit": max(1, min(SEARCH_PAGE + len(seen), SEARCH_PAGE)),
    }


def _milliseconds(value: str) -> int:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return int(moment.timestamp() * 1000)


class BaselineWriter:
    """The hand-written SQL of the baseline, statements built once."""

    def __init__(self, connection_id: int) -> None:
        from django.db import connection

        from consent.models import Purpose
        from contacts.models import Contact

        self.connection_id = connection_id
        self.purpose_id = Purpose.objects.values_list("pk", flat=True).get(slug=PURPOSE)
        self.ops = connection.ops
        self.vendor = connection.vendor
        fields = {f.column: f for f in Contact._meta.concrete_fields}
        self.uuid = fields["public_id"]
        self.db = connection
        written = [ours for ours, _theirs in PULLED]  # email first
        # the other NOT NULL columns take Django's defaults, read once (no DB defaults here)
        self.constants = {
            column: field.get_db_prep_save(field.get_default(), connection)
            for column, field in fields.items()
            if not field.null
            and not field.primary_key
            and column not in (*written, "public_id", "created_at", "updated_at")
        }
        self.columns = [*written, *self.constants, "public_id", "created_at", "updated_at"]
        distinct = "IS DISTINCT FROM" if self.vendor == "postgresql" else "IS NOT"
        mine = ", ".join(f"contacts_contact.{c}" for c in written[1:])
        theirs = ", ".join(f"EXCLUDED.{c}" for c in written[1:])
        self.upsert_tail = (
            " ON CONFLICT (email) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in written[1:])
            + ", updated_at = %s"
            # latest wins: HubSpot's time (in EXCLUDED.updated_at) against our last change
            + " WHERE contacts_contact.updated_at < EXCLUDED.updated_at"
            + f" AND ({mine}) {distinct} ({theirs})"
        )

    def write(self, rows: list[tuple[str, int, dict[str, str], int | None]]) -> int:
        """One page: (remote id, modified ms, our fields with the email, the opt-out's time in
        ms or None) each; answers the withdrawals written."""
        from django.db import transaction

        now = datetime.now(UTC)
        stamp = self.ops.adapt_datetimefield_value(now)
        constants = list(self.constants.values())
        values: list[str] = []
        params: list[Any] = []
        for _remote_id, modified, fields, _out in rows:
            values.append(f"({', '.join(['%s'] * len(self.columns))})")
            at = datetime.fromtimestamp(modified / 1000, UTC)
            params += [fields[ours] for ours, _theirs in PULLED]
            params += constants
            params += [
                self.uuid.get_db_prep_value(uuid.uuid4(), self.db),
                stamp,
                self.ops.adapt_datetimefield_value(at),
            ]
        emails = [fields["email"] for _i, _m, fields, _o in rows]
        with transaction.atomic(), self.db.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO contacts_contact ({', '.join(self.columns)}) VALUES "
                f"{', '.join(values)}{self.upsert_tail}",
                [*params, stamp],
            )
            cursor.execute(
                "SELECT email, id FROM contacts_contact WHERE email IN "
                f"({', '.join(['%s'] * len(emails))})",
                emails,
            )
            ids = dict(cursor.fetchall())
            links = [
                (self.connection_id, ids[f["email"]], remote, stamp, "", "")
                for remote, _m, f, _o in rows
            ]
            cursor.execute(
                "INSERT INTO crmsync_contactlink "
                "(connection_id, contact_id, remote_id, updated_at, owner_id, owner_email) "
                f"VALUES {', '.join(['(%s, %s, %s, %s, %s, %s)'] * len(links))} "
                "ON CONFLICT (connection_id, contact_id) DO UPDATE SET remote_id = "
                "EXCLUDED.remote_id, updated_at = EXCLUDED.updated_at",
                [value for link in links for value in link],
            )
            asked = [
                (
                    ids[f["email"]],
                    self.ops.adapt_datetimefield_value(
                        datetime.fromtimestamp(min(out / 1000, now.timestamp()), UTC)
                    ),
                    remote,
                )
                for remote, _m, f, out in rows
                if out is not None
            ]
            if not asked:
                return 0
            # the live states withdrawn (the only rule kept: nothing to withdraw, nothing written)
            cursor.execute(
                "UPDATE consent_consentstate SET status = 'withdrawn', since = v.column2 "
                f"FROM (VALUES {', '.join(['(%s, %s)'] * len(asked))}) AS v "
                "WHERE consent_consentstate.contact_id = v.column1 AND purpose_id = %s "
                "AND channel = 'email' AND status IN ('granted', 'pending') "
                "RETURNING consent_consentstate.contact_id",
                [*(v for contact, at, _r in asked for v in (contact, at)), self.purpose_id],
            )
            withdrawn = {row[0] for row in cursor.fetchall()}
            records = [(c, at, r) for c, at, r in asked if c in withdrawn]
            if records:
                cursor.execute(
                    "INSERT INTO bench_pull_withdrawal "
                    "(contact_id, purpose_id, channel, given_at, source_reference) VALUES "
                    + ", ".join(["(%s, %s, 'email', %s, %s)"] * len(records)),
                    [
                        value
                        for contact, at, remote in records
                        for value in (contact, self.purpose_id, at, f"hubspot-pull-bench:{remote}")
                    ],
                )
        return len(records)


def _opt_outs_dated(
    session: Any,
    url: str,
    headers: dict[str, str],
    rows: list[tuple[str, int, dict[str, str], Any]],
) -> list[tuple[str, int, dict[str, str], int | None]]:
    """The page's rows with, for the opted out, the time of their opt-out property's latest
    change, read as the product reads it: batch read with `propertiesWithHistory`, 50 a call,
    for the contacts holding the property."""
    holding = [remote for remote, _m, _f, out in rows if out in ("true", "false")]
    changed: dict[str, int] = {}
    for start in range(0, len(holding), 50):
        body = {
            "inputs": [{"id": remote} for remote in holding[start : start + 50]],
            "properties": [OPT_OUT_PROPERTY],
            "propertiesWithHistory": [OPT_OUT_PROPERTY],
        }
        answer = session.post(
            f"{url}{BATCH_READ}?archived=false", data=json.dumps(body), headers=headers, timeout=30
        )
        answer.raise_for_status()
        for result in answer.json()["results"]:
            history = (result.get("propertiesWithHistory") or {}).get(OPT_OUT_PROPERTY) or []
            latest = max(history, key=lambda change: change["timestamp"], default=None)
            if latest is not None and latest.get("value") == "true":
                changed[str(result["id"])] = _milliseconds(latest["timestamp"])
    return [
        (remote, modified, fields, changed.get(remote, modified) if out == "true" else None)
        for remote, modified, fields, out in rows
    ]


def baseline_pull(url: str, connection_id: int) -> dict[str, Any]:
    """The same searches by hand (`requests`), each page written with hand-written SQL."""
    import requests

    session = requests.Session()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    writer = BaselineWriter(connection_id)
    stages = {theirs: ours for ours, theirs in PULL_STAGES.items()}
    since, seen = 0, set[str]()
    fetched = pages = withdrawn = 0
    while True:
        answer = session.post(
            f"{url}{SEARCH}", data=json.dumps(_pull_body(since, seen)), headers=headers, timeout=30
        )
        answer.raise_for_status()
        data = answer.json()
        following = (data.get("paging") or {}).get("next")
        rows = []
        for result in data["results"]:
            properties = result["properties"]
            modified = _milliseconds(properties["lastmodifieddate"])
            if modified < since or (modified == since and result["id"] in seen):
                continue
            fields = {ours: properties.get(theirs) or "" for ours, theirs in PULLED}
            fields["lifecycle_stage"] = stages.get(
                fields["lifecycle_stage"], fields["lifecycle_stage"]
            )
            out = properties.get(OPT_OUT_PROPERTY)
            rows.append((str(result["id"]), modified, fields, out))
        if not rows and following:
            raise RuntimeError("a whole page shares the cursor's time: not in this fixture")
        kept = rows[:SEARCH_PAGE]
        if kept:
            withdrawn += writer.write(_opt_outs_dated(session, url, headers, kept))
            pages += 1
            fetched += len(kept)
            for remote_id, modified, _fields, _out in kept:
                if modified > since:
                    since, seen = modified, set()
                seen.add(remote_id)
        if following is None and len(kept) == len(rows):
            break
    return {"pages": pages, "fetched": fetched, "consents": withdrawn}


def pull_state(connection_id: int) -> dict[str, Any]:
    """What is in our database after a pull, to check it complete (either side)."""
    from django.db import connection
    from django.db.models import Count

    from consent.models import ConsentRecord, ConsentState, ConsentStatus, SourceKind
    from contacts.models import Contact
    from crmsync.models import ContactLink

    links = ContactLink.objects.filter(connection_id=connection_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bench_pull_withdrawal")
        (table,) = cursor.fetchone()
    return {
        "contacts": Contact.objects.count(),
        "emails": Contact.objects.filter(email__endswith="@bench-pull.example").count(),
        "most_per_email": max(
            Contact.objects.values("email").annotate(n=Count("pk")).values_list("n", flat=True),
            default=0,
        ),
        "links": links.count(),
        "remote_ids": set(links.values_list("remote_id", flat=True)),
        "changed": Contact.objects.filter(
            company__endswith=" Group", lifecycle_stage="opportunity"
        ).count(),
        "withdrawn_states": ConsentState.objects.filter(status=ConsentStatus.WITHDRAWN).count(),
        "crm_records": ConsentRecord.objects.filter(source_kind=SourceKind.CRM).count(),
        "baseline_withdrawals": table,
    }


def pull_check(side: str, count: int, connection_id: int, result: dict[str, Any]) -> dict[str, Any]:
    """Both sides did the whole work: every emulator contact ours once (the changed ones
    changed), linked to its HubSpot id, the withdrawals written; for the product, its
    outcome as expected, the records in the ledger and the ledger verified."""
    from consent.ledger import ledger_verify

    state = pull_state(connection_id)
    expected = pull_expected(count)
    problems = []
    if state["contacts"] != count or state["emails"] != count or state["most_per_email"] != 1:
        problems.append("contacts")
    if state["links"] != count or state["remote_ids"] != {str(FIRST_ID + n) for n in range(count)}:
        problems.append("links")
    if state["changed"] != expected["updated"]:
        problems.append("changed fields")
    if (
        state["withdrawn_states"] != expected["consents"]
        or result["consents"] != expected["consents"]
    ):
        problems.append("withdrawals")
    if result["fetched"] != count:
        problems.append("fetched")
    if side == "product":
        if any(result[name] != value for name, value in expected.items()):
            problems.append("outcome")
        if state["crm_records"] != expected["consents"] or state["baseline_withdrawals"]:
            problems.append("ledger records")
        report = ledger_verify()
        state["ledger_problems"] = report.problem_count
        if report.problem_count:
            problems.append(f"ledger: {list(report)[:3]}")
    elif state["baseline_withdrawals"] != expected["consents"] or state["crm_records"]:
        problems.append("baseline withdrawals")
    state.pop("remote_ids")
    if problems:
        raise RuntimeError(f"{side}: incomplete run ({', '.join(problems)}): {result} / {state}")
    return state


def template_make() -> None:
    """Keep the fixture as a template database: each run starts from a copy of it."""
    harness._close_connections()
    harness._psql(f"DROP DATABASE IF EXISTS {PULL_TEMPLATE}")
    harness._psql(f"CREATE DATABASE {PULL_TEMPLATE} TEMPLATE {PULL_DATABASE}")


def template_restore() -> None:
    """The benchmark's database back to the fixture (the pull cursor included)."""
    from django.core.cache import cache

    harness._close_connections()
    harness._psql(f"DROP DATABASE {PULL_DATABASE}")
    harness._psql(f"CREATE DATABASE {PULL_DATABASE} TEMPLATE {PULL_TEMPLATE}")
    cache.clear()  # the enabled connections' ids, the queued-push marks (local memory)


def row_pull() -> None:
    count = ARGS.contacts
    emulator = PullEmulator()
    try:
        started = time.perf_counter()
        emulator.load(contacts=count, since=pull_since())
        print(f"  emulator: {count:,} contacts in {time.perf_counter() - started:.1f} s")
        connection_id = pull_fixture(count, emulator.url)
        template_make()
        print(
            f"row pull: {count:,} contacts changed in HubSpot, {pull_expected(count)}", flush=True
        )
        seen: dict[str, list[dict[str, Any]]] = {"product": [], "baseline": []}

        def runner(side: str) -> Callable[[int], Measure]:
            def one(number: int) -> Measure:
                template_restore()
                emulator.counters_reset()
                if side == "product":
                    work = partial(product_pull, connection_id)
                else:
                    work = partial(baseline_pull, emulator.url, connection_id)
                measured = measure(work, units=count, label=f"{side} {number + 1}")
                stats = emulator.stats()
                state = pull_check(side, count, connection_id, measured.extra)
                print(
                    f"    emulator: {stats['searches']} searches, {stats['served']:,} results "
                    f"served, {stats['search_bytes'] / 1e3:.0f} kB of bodies, answers "
                    f"{stats['statuses']}, its RSS {stats['rss_mb']} MB; side: {measured.extra}; "
                    f"checked: {state}",
                    flush=True,
                )
                measured.extra.update({"emulator": stats, "checked": state})
                seen[side].append(stats)
                return measured

            return one

        summaries = runs_median(
            {side: runner(side) for side in ("product", "baseline")}, runs=ARGS.runs
        )
        pull_report(summaries, {"expected": pull_expected(count), "emulator": seen})
    finally:
        emulator.stop()
        harness._close_connections()
        harness._psql(f"DROP DATABASE IF EXISTS {PULL_TEMPLATE}")


def pull_report(summaries: dict[str, Summary], extra: dict[str, Any]) -> None:
    product, baseline = summaries["product"], summaries["baseline"]
    ratio = product.rate / baseline.rate if baseline.rate else 0.0
    print()
    print("| side | median s | median contacts/s | queries/contact | peak RSS growth | loads |")
    print("|---|---|---|---|---|---|")
    for summary in summaries.values():
        print(
            f"| {summary.name} | {summary.seconds:.3f} | {summary.rate:,.1f} "
            f"| {summary.queries_per_unit:.3f} | +{summary.rss_growth_mb:.0f} MB "
            f"| {' '.join(f'{load:.1f}' for load in summary.loads)} |"
        )
    print(f"product / baseline: {ratio:.3f}x")
    path = harness.result_save(
        "crm_sync-pull",
        {
            "args": {k: v for k, v in vars(ARGS).items() if k != "handler"},
            "ratio_product_to_baseline": round(ratio, 3),
            "sides": {name: summary.as_dict() for name, summary in summaries.items()},
            **extra,
        },
    )
    print(f"saved {path.relative_to(harness.ROOT)}", flush=True)


def _statement_timed(
    statements: dict[str, list[float]],
    execute: Callable[..., Any],
    sql: str,
    params: Any,
    many: bool,
    context: Any,
) -> Any:
    """Count and time each statement, by its text up to the first 110 characters."""
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        text = re.sub(r'"s\d+_x\d+"', '"s_x"', " ".join(sql.split()))  # savepoints as one
        entry = statements.setdefault(text[:110], [0, 0.0])
        entry[0] += 1
        entry[1] += time.perf_counter() - started


def pull_profile() -> None:
    """One product run under cProfile (after the fixture): where the pull's time goes."""
    import cProfile
    import pstats

    from django.db import connection

    count = ARGS.contacts
    emulator = PullEmulator()
    try:
        emulator.load(contacts=count, since=pull_since())
        connection_id = pull_fixture(count, emulator.url)
        profiler = cProfile.Profile()
        statements: dict[str, list[float]] = {}
        started = time.perf_counter()
        with connection.execute_wrapper(partial(_statement_timed, statements)):
            profiler.runcall(product_pull, connection_id)
        seconds = time.perf_counter() - started
        print(f"  product under cProfile: {seconds:.2f} s, {count / seconds:,.1f} contacts/s")
        print("  statements per contact (count, total ms, statement):")
        for text, (number, spent) in sorted(statements.items(), key=lambda item: -item[1][1])[:30]:
            print(f"    {number / count:7.3f} {spent * 1000:9.1f} ms  {text}")
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(25)
    finally:
        emulator.stop()


def main() -> None:
    print(f"row {ARGS.row}: {harness.machine()}", flush=True)
    if ARGS.row in ("pull", "pull-profile"):
        harness.configure(database=PULL_DATABASE)
        with harness.bench_database(keep=ARGS.keep):
            row_pull() if ARGS.row == "pull" else pull_profile()
        return
    harness.configure(database="cd_bench_crm_sync")
    with harness.bench_database(keep=ARGS.keep):
        row_push()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    rows = parser.add_subparsers(dest="row", required=True)
    push = rows.add_parser("push")
    push.add_argument("--events", type=int, default=100_000)
    push.add_argument("--runs", type=int, default=3, help="runs per side (median)")
    push.add_argument("--ratio", type=float, default=0.1, help="share of calls answered 429")
    push.add_argument("--retry-after", default="1", help="the 429s' Retry-After (seconds)")
    push.add_argument("--keep", action="store_true", help="keep the database afterwards")
    rows.add_parser("emulator", help="the HubSpot emulator process (used by `push`)")
    for name in ("pull", "pull-profile"):
        pull = rows.add_parser(name)
        pull.add_argument("--contacts", type=int, default=100_000)
        pull.add_argument("--runs", type=int, default=3, help="runs per side (median)")
        pull.add_argument("--keep", action="store_true", help="keep the database afterwards")
    rows.add_parser("pull-emulator", help="the HubSpot emulator process (used by `pull`)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    ARGS = parse(sys.argv[1:])
    if ARGS.row == "emulator":
        emulator_main()
    elif ARGS.row == "pull-emulator":
        pull_emulator_main()
    else:
        main()
