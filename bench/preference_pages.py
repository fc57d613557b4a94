"""Preference center and one-click unsubscribe: requests/s next to a trivial Django view.

Run from the repository root (PostgreSQL must be running):

    .venv/bin/python bench/preference_pages.py [--requests 600] [--unsubscribes 90]
        [--contacts 300] [--clients 4] [--rounds 3] [--warmup 100] [--workers 3]
        [--in-process 60]

It creates (and afterwards drops) the database `cd_bench_pages`, so it never touches
yours nor the one of bench/consent_writes.py, and serves the app with gunicorn (`--workers`
sync workers, 3 as the image runs them: Dockerfile, `WEB_CONCURRENCY`; production settings,
DEBUG off) on port 8797 with `bench.settings`: the app's settings and URLs plus
`bench/trivial/`, a view answering "ok" through the same middleware, and
`bench/page-statements/<token>/`, the page's five statements without the ORM and nothing else
(bench/urls.py). The rate limits are raised so high that they never refuse, but every request
still pays their cache checks.

Before the HTTP rounds, each kind is also served `--in-process` times by Django's test client
in this process, one request at a time, its time split between waiting for PostgreSQL and the
rest (Python): where a ratio's floor lies whatever the Python costs.
"""

import argparse
import http.client
import random
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PORT = 8797
HOST = "127.0.0.1"
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"
ONE_CLICK_HEADERS = {
    "Content-Type": "application/x-www-form-urlencoded",
    "User-Agent": "Mail provider one-click (bench)",
}

sys.path.insert(0, str(ROOT))
from bench import harness  # noqa: E402

DATABASE = harness.configure(
    database="pages",
    settings="bench.settings",
    **{
        "ALLOWED_HOSTS": HOST,
        "PREFERENCES_RATE_PER_TOKEN": "100000000/m",
        "PREFERENCES_RATE_PER_IP": "100000000/m",
    },
)
warnings.filterwarnings("ignore", message="No directory at")

# slug, English name, legal basis, profiling: 5 marketing purposes, each on email and SMS
PURPOSES = [
    ("newsletter", "Newsletter", "consent", False),
    ("offers", "Special offers", "consent", False),
    ("events", "Events and webinars", "consent", False),
    ("recommendations", "Personal recommendations", "consent", True),
    ("customer-news", "News for customers", "legitimate_interests", False),
]
INTERESTS = ["cycling", "hiking", "running", "swimming"]
GRANTS_PER_CONTACT = 3
WARMUP_CONTACTS = 20  # for the one-click warm-up


@dataclass
class Run:
    """What one kind of request gave, over all rounds."""

    name: str
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    failures: Counter = field(default_factory=Counter)
    round_rates: list[float] = field(default_factory=list)
    in_process: "InProcess | None" = None

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def mean_ms(self) -> float:
        return 1000 * statistics.fmean(self.latencies)

    @property
    def p95_ms(self) -> float:
        return 1000 * statistics.quantiles(self.latencies, n=20, method="inclusive")[18]

    def add(self, latencies: list[float], seconds: float, failures: Counter) -> None:
        self.latencies += latencies
        self.seconds += seconds
        self.failures += failures
        self.round_rates.append(len(latencies) / seconds)


recreate_database = harness.database_recreate
drop_database = harness.database_drop
USER_AGENT = harness.USER_AGENT


def setup(count: int) -> list[str]:
    """Migrate, create the purposes and interests, and `count` contacts with a few consents
    each and one preference token; answer the tokens, in the contacts' order."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction

    from consent.models import Purpose, PurposeVersion
    from contacts.models import Interest

    call_command("migrate", verbosity=0)
    for slug, name, basis, profiling in PURPOSES:
        purpose = Purpose.objects.create(
            slug=slug,
            name_fr=f"{name} (fr)",
            name_en=name,
            description_fr=f"Description de {slug}.",
            description_en=f"What {slug} is about.",
            legal_basis=basis,
            channels=["email", "sms"],
            is_profiling=profiling,
        )
        PurposeVersion.objects.create(
            purpose=purpose,
            number=1,
            wording_fr=f"J'accepte de recevoir {name.lower()}.",
            wording_en=f"I agree to receive {name.lower()}.",
        )
    consent_purposes = list(Purpose.objects.filter(legal_basis="consent").order_by("slug"))
    interests = [
        Interest.objects.create(slug=slug, name_fr=slug.capitalize(), name_en=slug.capitalize())
        for slug in INTERESTS
    ]
    tokens: list[str] = []
    for start in range(0, count, 200):
        with transaction.atomic():  # one commit per 200 contacts: the setup stays quick
            tokens += [
                _contact_create(n, consent_purposes, interests)
                for n in range(start, min(start + 200, count))
            ]
    return tokens


def _contact_create(n: int, purposes: list, interests: list) -> str:
    """Contact n: French or English, two interests, three grants with full evidence."""
    from contacts.models import Contact
    from preferences.services import preference_token_issue

    contact = Contact.objects.create(
        email=f"person{n}@example.fr",
        first_name="Camille",
        last_name=f"Martin{n}",
        language="fr" if n % 3 else "en",
    )
    contact.interests.set([interests[n % 4], interests[(n + 1) % 4]])
    pairs = [(purpose, channel) for purpose in purposes for channel in ("email", "sms")]
    chosen = [pairs[(n + 3 * k) % len(pairs)] for k in range(GRANTS_PER_CONTACT)]
    harness.writes_record(
        [harness.grant_write(contact, purpose, channel, n) for purpose, channel in chosen]
    )
    return preference_token_issue(contact=contact)


@dataclass
class InProcess:
    """One kind of request served in this process by the test client: its SQL queries (the
    second request of its kind, so that nothing only the first pays is counted), and over
    `--in-process` requests the mean time of a request and how much of it was spent waiting
    for PostgreSQL (statements and commits). What is left is Python: Django, the app, and the
    test client's own share, which the trivial view's line shows."""

    queries: int
    ms: float
    database_ms: float


def in_process(page_tokens: list[str], click_tokens: list[str]) -> dict[str, InProcess]:
    """Measure every kind in this process; the first-time clicks take `click_tokens`, contacts
    the HTTP rounds never use, and the repeated clicks the same ones again."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST=HOST, HTTP_USER_AGENT=USER_AGENT)
    clicks = iter(click_tokens * 2)

    def click() -> Any:
        return client.post(
            f"/u/{next(clicks)}/", ONE_CLICK_BODY, content_type=ONE_CLICK_HEADERS["Content-Type"]
        )

    requests = {
        "trivial": lambda n: client.get("/bench/trivial/"),
        "page": lambda n: client.get(f"/p/{page_tokens[n % len(page_tokens)]}/"),
        "statements": lambda n: client.get(
            f"/bench/page-statements/{page_tokens[n % len(page_tokens)]}/"
        ),
        "first": lambda n: click(),
        "repeat": lambda n: click(),
    }
    waited = [0.0]

    def timed(execute: Any, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(*args)
        finally:
            waited[0] += time.perf_counter() - started

    connection.ensure_connection()
    commit = connection._commit
    connection._commit = lambda: timed(commit)  # type: ignore[method-assign]
    found = {}
    try:
        with connection.execute_wrapper(timed):
            for name, send in requests.items():
                count = len(click_tokens) if name in ("first", "repeat") else ARGS.in_process
                send(0)
                with CaptureQueriesContext(connection) as queries:
                    send(1)
                counted = len(queries)  # now: the next request empties Django's query log
                waited[0] = 0.0
                started = time.perf_counter()
                statuses = {send(n).status_code for n in range(2, count)}
                elapsed = time.perf_counter() - started
                assert statuses == {200}, (name, statuses)
                found[name] = InProcess(
                    counted, 1000 * elapsed / (count - 2), 1000 * waited[0] / (count - 2)
                )
    finally:
        connection._commit = commit  # type: ignore[method-assign]
    return found


def gunicorn_start() -> subprocess.Popen:
    """gunicorn with `--workers` sync workers on PORT, once it answers; refuses a port already
    taken."""
    try:
        http.client.HTTPConnection(HOST, PORT, timeout=1).connect()
    except OSError:
        pass
    else:
        raise RuntimeError(f"port {PORT} is taken: something else would be measured")
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "gunicorn", "config.wsgi"),
            *("-b", f"{HOST}:{PORT}", "-w", str(ARGS.workers), "-k", "sync"),
            *("--log-level", "warning"),
        ],
        cwd=ROOT,
    )
    for _attempt in range(100):
        if server.poll() is not None:
            raise RuntimeError("gunicorn exited")
        try:
            connection = http.client.HTTPConnection(HOST, PORT, timeout=1)
            connection.request("GET", "/bench/trivial/")
            connection.getresponse().read()
            return server
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError("gunicorn did not start")


def measure(
    method: str,
    paths: list[str],
    body: str | None = None,
    headers: dict | None = None,
    into: Run | None = None,
) -> None:
    """Send the requests from `--clients` threads in parallel, each request timed alone."""
    headers = {"User-Agent": USER_AGENT, **(headers or {})}
    latencies: list[float] = []
    failures: Counter = Counter()
    chunks = [paths[i :: ARGS.clients] for i in range(ARGS.clients)]
    threads = [
        threading.Thread(target=_send_all, args=(method, chunk, body, headers, latencies, failures))
        for chunk in chunks
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if into is not None:
        into.add(latencies, time.perf_counter() - started, failures)


def _send_all(
    method: str,
    paths: list[str],
    body: str | None,
    headers: dict,
    latencies: list[float],
    failures: Counter,
) -> None:
    # gunicorn's sync workers close the connection after each answer; http.client reconnects
    connection = http.client.HTTPConnection(HOST, PORT, timeout=60)
    for path in paths:
        started = time.perf_counter()
        try:
            connection.request(method, path, body, headers)
            response = connection.getresponse()
            response.read()
            status: int | str = response.status
        except (OSError, http.client.HTTPException) as error:
            status = type(error).__name__
            connection.close()
        latencies.append(time.perf_counter() - started)
        if status != 200:
            failures[status] += 1


def one_click_records() -> int:
    from consent.models import ConsentRecord

    return ConsentRecord.objects.filter(source_kind="one_click_unsubscribe").count()


def main() -> None:
    wanted = ARGS.contacts + ARGS.unsubscribes + WARMUP_CONTACTS + ARGS.in_process
    print(f"setting up {wanted} contacts ...", flush=True)
    started = time.perf_counter()
    recreate_database()
    tokens = setup(wanted)
    print(f"setup took {time.perf_counter() - started:.0f} s", flush=True)
    page_tokens = tokens[: ARGS.contacts]
    unsubscribe_tokens = tokens[ARGS.contacts : ARGS.contacts + ARGS.unsubscribes]
    warmup_tokens = tokens[ARGS.contacts + ARGS.unsubscribes : -ARGS.in_process]
    measured = in_process(page_tokens, click_tokens=tokens[-ARGS.in_process :])
    runs = {
        "trivial": Run("trivial view GET /bench/trivial/"),
        "page": Run("preference page GET /p/<token>/"),
        "statements": Run("the page's 5 statements alone GET /bench/page-statements/<token>/"),
        "first": Run("one-click POST /u/<token>/, first time"),
        "repeat": Run("one-click POST /u/<token>/, repeat"),
    }
    written = {"first": 0, "repeat": 0}
    server = gunicorn_start()
    try:
        _warm_up(page_tokens, warmup_tokens)
        rng = random.Random(3)
        for n in range(ARGS.rounds):
            print(f"round {n + 1} of {ARGS.rounds} ...", flush=True)
            _round(n, rng, page_tokens, unsubscribe_tokens, runs, written)
    finally:
        server.terminate()
        server.wait(timeout=20)
    for kind, run in runs.items():
        run.in_process = measured[kind]
    _report(list(runs.values()), written)
    drop_database()


def _round(
    n: int,
    rng: random.Random,
    page_tokens: list[str],
    unsubscribe_tokens: list[str],
    runs: dict[str, Run],
    written: dict[str, int],
) -> None:
    """One round: a share of every kind, one after the other, so that each kind meets the
    same background load as the others; the first-time clicks take contacts never used."""
    share = ARGS.requests // ARGS.rounds
    measure("GET", ["/bench/trivial/"] * share, into=runs["trivial"])
    chosen = [rng.choice(page_tokens) for _request in range(share)]
    measure("GET", [f"/p/{token}/" for token in chosen], into=runs["page"])
    statements = [f"/bench/page-statements/{token}/" for token in chosen]
    measure("GET", statements, into=runs["statements"])
    clicks = [f"/u/{token}/" for token in unsubscribe_tokens[n :: ARGS.rounds]]
    for kind in ("first", "repeat"):
        before = one_click_records()
        measure("POST", clicks, ONE_CLICK_BODY, ONE_CLICK_HEADERS, into=runs[kind])
        written[kind] += one_click_records() - before
        rng.shuffle(clicks)


def _warm_up(page_tokens: list[str], warmup_tokens: list[str]) -> None:
    """Load every code path in every worker and fill PostgreSQL's cache before measuring."""
    measure("GET", ["/bench/trivial/"] * ARGS.warmup)
    measure("GET", [f"/p/{token}/" for token in page_tokens[: ARGS.warmup]])
    measure("GET", [f"/bench/page-statements/{token}/" for token in page_tokens[: ARGS.warmup]])
    for _repeat in range(2):
        measure(
            "POST", [f"/u/{token}/" for token in warmup_tokens], ONE_CLICK_BODY, ONE_CLICK_HEADERS
        )


def _report(runs: list[Run], written: dict[str, int]) -> None:
    from consent.ledger import ledger_verify
    from contacts.models import Suppression

    trivial = runs[0].rate
    print()
    print(
        f"gunicorn -w {ARGS.workers} (sync), {ARGS.clients} client threads, {ARGS.rounds} rounds, "
        f"GETs spread over {ARGS.contacts} contacts"
    )
    print()
    print(
        "| request | requests | req/s | mean ms | p95 ms | ratio to trivial | SQL queries "
        "| in-process ms | of which PostgreSQL ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        alone = run.in_process
        assert alone is not None
        print(
            f"| {run.name} | {len(run.latencies)} | {run.rate:.1f} | {run.mean_ms:.1f} "
            f"| {run.p95_ms:.1f} | {run.rate / trivial:.3f} | {alone.queries} "
            f"| {alone.ms:.2f} | {alone.database_ms:.2f} |"
        )
    print()
    print(
        f"in-process: {ARGS.in_process} requests of each kind served by the test client in this "
        "process, one at a time; PostgreSQL ms: waiting for its statements and commits"
    )
    print()
    for run in runs:
        rates = ", ".join(f"{rate:.1f}" for rate in run.round_rates)
        print(f"req/s per round, {run.name}: {rates}")
    failures = sum((run.failures for run in runs), Counter())
    print(f"failed requests (not 200):         {dict(failures) or 0}")
    per_click = written["first"] / max(ARGS.unsubscribes, 1)
    print(f"ledger records, first-time clicks: {written['first']} ({per_click:.1f} per request)")
    print(f"ledger records, repeated clicks:   {written['repeat']}")
    print(f"suppressed addresses:              {Suppression.objects.count()}")
    problems = ledger_verify()
    print(f"ledger verifies:                   {'yes' if not problems else problems[:3]}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=600, help="GETs of each kind")
    parser.add_argument(
        "--unsubscribes", type=int, default=90, help="one-click POSTs of each kind (contacts)"
    )
    parser.add_argument("--contacts", type=int, default=300, help="contacts the GETs spread over")
    parser.add_argument("--clients", type=int, default=4, help="client threads in parallel")
    parser.add_argument("--rounds", type=int, default=3, help="kinds alternate this many times")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up GETs of each kind")
    parser.add_argument(
        "--in-process",
        type=int,
        default=60,
        help="requests of each kind timed in this process, PostgreSQL's share apart (contacts)",
    )
    parser.add_argument(
        "--workers", type=int, default=3, help="gunicorn sync workers (the image runs 3)"
    )
    ARGS = parser.parse_args()
    if ARGS.in_process < 3:
        parser.error("--in-process: at least 3 (two requests of each kind are not timed)")
    main()
