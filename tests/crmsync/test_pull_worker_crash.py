"""A pull SIGKILLed by a real Celery worker in the middle of applying a page: what the page
had applied is rolled back with its transaction, the cursor stays after the last page stored,
the dead worker's lease keeps others out until it expires (`CRM_PULL_LEASE_SECONDS`, short
here), then the next worker's pull goes on from the cursor and applies every record once: no
duplicate contact, link or ledger record, the opt-outs withdrawn once, the cursor at the end.

The kill lands mid-page without a sleep to race: this test holds a row lock on one of our
contacts that the second page updates, so the worker stops on it after applying the records
before it (uncommitted), and is killed there. The CRM emulators run in this process; the
workers reach them over HTTP (Salesforce over TLS, the worker trusting its certificate).
"""

import itertools
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.db import connection as database
from django.db import transaction
from django.utils import timezone

from consent.models import ConsentAction, ConsentRecord, Purpose, SourceKind
from contacts.models import Contact
from crmsync.adapters.pulling import positions_read
from crmsync.connections import connection_create
from crmsync.models import Connection, ConnectionState, ContactLink, DeadLetter, OutboxEvent
from crmsync.pull import connection_pull
from crmsync.services import outbox_sequence
from crmsync.tasks import pull_connections
from tests.conftest import wait_for
from tests.consent.workers import Workers
from tests.emulators.hubspot import HubSpotEmulator
from tests.emulators.salesforce import SalesforceEmulator
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = [pytest.mark.slow, pytest.mark.worker, pytest.mark.postgres]

# the Redis database of these workers (one no other crash test uses: tests/consent/workers.py)
REDIS_DATABASE = 14
VISIBILITY_TIMEOUT = 5
# a dead worker's claim on the pull expires after this: then another pull takes over
LEASE_SECONDS = 6
PAGE_SIZE = 5
PEOPLE = 12  # in the CRM: three pages of five, the last one short
KNOWN = (2, 7)  # people we hold already, granting the newsletter, who opted out in the CRM
LOCKED = 7  # the third record of the second page: the worker is killed while applying it
TOKEN = "hubspot-test-token"
NEWSLETTER_SUBSCRIPTION = "1001"


def email(n: int) -> str:
    return f"person{n}@example.fr"


@dataclass
class Crm:
    """One CRM emulator as this test drives it."""

    # our connection to it, made after our own writes (so that none is pushed to the CRM)
    connect: Callable[[], Connection]
    # a person of the CRM, modified one millisecond after the one before, opted out or not
    put: Callable[[int, bool], None]
    # the CRM's id of each person it holds, and each one's modification time (epoch ms)
    records: Callable[[], dict[str, int]]
    environment: dict[str, str]


class Clock:
    """Epoch milliseconds from an hour ago, one more at each write: every change in the CRM
    is newer than our contacts' and older than now, and none shares a millisecond."""

    def __init__(self) -> None:
        start = int((timezone.now() - timedelta(hours=1)).timestamp() * 1000)
        self.ticks = itertools.count(start)

    def __call__(self) -> int:
        return next(self.ticks)


@pytest.fixture
def newsletter(transactional_db: None) -> Purpose:
    purpose = PurposeFactory(slug="newsletter", channels=["email"])
    assert isinstance(purpose, Purpose)
    return purpose


@pytest.fixture
def hubspot(newsletter: Purpose) -> Iterator[Crm]:
    with HubSpotEmulator(token=TOKEN, clock=Clock()) as emulator:
        assert isinstance(emulator, HubSpotEmulator)

        def put(n: int, opted_out: bool) -> None:
            emulator.put_contact({"email": email(n), "firstname": "Camille", "lastname": f"M{n}"})
            if opted_out:
                with emulator.lock:
                    answer = emulator.set_status(
                        {"emailAddress": email(n), "subscriptionId": NEWSLETTER_SUBSCRIPTION},
                        False,
                    )
                assert answer.status == 200, answer.body

        def records() -> dict[str, int]:
            with emulator.lock:
                return {contact_id: ms for ms, _n, contact_id in emulator.modified}

        def connect() -> Connection:
            return connection_create(
                name="hubspot",
                kind="hubspot",
                base_url=emulator.url,
                credentials={"token": TOKEN},
                purpose_map={"newsletter": NEWSLETTER_SUBSCRIPTION},
            )

        yield Crm(connect, put, records, {})


@pytest.fixture
def salesforce(newsletter: Purpose) -> Iterator[Crm]:
    with SalesforceEmulator(clock=Clock()) as emulator:
        assert isinstance(emulator, SalesforceEmulator)

        def put(n: int, opted_out: bool) -> None:
            emulator.insert(
                "Contact",
                {
                    "Email": email(n),
                    "FirstName": "Camille",
                    "LastName": f"M{n}",
                    "HasOptedOutOfEmail": opted_out,
                },
            )

        def records() -> dict[str, int]:
            with emulator.lock:
                return {record_id: ms for ms, _n, record_id in emulator.modified["Contact"]}

        def connect() -> Connection:
            data_use_purpose = emulator.insert("DataUsePurpose", {"Name": "Newsletter"})
            return connection_create(
                name="salesforce",
                kind="salesforce",
                base_url=emulator.url,
                credentials={"token": emulator.session_id},
                purpose_map={"newsletter": data_use_purpose},
            )

        # simple-salesforce speaks https only: the workers trust the emulator's certificate
        yield Crm(connect, put, records, {"REQUESTS_CA_BUNDLE": str(emulator.certificate)})


@pytest.fixture(params=["hubspot", "salesforce"])
def crm(request: pytest.FixtureRequest) -> Crm:
    found: Crm = request.getfixturevalue(request.param)
    return found


@pytest.fixture
def workers(transactional_db: None, crm: Crm) -> Iterator[Workers]:
    pool = Workers(
        queue=f"crm-pull-crash-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        redis_database=REDIS_DATABASE,
        visibility_timeout=VISIBILITY_TIMEOUT,
        environment={
            "CRM_PULL_LEASE_SECONDS": str(LEASE_SECONDS),
            "CRM_PULL_PAGE_SIZE": str(PAGE_SIZE),
            **crm.environment,
        },
    )
    try:
        yield pool
    finally:
        pool.close()


def test_a_pull_killed_while_applying_a_page_is_finished_by_the_next_worker_each_record_once(
    crm: Crm, workers: Workers, newsletter: Purpose
) -> None:
    # given: two people we hold, granting the newsletter, who opted out in the CRM since
    known = {n: ours(n) for n in KNOWN}
    for contact in known.values():
        grant(contact, newsletter, given_at=timezone.now() - timedelta(hours=2))
    Contact.objects.update(updated_at=timezone.now() - timedelta(minutes=90))
    outbox_sequence()  # numbered before the connection exists: not for it to push
    connection = crm.connect()
    for n in range(PEOPLE):
        crm.put(n, n in KNOWN)

    # when: the worker pulling is killed while it applies the second page
    with transaction.atomic():
        Contact.objects.select_for_update().get(pk=known[LOCKED].pk)
        first = workers.start()
        workers.send(pull_connections)
        blocked = wait_for(backend_waiting_on_a_lock, timeout=60)
        workers.kill(first)
    # (its database session ends once the lock is released and it finds nobody there)
    wait_for(lambda: not backend_alive(blocked), timeout=20)

    # then: the first page is applied and its cursor stored; nothing of the second is
    state = ConnectionState.objects.get(pk=connection.pk)
    records = crm.records()
    first_page = sorted(records, key=records.__getitem__)[:PAGE_SIZE]
    assert positions(state)[1] == {first_page[-1]}
    assert set(Contact.objects.values_list("email", flat=True)) == {
        email(n) for n in (*range(PAGE_SIZE), LOCKED)
    }
    assert Contact.objects.get(pk=known[LOCKED].pk).first_name == "Old"
    assert withdrawals() == [known[2].pk]
    # the dead worker's lease keeps the next pull out, for a few seconds only
    assert state.pull_lease_token is not None and state.pull_lease_until is not None
    assert state.pull_lease_until <= timezone.now() + timedelta(seconds=LEASE_SECONDS)
    assert connection_pull(connection_id=connection.pk).busy

    # when: the lease has expired, and another worker pulls
    time.sleep(max((state.pull_lease_until - timezone.now()).total_seconds(), 0) + 0.2)
    workers.start()
    workers.send(pull_connections)
    wait_for(lambda: pulled_to_the_end(crm, connection), timeout=60)

    # then: every record applied once, the cursor at the end, the lease given back
    assert sorted(Contact.objects.values_list("email", flat=True)) == sorted(
        email(n) for n in range(PEOPLE)
    )
    assert Contact.objects.get(pk=known[LOCKED].pk).first_name == "Camille"
    links = list(ContactLink.objects.filter(connection=connection).values_list("remote_id"))
    assert sorted(remote_id for (remote_id,) in links) == sorted(crm.records())
    assert sorted(withdrawals()) == sorted(contact.pk for contact in known.values())
    created = OutboxEvent.objects.filter(topic="contact.created")
    assert created.count() == PEOPLE - len(KNOWN)
    assert len(set(created.values_list("contact_public_id", flat=True))) == PEOPLE - len(KNOWN)
    state = ConnectionState.objects.get(pk=connection.pk)
    assert state.pull_error == "" and state.last_pull_at is not None
    # what the pulls wrote was not pushed back (no ping-pong): the CRM holds its people alone
    assert len(crm.records()) == PEOPLE
    assert not DeadLetter.objects.exists()


def ours(n: int) -> Contact:
    """A person we hold, under another first name than the CRM's."""
    contact = ContactFactory(email=email(n), first_name="Old")
    assert isinstance(contact, Contact)
    return contact


def backend_waiting_on_a_lock() -> int | None:
    """The database session of the worker, once it waits for the row this test locked."""
    with database.cursor() as cursor:
        # within a transaction, PostgreSQL answers from a snapshot of the activity: a new one
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT pid, query FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        rows = cursor.fetchall()
    assert all("contacts_contact" in query for _pid, query in rows), rows
    return rows[0][0] if rows else None


def backend_alive(pid: int) -> bool:
    with database.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone() is not None


def positions(state: ConnectionState) -> tuple[int, set[str]]:
    """Where the stored cursor stands (the CRM's time, the ids applied at that time), over
    HubSpot's one stream or Salesforce's Contacts."""
    stored = positions_read(state.pull_cursor)
    position = stored.get("contacts") or stored["Contact"]
    return position.since, position.seen


def pulled_to_the_end(crm: Crm, connection: Connection) -> bool:
    state = ConnectionState.objects.get(pk=connection.pk)
    if not state.pull_cursor or state.pull_lease_token is not None:
        return False
    records = crm.records()
    last = max(records, key=records.__getitem__)
    return positions(state) == (records[last], {last})


def withdrawals() -> list[int]:
    """The contacts whose newsletter the CRM's opt-outs withdrew, a ledger record each."""
    return list(
        ConsentRecord.objects.filter(
            action=ConsentAction.WITHDRAW, source_kind=SourceKind.CRM
        ).values_list("contact_id", flat=True)
    )
