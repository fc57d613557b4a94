"""Lifecycle jobs at the acceptance sizes: erasure of 10,000 contacts, retention over 100,000.

Run from the repository root (PostgreSQL must be running):

    .venv/bin/python bench/lifecycle_jobs.py [--erasures 10000] [--contacts 100000]
        [--batch-size 200] [--part all|erasure|retention]

It creates (and afterwards drops) the database `cd_bench_lifecycle`, created afresh for
each part, so it never touches yours nor the other benchmarks'. Settings: `bench.settings` with
DEBUG off, eager Celery, no Redis (bench/harness.py). Every timed job runs alone in a fresh
child process (this script with `--job`), so that its peak memory is the job's own, not the
setup's; the child counts the emails with a backend that builds each message as SMTP would and
throws it away, so no mail leaves.
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
sys.path.insert(0, str(ROOT))
from bench import harness  # noqa: E402
from bench.harness import CountingBackend, grant, purpose_create  # noqa: E402

DATABASE = harness.configure(database="lifecycle")

# Part 1: three consent purposes on email and SMS; every contact grants three (purpose, channel).
ERASURE_PURPOSES = ["newsletter", "offers", "events"]
GRANTS_PER_CONTACT = 3
# Part 2: purposes with different retention (days; None: the default of three years).
RETENTION_PURPOSES = [("newsletter", None), ("offers", 365), ("events", 730), ("loyalty", 1825)]
CONSENT_BLOCK_EVERY = 40  # part 2: every 40th block of 100 contacts has consent states


# ---------------------------------------------------------------------------------------------
# Database and Django


recreate_database = harness.database_recreate
drop_database = harness.database_drop
django_setup = harness.django_setup
migrate = harness.migrate


def phone(n: int) -> str:
    return f"+336{n:08d}"  # a valid French mobile number


def chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------------------------------------
# The child process: one timed job, with its time, CPU, SQL queries and memory


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_KB / 1024


def peak_rss_mb() -> float:
    """The process's peak resident memory (VmHWM). Not `ru_maxrss`: Linux carries that over
    exec from the parent, so the child would report the setup's peak, not the job's."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def backend_cpu(pid: int) -> float | None:
    """CPU seconds of this process's PostgreSQL backend (same host), None if unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@contextmanager
def sampled_rss(samples: list[float], every: float = 0.5) -> Iterator[None]:
    """Sample the resident memory every `every` seconds while the block runs."""
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


def measure(job: Callable[[], Any]) -> dict[str, Any]:
    """Run the job once; answer its result and what it cost this process and its backend."""
    from django.conf import settings
    from django.db import connection

    settings.EMAIL_BACKEND = "bench.harness.CountingBackend"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend_pid = cursor.fetchone()[0]
    queries = 0

    def count(execute: Callable, sql: str, params: Any, many: bool, context: dict) -> Any:
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    samples: list[float] = []
    rss_before = rss_mb()
    db_before = backend_cpu(backend_pid)
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with connection.execute_wrapper(count), sampled_rss(samples):
        result = job()
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    db_after = backend_cpu(backend_pid)
    return {
        "result": result,
        "seconds": seconds,
        "cpu": (usage.ru_utime + usage.ru_stime) - (usage_before.ru_utime + usage_before.ru_stime),
        "db_cpu": None if db_before is None or db_after is None else db_after - db_before,
        "queries": queries,
        "emails": CountingBackend.sent,
        "rss_before": rss_before,
        "rss_samples": [samples[len(samples) * k // 4] for k in range(1, 4)] if samples else [],
        "rss_max": max([rss_before, rss_mb(), *samples]),
        "rss_after": rss_mb(),
        "peak": peak_rss_mb(),
        "load": [load_before, os.getloadavg()[0]],
    }


def child_main() -> None:
    django_setup()
    from django.db import connection

    with connection.cursor() as cursor:  # connect and load the ORM before measuring
        cursor.execute("SELECT 1")
    if ARGS.job == "erasure":
        from privacy.services import privacy_requests_carry_out_pending

        def job() -> dict[str, Any]:
            rates = []  # erasures/s of each call: does the job slow down as the tables grow?
            while True:
                started = time.perf_counter()
                carried_out = privacy_requests_carry_out_pending(batch_size=ARGS.batch_size)
                if not carried_out:
                    done = sum(n for n, _rate in rates)
                    return {"calls": len(rates) + 1, "done": done, "rates": rates}
                rates.append((carried_out, carried_out / (time.perf_counter() - started)))

    else:
        import privacy.services as services

        now = datetime.fromisoformat(ARGS.now)
        phases: dict[str, float] = {}

        def timed(name: str, function: Callable) -> Callable:
            def run(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return function(*args, **kwargs)
                finally:
                    phases[name] = time.perf_counter() - started

            return run

        # retention_apply calls these two in turn: time each phase apart
        services._repermission_due = timed("repermission", services._repermission_due)
        services._anonymise_silent = timed("erasure", services._anonymise_silent)

        def job() -> dict[str, Any]:
            sent, erased = services.retention_apply(now=now)
            return {"sent": sent, "erased": erased, "phases": phases}

    print(json.dumps(measure(job)))


def run_child(job: str, *extra: str) -> dict[str, Any]:
    """Run one timed job in a fresh process of this script and answer its measures."""
    from django.db import connections

    connections.close_all()
    command = [sys.executable, str(Path(__file__).resolve()), "--job", job]
    command += ["--batch-size", str(ARGS.batch_size), *extra]
    output = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Part 1: erasure of `--erasures` contacts through the privacy-request beat job


def erasure_setup(count: int) -> dict[str, float]:
    """Contacts with three grants each (real path), then one verified erasure request each,
    filed without queuing the per-request task (the beat job does the work, timed)."""
    from django.db import transaction

    from contacts.models import Contact
    from preferences.services import preference_token_issue
    from privacy.models import PrivacyRequest, PrivacyRequestEvent
    from privacy.services import privacy_request_file

    timings = {}
    started = time.perf_counter()
    migrate()
    purposes = [purpose_create(slug) for slug in ERASURE_PURPOSES]
    pairs = [(purpose, channel) for purpose in purposes for channel in ("email", "sms")]
    contacts = Contact.objects.bulk_create(
        (
            Contact(
                email=f"person{n}@example.fr",
                first_name="Camille",
                last_name=f"Martin{n}",
                phone=phone(n),
                city="Lyon",
                language="en" if n % 3 == 0 else "fr",
            )
            for n in range(count)
        ),
        batch_size=2000,
    )
    timings["contacts"] = time.perf_counter() - started
    started = time.perf_counter()
    for block in chunks(list(enumerate(contacts)), 100):
        with transaction.atomic():  # one commit per 100 contacts: the setup stays quick
            for n, contact in block:
                for k in range(GRANTS_PER_CONTACT):
                    purpose, channel = pairs[(n + 2 * k) % len(pairs)]
                    grant(contact, purpose, channel, n)
                preference_token_issue(contact=contact)
        if block[0][0] % 1000 == 0:
            print(f"  consents: {block[0][0]} of {count} contacts", flush=True)
    timings["consents"] = time.perf_counter() - started
    started = time.perf_counter()
    for block in chunks(contacts, 500):
        with transaction.atomic():
            for contact in block:
                privacy_request_file(
                    contact=contact,
                    type="erasure",
                    source_kind="api",
                    source_reference="bench",
                    verified=False,
                )
    with transaction.atomic():  # verified, with its history event, but no task queued
        received = list(PrivacyRequest.objects.filter(status="received").values_list("id"))
        PrivacyRequest.objects.filter(status="received").update(
            status="verified", handled_by="bench"
        )
        PrivacyRequestEvent.objects.bulk_create(
            (
                PrivacyRequestEvent(request_id=request_id, status="verified", by="bench")
                for (request_id,) in received
            ),
            batch_size=2000,
        )
    timings["requests"] = time.perf_counter() - started
    return timings


def erasure_part() -> dict[str, Any]:
    count = ARGS.erasures
    print(f"part 1: {count} contacts, {GRANTS_PER_CONTACT} grants each, erasure ...", flush=True)
    recreate_database()
    setup = erasure_setup(count)
    print(f"  setup: {setup}", flush=True)
    from consent.models import ConsentEvidence, ConsentRecord

    records_before = ConsentRecord.objects.count()
    evidence_before = ConsentEvidence.objects.count()
    run = run_child("erasure")
    print(f"  erasure job: {run['seconds']:.1f} s", flush=True)
    checks = erasure_checks(count, records_before, evidence_before)
    drop_database()
    return {"setup": setup, "run": run, "checks": checks}


def erasure_checks(count: int, records_before: int, evidence_before: int) -> dict[str, Any]:
    from consent.ledger import ledger_verify
    from consent.models import ConsentEvidence, ConsentRecord
    from contacts.models import Contact, Suppression, TimelineEvent
    from privacy.models import PrivacyRequest

    started = time.perf_counter()
    problems = ledger_verify()
    verify_seconds = time.perf_counter() - started
    return {
        "completed": PrivacyRequest.objects.filter(status="completed").count(),
        "not completed": PrivacyRequest.objects.exclude(status="completed").count(),
        "contacts erased": Contact.objects.filter(status="erased").count(),
        "contacts still holding their email": Contact.objects.filter(
            email__endswith="@example.fr"
        ).count(),
        "ledger records before / after": f"{records_before} / {ConsentRecord.objects.count()}",
        "withdrawals written": ConsentRecord.objects.filter(action="withdraw").count(),
        "personal evidence rows before": evidence_before,
        "personal evidence rows left": ConsentEvidence.objects.count(),
        "suppression entries (email + phone)": Suppression.objects.count(),
        "timeline entries left": TimelineEvent.objects.count(),
        "ledger_verify problems": len(problems),
        "ledger_verify seconds": round(verify_seconds, 2),
        "ledger records verified": ConsentRecord.objects.count(),
        "expected": {
            "completed": count,
            "withdrawals written": GRANTS_PER_CONTACT * count,
            "suppression entries (email + phone)": 2 * count,
            "timeline entries left": count,
        },
    }


# ---------------------------------------------------------------------------------------------
# Part 2: retention over `--contacts` contacts


def retention_plan(count: int, now: datetime) -> list[tuple]:
    """(last activity, created, re-permission sent) of contact n, by n % 100:

    0-9: silent for more than three years, never asked (0: never active at all);
    10-14: asked 31 to 120 days ago, silent since; 15: asked 1 to 28 days ago, silent since;
    16-99: last active within the last three years (uniformly).
    """
    rng = random.Random(4)
    years3 = timedelta(days=3 * 365)
    day = timedelta(days=1)

    def ago(low: timedelta, high: timedelta) -> datetime:
        return now - low - (high - low) * rng.random()

    plan = []
    for n in range(count):
        group = n % 100
        repermission = None
        if group < 10:
            last = ago(years3 + day, 2 * years3)
        elif group < 16:
            repermission = ago(31 * day, 120 * day) if group < 15 else ago(day, 28 * day)
            last = ago(years3 + 150 * day, years3 + 500 * day)
        else:
            last = ago(timedelta(0), years3 - 2 * day)
        created = last - 30 * day
        plan.append((None if group == 0 else last, created, repermission))
    return plan


def retention_setup(count: int, now: datetime) -> tuple[dict[str, float], dict[str, int]]:
    """Contacts in bulk after the plan; consent states through the real path for every 40th
    block of 100 contacts (their last activity put back afterwards). Answers the timings and
    what the job should do, worked out here from the plan alone."""
    from django.conf import settings
    from django.db import transaction

    from consent.models import ConsentState
    from consent.services import ConsentWrite, consent_record
    from contacts.models import Contact

    timings = {}
    started = time.perf_counter()
    migrate()
    purposes = [purpose_create(slug, retention_days=days) for slug, days in RETENTION_PURPOSES]
    plan = retention_plan(count, now)
    for block in chunks(list(range(count)), 5000):
        Contact.objects.bulk_create(
            Contact(
                email=f"person{n}@example.fr",
                first_name="Camille",
                last_name=f"Martin{n}",
                phone=phone(n) if n % 2 == 0 else "",
                language="en" if n % 3 == 0 else "fr",
                last_activity_at=plan[n][0],
                created_at=plan[n][1],
                repermission_sent_at=plan[n][2],
            )
            for n in block
        )
    timings["contacts"] = time.perf_counter() - started
    started = time.perf_counter()
    with_consents = [n for n in range(count) if (n // 100) % CONSENT_BLOCK_EVERY == 0]
    active_days: dict[int, list[int]] = {}
    by_email = {}
    for block in chunks(with_consents, 100):
        contacts = Contact.objects.filter(email__in=[f"person{n}@example.fr" for n in block])
        by_email = {contact.email: contact for contact in contacts}
        with transaction.atomic():
            for n in block:
                contact = by_email[f"person{n}@example.fr"]
                chosen = [purposes[n % 4], purposes[(n + 1) % 4]]
                for purpose in chosen:
                    grant(contact, purpose, "email", n)
                if n % 3 == 0:  # and withdraws the first again: a state that no longer counts
                    consent_record(
                        write=ConsentWrite(
                            contact=contact,
                            purpose=chosen[0],
                            channel="email",
                            action="withdraw",
                            source_kind="preference_center",
                        )
                    )
                    chosen = chosen[1:]
                active_days[n] = [
                    purpose.retention_days or settings.RETENTION_DEFAULT.days for purpose in chosen
                ]
            # consent_record touched the contacts: put the planned last activity back
            for n in block:
                by_email[f"person{n}@example.fr"].last_activity_at = plan[n][0]
            Contact.objects.bulk_update(by_email.values(), ["last_activity_at"])
    timings["consents"] = time.perf_counter() - started
    expected = retention_expected(plan, active_days, now)
    expected["contacts with consent states"] = len(with_consents)
    expected["consent states"] = ConsentState.objects.count()
    return timings, expected


def retention_expected(
    plan: list[tuple], active_days: dict[int, list[int]], now: datetime
) -> dict[str, int]:
    """What `retention_apply(now)` must do, from the rules: asked when silent past the longest
    retention of the purposes still on (the default without any) and not asked since; erased
    when asked longer than the grace period ago and silent since."""
    from django.conf import settings

    default = settings.RETENTION_DEFAULT.days
    shortest = min([default] + [days for _slug, days in RETENTION_PURPOSES if days])
    sent = erased = examined = 0
    for n, (last, created, repermission) in enumerate(plan):
        period = timedelta(days=max(active_days.get(n) or [default]))
        not_asked = repermission is None or (last is not None and repermission < last)
        silent_since = last or created
        examined += not_asked and silent_since < now - timedelta(days=shortest)
        sent += not_asked and silent_since < now - period
        erased += (
            repermission is not None
            and repermission < now - settings.RETENTION_GRACE
            and (last is None or last < repermission)
        )
    return {"sent": sent, "erased": erased, "examined": examined}


def retention_part() -> dict[str, Any]:
    count = ARGS.contacts
    print(f"part 2: retention over {count} contacts ...", flush=True)
    recreate_database()
    from django.utils import timezone

    now = timezone.now()
    setup, expected = retention_setup(count, now)
    print(f"  setup: {setup}", flush=True)
    from consent.models import ConsentRecord

    records_before = ConsentRecord.objects.count()
    first = run_child("retention", "--now", now.isoformat())
    print(f"  first run: {first['seconds']:.1f} s", flush=True)
    second = run_child("retention", "--now", now.isoformat())
    print(f"  second run: {second['seconds']:.1f} s", flush=True)
    checks = retention_checks(expected, records_before, now)
    drop_database()
    return {"setup": setup, "first": first, "second": second, "checks": checks}


def retention_checks(expected: dict[str, int], records_before: int, now: datetime) -> dict:
    from consent.ledger import ledger_verify
    from consent.models import ConsentEvidence, ConsentRecord
    from contacts.models import Contact, Suppression, TimelineEvent
    from preferences.models import PreferenceToken

    started = time.perf_counter()
    problems = ledger_verify()
    verify_seconds = time.perf_counter() - started
    erased = Contact.objects.filter(status="erased")
    return {
        "expected": expected,
        "contacts asked (repermission_sent_at = now)": Contact.objects.filter(
            repermission_sent_at=now
        ).count(),
        "re-permission timeline entries": TimelineEvent.objects.filter(
            kind="repermission_sent"
        ).count(),
        "preference tokens issued": PreferenceToken.objects.count(),
        "contacts erased": erased.count(),
        "personal evidence left on erased contacts": ConsentEvidence.objects.filter(
            record__contact__in=erased
        ).count(),
        "suppression entries (email + phone)": Suppression.objects.count(),
        "ledger records before / after": f"{records_before} / {ConsentRecord.objects.count()}",
        "ledger_verify problems": len(problems),
        "ledger_verify seconds": round(verify_seconds, 2),
    }


# ---------------------------------------------------------------------------------------------
# Report


def report(erasure: dict[str, Any] | None, retention: dict[str, Any] | None) -> None:
    print()
    print(f"{os.cpu_count()} cores; load average (1 min) at the start and end of each timed run")
    if erasure:
        report_erasure(erasure)
    if retention:
        report_retention(retention)


def _cpu(run: dict[str, Any]) -> str:
    db = "?" if run["db_cpu"] is None else f"{run['db_cpu']:.0f}"
    return f"{run['cpu']:.0f} / {db}"


def _memory(run: dict[str, Any]) -> str:
    middle = " → ".join(f"{mb:.0f}" for mb in run["rss_samples"])
    return (
        f"{run['rss_before']:.0f} → {middle or '-'} → {run['rss_after']:.0f} "
        f"(peak {run['peak']:.0f})"
    )


def _load(run: dict[str, Any]) -> str:
    return f"{run['load'][0]:.1f} / {run['load'][1]:.1f}"


def report_erasure(part: dict[str, Any]) -> None:
    run, setup, checks = part["run"], part["setup"], part["checks"]
    done = run["result"]["done"]
    rates = [rate for _n, rate in run["result"]["rates"]]
    print()
    print(
        f"Erasure: {ARGS.erasures} contacts with {GRANTS_PER_CONTACT} grants each; setup "
        f"{setup['contacts']:.0f} s (migrate, contacts in bulk), {setup['consents']:.0f} s "
        f"({GRANTS_PER_CONTACT * ARGS.erasures} grants through consent_record, "
        f"{GRANTS_PER_CONTACT * ARGS.erasures / setup['consents']:.0f}/s), "
        f"{setup['requests']:.0f} s (requests filed and verified)"
    )
    print()
    print(
        "| erasures | batch size | job calls | seconds | erasures/s | per call: first / min / max "
        "/ last | SQL queries per erasure | CPU s, process / PostgreSQL "
        "| RSS MB: start → ¼ → ½ → ¾ → end (peak) | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    per_call = " / ".join(f"{rate:.1f}" for rate in (rates[0], min(rates), max(rates), rates[-1]))
    print(
        f"| {done} | {ARGS.batch_size} | {run['result']['calls']} | {run['seconds']:.1f} "
        f"| {done / run['seconds']:.1f} | {per_call} | {run['queries'] / max(done, 1):.1f} "
        f"| {_cpu(run)} | {_memory(run)} | {_load(run)} |"
    )
    print()
    print("erasures/s of every call: " + ", ".join(f"{rate:.1f}" for rate in rates))
    for name, value in checks.items():
        print(f"- {name}: {value}")
    count = ARGS.erasures
    verdict(
        {
            "requests completed": (checks["completed"], count),
            "requests not completed": (checks["not completed"], 0),
            "contacts erased": (checks["contacts erased"], count),
            "withdrawals written": (checks["withdrawals written"], GRANTS_PER_CONTACT * count),
            "personal evidence left": (checks["personal evidence rows left"], 0),
            "suppression entries": (checks["suppression entries (email + phone)"], 2 * count),
            "ledger_verify problems": (checks["ledger_verify problems"], 0),
        }
    )


def report_retention(part: dict[str, Any]) -> None:
    first, second, setup, checks = part["first"], part["second"], part["setup"], part["checks"]
    expected = checks["expected"]
    print()
    print(
        f"Retention: {ARGS.contacts} contacts; setup {setup['contacts']:.0f} s (migrate, "
        f"contacts in bulk), {setup['consents']:.0f} s "
        f"({expected['contacts with consent states']} contacts with "
        f"{expected['consent states']} consent states through consent_record); "
        f"{expected['examined']} contacts silent past the shortest retention and not asked"
    )
    print()
    print(
        "| run | sent | erased | seconds | contacts/s over the table "
        "| re-permission phase: s (emails/s) | erasure phase: s (erasures/s) | SQL queries "
        "| CPU s, process / PostgreSQL | RSS MB: start → ¼ → ½ → ¾ → end (peak) | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, run in (("first", first), ("second, same now", second)):
        result, seconds = run["result"], run["seconds"]
        phases = result["phases"]
        print(
            f"| {name} | {result['sent']} | {result['erased']} | {seconds:.1f} "
            f"| {ARGS.contacts / seconds:.0f} "
            f"| {phases['repermission']:.1f} ({result['sent'] / phases['repermission']:.1f}) "
            f"| {phases['erasure']:.1f} ({result['erased'] / phases['erasure']:.1f}) "
            f"| {run['queries']} | {_cpu(run)} | {_memory(run)} | {_load(run)} |"
        )
    print()
    print(f"- emails through the mail backend: first {first['emails']}, second {second['emails']}")
    print(f"- contacts the no-op run still examined: {expected['examined'] - expected['sent']}")
    for name, value in checks.items():
        print(f"- {name}: {value}")
    verdict(
        {
            "first run: sent": (first["result"]["sent"], expected["sent"]),
            "first run: erased": (first["result"]["erased"], expected["erased"]),
            "first run: emails built": (first["emails"], expected["sent"]),
            "contacts asked": (
                checks["contacts asked (repermission_sent_at = now)"],
                expected["sent"],
            ),
            "contacts erased": (checks["contacts erased"], expected["erased"]),
            "second run: (sent, erased, emails)": (
                (second["result"]["sent"], second["result"]["erased"], second["emails"]),
                (0, 0, 0),
            ),
            "personal evidence left on erased contacts": (
                checks["personal evidence left on erased contacts"],
                0,
            ),
            "ledger_verify problems": (checks["ledger_verify problems"], 0),
        }
    )


def verdict(checks: dict[str, tuple[Any, Any]]) -> None:
    """Print whether every (found, expected) pair matches; the benchmark does not stop."""
    wrong = {name: pair for name, pair in checks.items() if pair[0] != pair[1]}
    print(
        "checks: "
        + ("all as expected" if not wrong else f"NOT AS EXPECTED (found, expected): {wrong}")
    )


def main() -> None:
    django_setup()
    erasure = retention = None
    if ARGS.part in ("all", "erasure"):
        erasure = erasure_part()
    if ARGS.part in ("all", "retention"):
        retention = retention_part()
    report(erasure, retention)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--erasures", type=int, default=10_000, help="contacts erased (part 1)")
    parser.add_argument("--contacts", type=int, default=100_000, help="contacts (part 2)")
    parser.add_argument(
        "--batch-size", type=int, default=200, help="batch of privacy_requests_carry_out_pending"
    )
    parser.add_argument("--part", choices=["all", "erasure", "retention"], default="all")
    parser.add_argument("--job", choices=["erasure", "retention"], help=argparse.SUPPRESS)
    parser.add_argument("--now", help=argparse.SUPPRESS)
    ARGS = parser.parse_args()
    if ARGS.job:
        child_main()
    else:
        main()
