"""What every benchmark shares: its own PostgreSQL database, Django, purposes, consent writes,
and the measures (medians of several runs, machine load, peak memory, SQL queries per unit).

A benchmark script calls `configure(database=...)` before importing anything from Django, then
`database_recreate()`, `django_setup()` and `migrate()`; it drops its database at the end with
`database_drop()`. Measures come from `measure(function, units=...)`, repeated with
`runs_median(...)`, written with `result_save(...)` beside the load they ran under.
"""

import base64
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
PREFIX = "cd_bench_"
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) bench/1.0"

_database = ""


# ---------------------------------------------------------------------------------------------
# Environment, database, Django


def configure(*, database: str, settings: str = "bench.settings", **extra: str) -> str:
    """Point Django at the benchmark's own database (call before importing Django code):
    the production settings (`bench.settings`: plus the trivial view and mail built and
    thrown away), DEBUG off, eager Celery, no Redis."""
    global _database
    _database = database if database.startswith(PREFIX) else PREFIX + database
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": settings,
            "DEBUG": "false",
            "DATABASE_URL": f"{PG}/{_database}",
            "SECRET_KEY": "bench-secret-key-" + "x" * 40,
            "SITE_URL": "http://127.0.0.1",
            "SUPPRESSION_HMAC_KEY": "bench-suppression-key-" + "s" * 30,
            "LEDGER_SEAL_KEY": "bench-ledger-seal-key-" + "l" * 30,
            "FIELD_ENCRYPTION_KEY": base64.urlsafe_b64encode(
                b"bench-field-encryption-key-32byt"
            ).decode(),
            "ALLOWED_HOSTS": "127.0.0.1",
            "CONTROLLER_NAME": "Bench SAS",
            "CONTROLLER_ADDRESS": "1 rue du Banc, 75001 Paris",
            "DPO_CONTACT": "dpo@bench.example",
            "PRIVACY_NOTICE_URL": "https://bench.example/privacy",
            "SECURE_SSL_REDIRECT": "false",
            "CELERY_TASK_ALWAYS_EAGER": "true",
            # a real backend for the settings' check; `django_setup` swaps in CountingBackend
            "EMAIL_URL": "smtp://127.0.0.1:25",
            "LOG_LEVEL": "WARNING",
            # whitenoise warns once per process that collectstatic never ran: irrelevant here
            "PYTHONWARNINGS": "ignore:No directory at",
            **extra,
        }
    )
    os.environ.pop("REDIS_URL", None)
    warnings.filterwarnings("ignore", message="No directory at")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return _database


def _psql(statement: str) -> None:
    subprocess.run(["psql", f"{PG}/postgres", "-qc", statement], check=True)


def database_recreate(name: str | None = None) -> None:
    """Drop (if it exists) and create the benchmark's database."""
    name = name or _database
    _close_connections()
    _psql(f"DROP DATABASE IF EXISTS {name}")
    _psql(f"CREATE DATABASE {name}")


def database_drop(name: str | None = None) -> None:
    name = name or _database
    _close_connections()
    _psql(f"DROP DATABASE IF EXISTS {name}")


@contextmanager
def bench_database(*, keep: bool = False) -> Iterator[None]:
    """A fresh, migrated database for the block, dropped afterwards unless `keep`."""
    database_recreate()
    django_setup()
    migrate()
    try:
        yield
    finally:
        if not keep:
            database_drop()


def _close_connections() -> None:
    if "django.db" in sys.modules:
        from django.db import connections

        connections.close_all()


class CountingBackend:
    """Builds every message as the SMTP backend would (MIME, headers), counts it, drops it."""

    sent = 0

    def __init__(self, fail_silently: bool = False, **kwargs: Any) -> None:
        pass

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def send_messages(self, messages: list) -> int:
        for message in messages:
            message.message().as_bytes()
        CountingBackend.sent += len(messages)
        return len(messages)


def django_setup() -> None:
    """Set Django up; mail is built and counted, never sent (`CountingBackend`)."""
    import django
    from django.conf import settings

    django.setup()
    settings.EMAIL_BACKEND = "bench.harness.CountingBackend"


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def on_postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


# ---------------------------------------------------------------------------------------------
# Data: purposes and consent writes through the one write path


def purpose_create(
    slug: str,
    *,
    name: str = "",
    retention_days: int | None = None,
    double_opt_in: bool = False,
    legal_basis: str = "consent",
    is_profiling: bool = False,
    channels: Sequence[str] = ("email", "sms"),
) -> Any:
    """A purpose with its first wording version, loaded as `purposes_with_versions` gives it
    (so `current_version` costs no query)."""
    from consent.models import Purpose, PurposeVersion
    from consent.selectors import purposes_with_versions

    name = name or slug.replace("-", " ").capitalize()
    purpose = Purpose.objects.create(
        slug=slug,
        name_fr=f"{name} (fr)",
        name_en=name,
        description_fr=f"Description de {slug}.",
        description_en=f"What {slug} is about.",
        channels=list(channels),
        retention_days=retention_days,
        double_opt_in=double_opt_in,
        legal_basis=legal_basis,
        is_profiling=is_profiling,
    )
    PurposeVersion.objects.create(
        purpose=purpose,
        number=1,
        wording_fr=f"J'accepte de recevoir {slug}.",
        wording_en=f"I agree to receive {slug}.",
    )
    return purposes_with_versions().get(pk=purpose.pk)


def grant_write(
    contact: Any,
    purpose: Any,
    channel: str,
    n: int,
    *,
    source_kind: str = "web_form",
    given_at: datetime | None = None,
) -> Any:
    """One grant with full evidence (wording, unticked box, policy, IP, user agent)."""
    from consent.services import ConsentWrite, Evidence

    return ConsentWrite(
        contact=contact,
        purpose=purpose,
        channel=channel,
        action="grant",
        source_kind=source_kind,
        source_reference="https://example.fr/newsletter",
        given_at=given_at,
        evidence=Evidence(
            wording=purpose.current_version.wording_fr,
            unticked_by_default=True,
            policy_version="2026-01",
            ip=f"203.0.113.{n % 250 + 1}",
            user_agent=USER_AGENT,
        ),
    )


def grant(contact: Any, purpose: Any, channel: str, n: int) -> None:
    """One grant through `consent_record` (the single-write path)."""
    from consent.services import consent_record

    consent_record(write=grant_write(contact, purpose, channel, n))


def writes_record(writes: Sequence[Any], *, chunk: int = 1000) -> int:
    """Record consent writes through the set-based path, `chunk` per call (and transaction)."""
    from consent.services import consents_record_many

    for start in range(0, len(writes), chunk):
        consents_record_many(writes=writes[start : start + chunk])
    return len(writes)


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------------------------------------
# Measures


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_KB / 1024


@contextmanager
def sampled_rss(samples: list[float], every: float = 0.05) -> Iterator[None]:
    """Sample this process's resident memory every `every` seconds while the block runs."""
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(every):
            samples.append(rss_mb())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def vm_hwm_mb() -> float:
    """This process's peak resident memory (VmHWM). Not `ru_maxrss`: Linux carries that over
    exec from the parent, so a child would report its parent's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


CHILD = """
import importlib, json, sys, time
sys.path.insert(0, {root!r})
from bench import harness
harness.configure(database={database!r})
harness.django_setup()
from django.db import connection
connection.ensure_connection()
module, name = {target!r}.split(":")
function = getattr(importlib.import_module(module), name)
before = harness.rss_mb()
started = time.perf_counter()
function()
seconds = time.perf_counter() - started
print(json.dumps({{"seconds": seconds, "rss_before_mb": before, "peak_mb": harness.vm_hwm_mb()}}))
"""


def child_measure(target: str) -> dict[str, float]:
    """Run `module:function` alone in a fresh Python process on this benchmark's database:
    its seconds, its resident memory before the call (Django loaded) and its peak (VmHWM), so
    that the memory is the job's own and not what the benchmark process built before."""
    code = CHILD.format(root=str(ROOT), database=_database, target=target)
    _close_connections()
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


@dataclass
class Measure:
    """One timed run: wall time, units of work, SQL statements, memory, machine load."""

    seconds: float
    units: int
    queries: int
    rss_start_mb: float
    rss_peak_mb: float
    load: tuple[float, float] = (0.0, 0.0)
    extra: dict[str, Any] = field(default_factory=dict)
    python_cpu_s: float = 0.0  # this process, every thread
    database_cpu_s: float | None = None  # the PostgreSQL backend of this thread's connection

    @property
    def rate(self) -> float:
        return self.units / self.seconds if self.seconds else 0.0

    @property
    def queries_per_unit(self) -> float:
        return self.queries / self.units if self.units else 0.0

    @property
    def rss_growth_mb(self) -> float:
        return self.rss_peak_mb - self.rss_start_mb

    def cpu_us_per_unit(self) -> tuple[float, float | None]:
        """CPU microseconds a unit of work cost in Python (this process) and in the
        connection's PostgreSQL backend (None when not measured)."""
        units = self.units or 1
        database = self.database_cpu_s
        return 1e6 * self.python_cpu_s / units, (
            None if database is None else 1e6 * database / units
        )


def database_cpu() -> tuple[int, float] | None:
    """The PostgreSQL backend serving this thread's connection and the CPU seconds it has
    used so far, read from /proc (the server runs on this machine); None on another database
    or when the process cannot be read."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # after the command's name in parentheses: state is the first field, utime the 12th and
    # stime the 13th (proc(5): fields 14 and 15 of the line), in clock ticks
    fields = stat.rsplit(")", 1)[1].split()
    return pid, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def counting_queries(counter: list[int]) -> Iterator[None]:
    """Count the SQL statements of this thread's default connection into `counter[0]` (a
    thread of the benchmark opens the block itself, on its own connection). A counter, not
    `CaptureQueriesContext`, so a million statements cost no memory and none is dropped."""
    from django.db import connection

    def count(execute: Callable, sql: str, params: Any, many: bool, context: dict) -> Any:
        counter[0] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        yield


def measure(
    function: Callable[[], Any], *, units: int | Callable[[Any], int], label: str = ""
) -> Measure:
    """Run `function` once and measure it; `units` is how much work it did (or a function of
    its result). Other benchmark threads add their statements through `extra["queries"]`."""
    counter = [0]
    samples: list[float] = []
    start_rss = rss_mb()
    load_before = os.getloadavg()[0]
    backend_before = database_cpu()
    cpu_before = time.process_time()
    started = time.perf_counter()
    with counting_queries(counter), sampled_rss(samples):
        result = function()
    seconds = time.perf_counter() - started
    python_cpu = time.process_time() - cpu_before
    backend_after = database_cpu()
    backend_cpu = None
    if backend_before and backend_after and backend_before[0] == backend_after[0]:
        backend_cpu = backend_after[1] - backend_before[1]  # the same backend all along
    done = units(result) if callable(units) else units
    extra = result if isinstance(result, dict) else {}
    queries = counter[0] + int(extra.get("queries", 0))
    measured = Measure(
        seconds=seconds,
        units=done,
        queries=queries,
        rss_start_mb=start_rss,
        rss_peak_mb=max([start_rss, rss_mb(), *samples]),
        load=(load_before, os.getloadavg()[0]),
        extra={k: v for k, v in extra.items() if k != "queries"},
        python_cpu_s=python_cpu,
        database_cpu_s=backend_cpu,
    )
    if label:
        python_us, database_us = measured.cpu_us_per_unit()
        print(
            f"  {label}: {seconds:.2f} s, {measured.rate:,.1f}/s, "
            f"{measured.queries_per_unit:.3f} queries/unit, "
            f"+{measured.rss_growth_mb:.0f} MB, load {measured.load[0]:.1f}, "
            f"CPU a unit: Python {python_us:.1f} µs, PostgreSQL backend "
            + ("?" if database_us is None else f"{database_us:.1f} µs"),
            flush=True,
        )
    return measured


@dataclass
class Summary:
    """The median of several runs of one side (product or baseline) of a row."""

    name: str
    runs: list[Measure]

    @property
    def seconds(self) -> float:
        return statistics.median(run.seconds for run in self.runs)

    @property
    def rate(self) -> float:
        return statistics.median(run.rate for run in self.runs)

    @property
    def queries_per_unit(self) -> float:
        return statistics.median(run.queries_per_unit for run in self.runs)

    @property
    def rss_growth_mb(self) -> float:
        return max(run.rss_growth_mb for run in self.runs)

    @property
    def loads(self) -> list[float]:
        return [round(value, 2) for run in self.runs for value in run.load]

    @property
    def cpu_us_per_unit(self) -> str:
        """Median CPU µs a unit, "Python / PostgreSQL backend" ("?" where not measured)."""
        python = statistics.median(run.cpu_us_per_unit()[0] for run in self.runs)
        database = [run.cpu_us_per_unit()[1] for run in self.runs]
        known = [value for value in database if value is not None]
        if len(known) < len(database):
            return f"{python:.1f} / ?"
        return f"{python:.1f} / {statistics.median(known):.1f}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "median_seconds": round(self.seconds, 4),
            "median_rate": round(self.rate, 2),
            "median_queries_per_unit": round(self.queries_per_unit, 2),
            "peak_rss_growth_mb": round(self.rss_growth_mb, 1),
            "loads": self.loads,
            "cpu_us_per_unit_python_database": self.cpu_us_per_unit,
            "runs": [asdict(run) for run in self.runs],
        }


def runs_median(
    sides: dict[str, Callable[[int], Measure]], *, runs: int = 3, alternate: bool = False
) -> dict[str, Summary]:
    """Run every side `runs` times, interleaved (product, baseline, product, ...) so that
    both meet the same background load; each call gets its run number. `alternate`: every
    other run goes in the reverse order, so that no side always runs first, on caches the
    previous side left cold, or second, on caches it warmed (use an even number of runs)."""
    measured: dict[str, list[Measure]] = {name: [] for name in sides}
    for number in range(runs):
        order = list(sides.items())
        if alternate and number % 2:
            order.reverse()
        for name, run in order:
            measured[name].append(run(number))
    return {name: Summary(name, values) for name, values in measured.items()}


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "host": platform.node(),
        "load_at_start": [round(value, 2) for value in os.getloadavg()],
    }


def result_save(row: str, data: dict[str, Any]) -> Path:
    """Write a row's result (with the machine and its load) to bench/results/<row>-<time>.json."""
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{row}-{stamp}.json"
    payload = {"row": row, "at": stamp, "machine": machine(), **data}
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def summary_line(summaries: dict[str, Summary], *, unit: str) -> str:
    """One markdown table row per side: median rate, time, queries per unit, memory, CPU a
    unit, loads."""
    lines = []
    for summary in summaries.values():
        lines.append(
            f"| {summary.name} | {summary.rate:,.1f} {unit}/s | {summary.seconds:.3f} s "
            f"| {summary.queries_per_unit:.3f} | +{summary.rss_growth_mb:.0f} MB "
            f"| {summary.cpu_us_per_unit} "
            f"| {' '.join(f'{load:.1f}' for load in summary.loads)} |"
        )
    return "\n".join(lines)


class Missing(RuntimeError):
    """A product function the benchmark measures is not there yet: the row cannot run."""


def needs(module: str, name: str) -> Any:
    """The product function `module.name`, or a clear `Missing("needs module.name")`."""
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise Missing(f"needs {module}.{name} (not in this code base yet)") from error
