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

Results go to bench/results/crm_sync-<row>-<time>.json.
"""

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
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

    def __init__(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own script
            [sys.executable, __file__, "emulator"],
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


def main() -> None:
    print(f"row {ARGS.row}: {harness.machine()}", flush=True)
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
    return parser.parse_args(argv)


if __name__ == "__main__":
    ARGS = parse(sys.argv[1:])
    if ARGS.row == "emulator":
        emulator_main()
    else:
        main()
