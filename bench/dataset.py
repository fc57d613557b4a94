"""A reproducible contact base for the scale benchmarks: N contacts (1,000,000 by default).

    .venv/bin/python bench/dataset.py [--contacts 1000000] [--seed 11] [--database NAME]
        [--keep]

As a script it creates the PostgreSQL database `cd_bench_dataset` (or `--database`), migrates
it, builds the base and prints the time of each phase and the shares; the database is dropped
at the end unless `--keep`. Other benchmarks call `dataset_build(n=...)` on their own database.

What is built, from one seeded random generator (the same seed gives the same people, choices
and dates; only uuids, hashes and the build time differ):
- 3 purposes on email and SMS: `newsletter` (double opt-in), `offers`, `recommendations`
  (profiling); 4 interests;
- per block of 5,000 people: contacts in bulk (`bulk_create`) with the suppression digests
  the product stores, countries and languages in the shares below, a phone for 60%, 0 to 3
  interests, 2% paused, 2% with a bounced address;
- then their consents through the set-based path `consents_record_many`, 1,000 writes a call: each
  (purpose, channel) granted with its own probability (SMS only with a phone), with full
  evidence; newsletter grants from a web form stay pending (their confirmation email is
  sent), the others came back through the emailed link; 12% of grants later withdrawn;
- 1% unsubscribed from everything (every live consent withdrawn by one-click, then the
  address suppressed) and the bounced addresses suppressed, after their consents.
"""

import argparse
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PURPOSES = [
    # slug, double opt-in, profiling
    ("newsletter", True, False),
    ("offers", False, False),
    ("recommendations", False, True),
]
CHANNELS = ["email", "sms"]
INTERESTS = ["cycling", "hiking", "running", "swimming"]
# the probability that a contact grants (purpose, channel); SMS is only asked with a phone
GRANT_SHARES = {
    ("newsletter", "email"): 0.60,
    ("newsletter", "sms"): 0.20,
    ("offers", "email"): 0.40,
    ("offers", "sms"): 0.25,
    ("recommendations", "email"): 0.25,
    ("recommendations", "sms"): 0.10,
}
SHARES = {
    "phone": 0.60,
    "paused": 0.02,
    "bounced": 0.02,
    "unsubscribed": 0.01,  # withdrew everything and is on the suppression list
    "withdrawn": 0.12,  # of the grants
    "pending": 0.10,  # of the newsletter grants: the confirmation link not followed yet
}
COUNTRIES = [("FR", 0.55), ("BE", 0.10), ("DE", 0.10), ("CH", 0.08), ("ES", 0.07), ("GB", 0.05)]
# the rest (5%): country unknown
LANGUAGES = [("fr", 0.60), ("en", 0.30)]  # the rest: unknown
CONTACT_BATCH = 5000
WRITE_CHUNK = 1000


@dataclass
class Person:
    """What the generator decided for one contact (kept to check the build)."""

    n: int
    country: str
    language: str
    phone: str
    interests: list[str]
    paused: bool
    bounced: bool
    unsubscribed: bool
    # (purpose, channel, given_at, pending, withdrawn_at)
    grants: list[tuple[str, str, datetime, bool, datetime | None]] = field(default_factory=list)


def _pick(rng: random.Random, shares: list[tuple[str, float]], rest: str = "") -> str:
    roll = rng.random()
    for value, share in shares:
        if roll < share:
            return value
        roll -= share
    return rest


def people(n: int, *, seed: int, now: datetime) -> Iterator[Person]:
    """The plan for `n` contacts, one at a time: every random choice, from one seeded
    generator (so the build never holds the whole plan in memory)."""
    rng = random.Random(seed)
    for number in range(n):
        has_phone = rng.random() < SHARES["phone"]
        person = Person(
            n=number,
            country=_pick(rng, COUNTRIES),
            language=_pick(rng, LANGUAGES),
            phone=f"+336{number:08d}" if has_phone else "",
            interests=[slug for slug in INTERESTS if rng.random() < 0.3],
            paused=rng.random() < SHARES["paused"],
            bounced=rng.random() < SHARES["bounced"],
            unsubscribed=rng.random() < SHARES["unsubscribed"],
        )
        for (slug, channel), share in GRANT_SHARES.items():
            if (channel == "sms" and not has_phone) or rng.random() >= share:
                continue
            given_at = now - timedelta(days=30 + 1000 * rng.random())
            pending = slug == "newsletter" and rng.random() < SHARES["pending"]
            withdrawn_at = None
            if rng.random() < SHARES["withdrawn"]:
                withdrawn_at = given_at + (now - given_at - timedelta(days=20)) * rng.uniform(
                    0.1, 0.9
                )
            person.grants.append((slug, channel, given_at, pending, withdrawn_at))
        yield person


def _contact(person: Person, now: datetime) -> Any:
    from contacts.models import Contact, EmailDeliverability
    from contacts.normalization import suppression_digest, suppression_digests

    email = f"person{person.n}@example.org"
    email_keys = suppression_digests(kind="email", value=email)
    return Contact(
        email=email,
        first_name="Camille",
        last_name=f"Martin{person.n}",
        phone=person.phone,
        country=person.country,
        language=person.language,
        city="Lyon" if person.country == "FR" else "",
        source="bench dataset",
        status="paused" if person.paused else "active",
        paused_until=now + timedelta(days=60) if person.paused else None,
        email_deliverability=(
            EmailDeliverability.HARD_BOUNCE if person.bounced else EmailDeliverability.DELIVERABLE
        ),
        email_digest=email_keys[0],
        email_quoted_digest=email_keys[1],
        phone_digest=suppression_digest("phone", person.phone) if person.phone else None,
        created_at=now - timedelta(days=1100),
    )


def dataset_build(
    *,
    n: int = 1_000_000,
    seed: int = 11,
    database: str = "default",
    now: datetime | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Build the base on the Django database `database` (an alias; the product's write path
    writes on the default one, so only "default" is accepted): purposes, interests, then per
    block of 5,000 people the contacts in bulk, their consents through `consents_record_many`
    (1,000 writes a call) and their suppressions, then on PostgreSQL `VACUUM ANALYZE`, as
    autovacuum leaves a production base (this benchmark server runs with autovacuum off, and a
    planner without statistics reads whole tables). Answers the seconds of each phase and the
    counts. The database must be migrated and hold no contact yet."""
    from django.db import DEFAULT_DB_ALIAS, connection
    from django.utils import timezone

    from bench.harness import purpose_create
    from contacts.models import Contact, Interest

    if database != DEFAULT_DB_ALIAS:
        raise ValueError("the consent write path writes on the default database only")
    if Contact.objects.exists():
        raise ValueError("the dataset is built on an empty contact base")
    now = now or timezone.now()
    timings = dict.fromkeys(("contacts", "consents", "suppressions"), 0.0)
    purposes = {
        slug: purpose_create(slug, double_opt_in=double, is_profiling=profiling)
        for slug, double, profiling in PURPOSES
    }
    interests = {
        slug: Interest.objects.create(slug=slug, name_fr=slug, name_en=slug.capitalize()).pk
        for slug in INTERESTS
    }
    plan = people(n, seed=seed, now=now)
    writes_count = 0
    for start in range(0, n, CONTACT_BATCH):
        block = list(islice(plan, CONTACT_BATCH))
        contacts = _timed(timings, "contacts", _contacts_create, block, interests, now)
        writes = [
            _writes(person, contact, purposes, now)
            for person, contact in zip(block, contacts, strict=True)
        ]
        writes_count += sum(len(person_writes) for person_writes in writes)
        _timed(timings, "consents", _writes_record, writes)
        _timed(timings, "suppressions", _suppressions_create, block, contacts)
        if progress and (start // CONTACT_BATCH) % 20 == 0:
            done = start + len(block)
            print(f"  {done:,} of {n:,} contacts, {writes_count:,} consent writes", flush=True)
    if connection.vendor == "postgresql":
        timings["vacuum"] = 0.0
        # VACUUM cannot run in a transaction (a test's): ANALYZE alone there
        statement = "ANALYZE" if connection.in_atomic_block else "VACUUM ANALYZE"
        with connection.cursor() as cursor:
            _timed(timings, "vacuum", cursor.execute, statement)
    return {"seed": seed, "contacts": n, "writes": writes_count, "timings": timings}


def _timed(timings: dict[str, float], name: str, function: Any, *args: Any) -> Any:
    started = time.perf_counter()
    try:
        return function(*args)
    finally:
        timings[name] += time.perf_counter() - started


def _contacts_create(block: list[Person], interests: dict[str, int], now: datetime) -> list:
    from django.db import transaction

    from contacts.models import Contact

    through = Contact.interests.through
    with transaction.atomic():
        contacts = Contact.objects.bulk_create([_contact(person, now) for person in block])
        through.objects.bulk_create(
            through(contact_id=contact.pk, interest_id=interests[slug])
            for person, contact in zip(block, contacts, strict=True)
            for slug in person.interests
        )
    return contacts


def _writes(person: Person, contact: Any, purposes: dict[str, Any], now: datetime) -> list:
    """The consent writes of one person, in the order they happened."""
    from consent.services import ConsentWrite, Evidence

    writes = []
    for slug, channel, given_at, pending, withdrawn_at in person.grants:
        purpose = purposes[slug]
        writes.append(
            ConsentWrite(
                contact=contact,
                purpose=purpose,
                channel=channel,
                action="grant",
                # a web-form grant on the double opt-in purpose stays pending; one from the
                # emailed link is granted at once
                source_kind=(
                    "email_confirmation" if slug == "newsletter" and not pending else "web_form"
                ),
                source_reference="https://example.fr/signup",
                given_at=given_at,
                evidence=Evidence(
                    wording=purpose.current_version.wording_fr,
                    unticked_by_default=True,
                    policy_version="2026-01",
                    ip=f"198.51.100.{person.n % 250 + 1}",
                    user_agent="Mozilla/5.0 (bench dataset)",
                ),
            )
        )
        if withdrawn_at is not None:
            writes.append(
                ConsentWrite(
                    contact=contact,
                    purpose=purpose,
                    channel=channel,
                    action="withdraw",
                    source_kind="preference_center",
                    given_at=withdrawn_at,
                )
            )
    if person.unsubscribed:
        writes += [
            ConsentWrite(
                contact=contact,
                purpose=purposes[slug],
                channel=channel,
                action="withdraw",
                source_kind="one_click_unsubscribe",
                given_at=now - timedelta(days=10),
            )
            for slug, channel, _given, _pending, withdrawn_at in person.grants
            if withdrawn_at is None
        ]
    return writes


def _writes_record(people_writes: list[list]) -> None:
    """Record the writes through the set-based path, up to 1,000 a call, never splitting one
    person's writes over two calls (so that a grant and its withdrawal commit together and no
    confirmation email goes out for a grant already withdrawn)."""
    from consent.services import consents_record_many

    chunk: list = []
    for writes in people_writes:
        if chunk and len(chunk) + len(writes) > WRITE_CHUNK:
            consents_record_many(writes=chunk)
            chunk = []
        chunk += writes
    if chunk:
        consents_record_many(writes=chunk)


def _suppressions_create(block: list[Person], contacts: list) -> None:
    """The bounced and unsubscribed addresses on the suppression list (after their consents:
    a grant for a suppressed address would wait for the person's click)."""
    from contacts.models import Suppression

    Suppression.objects.bulk_create(
        Suppression(
            digest=contact.email_digest,
            kind="email",
            reason="hard_bounce" if person.bounced else "global_unsubscribe",
        )
        for person, contact in zip(block, contacts, strict=True)
        if person.bounced or person.unsubscribed
    )


def dataset_counts() -> dict[str, Any]:
    """What the base holds, for the report and the checks."""
    from django.db.models import Count

    from consent.models import ConsentRecord, ConsentState
    from contacts.models import Contact, Suppression

    states = dict(
        ConsentState.objects.values_list("status").annotate(n=Count("id")).order_by("status")
    )
    return {
        "records": ConsentRecord.objects.count(),
        "states": states,
        "contacts_paused": Contact.objects.filter(status="paused").count(),
        "contacts_bounced": Contact.objects.filter(email_deliverability="hard_bounce").count(),
        "contacts_with_phone": Contact.objects.exclude(phone="").count(),
        "suppressions": Suppression.objects.count(),
    }


def main() -> None:
    from bench import harness

    harness.configure(database=ARGS.database)
    harness.database_recreate()
    harness.django_setup()
    harness.migrate()
    try:
        started = time.perf_counter()
        built = dataset_build(n=ARGS.contacts, seed=ARGS.seed, progress=True)
        seconds = time.perf_counter() - started
        print(f"built {ARGS.contacts:,} contacts in {seconds:.1f} s")
        for name, value in built.items():
            print(f"- {name}: {value}")
        counts = dataset_counts()
        for name, value in counts.items():
            print(f"- {name}: {value}")
        print(
            f"- rates: {ARGS.contacts / built['timings']['contacts']:,.0f} contacts/s, "
            f"{built['writes'] / built['timings']['consents']:,.0f} consent writes/s"
        )
        harness.result_save("dataset", {"seconds": seconds, **built, **counts})
    finally:
        if not ARGS.keep:
            harness.database_drop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--database", default="cd_bench_dataset")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ARGS = parser.parse_args()
    main()
