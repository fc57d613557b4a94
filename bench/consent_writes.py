"""Consent writes per second: through the API (gunicorn, 2 workers) vs the domain function.

Run from the repository root (PostgreSQL must be running):

    .venv/bin/python bench/consent_writes.py [--writes 2000] [--clients 8]

It creates (and afterwards drops) the database `cd_bench_consent_writes`, so it never touches yours.
"""

import argparse
import http.client
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORT = 8799
sys.path.insert(0, str(ROOT))
from bench import harness  # noqa: E402

DATABASE = harness.configure(database="consent_writes")


def recreate_database() -> None:
    harness.database_recreate()


def setup() -> tuple[str, list[str], list[str], list[str]]:
    import django

    django.setup()
    from django.core.management import call_command

    from consent.models import Purpose, PurposeVersion
    from contacts.models import Contact
    from core.models import ApiClient

    call_command("migrate", verbosity=0)
    purpose = Purpose.objects.create(
        slug="offers", name_fr="Offres", name_en="Offers", channels=["email", "sms"]
    )
    PurposeVersion.objects.create(
        purpose=purpose, number=1, wording_fr="J'accepte.", wording_en="I agree."
    )
    client = ApiClient(name="bench", scopes=["consents:write", "contacts:read"])
    key = client.set_new_key()
    client.save()
    contacts = Contact.objects.bulk_create(
        Contact(email=f"bench{n}@example.fr") for n in range(3 * ARGS.writes)
    )
    ids = [str(contact.public_id) for contact in contacts]
    n = ARGS.writes
    return key, ids[:n], ids[n : 2 * n], ids[2 * n :]


def bench_direct(contact_ids: list[str]) -> float:
    from consent.selectors import purposes_with_versions
    from consent.services import consent_record
    from contacts.models import Contact

    purpose = purposes_with_versions().get(slug="offers")
    contacts = list(Contact.objects.filter(public_id__in=contact_ids))
    started = time.perf_counter()
    for n, contact in enumerate(contacts):
        consent_record(write=harness.grant_write(contact, purpose, "email", n, source_kind="api"))
    return len(contacts) / (time.perf_counter() - started)


def bench_api(key: str, contact_ids: list[str], batch: int) -> tuple[float, int]:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "-b",
            f"127.0.0.1:{PORT}",
            "-w",
            "2",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
    )
    try:
        _wait_for_server()
        chunks = [contact_ids[i :: ARGS.clients] for i in range(ARGS.clients)]
        failures: list[int] = []
        threads = [
            threading.Thread(target=_post_all, args=(key, chunk, failures, batch))
            for chunk in chunks
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return len(contact_ids) / (time.perf_counter() - started), len(failures)
    finally:
        server.terminate()
        server.wait(timeout=20)


def _wait_for_server() -> None:
    for _attempt in range(100):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=1)
            connection.request("GET", "/api/schema/")
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start")


def _post_all(key: str, contact_ids: list[str], failures: list[int], batch: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    headers = {"Authorization": f"Token {key}", "Content-Type": "application/json"}
    for start in range(0, len(contact_ids), batch):
        items = [_consent_body(contact_id) for contact_id in contact_ids[start : start + batch]]
        body = items[0] if batch == 1 else items
        connection.request("POST", "/api/v1/consents/", json.dumps(body), headers)
        response = connection.getresponse()
        response.read()
        if response.status != 201:
            failures.append(response.status)


def _consent_body(contact_id: str) -> dict:
    return {
        "contact": contact_id,
        "purpose": "offers",
        "channel": "email",
        "action": "grant",
        "source": {"kind": "web_form", "reference": "https://example.fr/bench"},
        "evidence": {
            "wording": "I agree.",
            "unticked_by_default": True,
            "policy_version": "2026-01",
            "ip": "203.0.113.9",
            "user_agent": "bench",
        },
    }


def main() -> None:
    recreate_database()
    key, direct_ids, api_ids, batch_ids = setup()
    direct = bench_direct(direct_ids)
    api, failures = bench_api(key, api_ids, batch=1)
    batched, batch_failures = bench_api(key, batch_ids, batch=ARGS.batch)
    from consent.ledger import ledger_verify

    problems = ledger_verify()
    print(f"writes per run:           {ARGS.writes}")
    print(f"domain function:          {direct:8.1f} consent writes/s (1 process)")
    print(f"API (gunicorn -w 2, {ARGS.clients} clients): {api:8.1f} consent writes/s")
    print(f"ratio API / direct:       {api / direct:8.2f}")
    print(f"API, arrays of {ARGS.batch}:       {batched:8.1f} consent writes/s")
    print(f"ratio API arrays / direct:{batched / direct:8.2f}")
    print(f"failed API requests:      {failures + batch_failures}")
    print(f"ledger verifies:          {'yes' if not problems else problems[:3]}")
    harness.database_drop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100, help="consents per array request")
    ARGS = parser.parse_args()
    main()
