"""The push to Salesforce under faults, end to end: our writes go through the outbox and
`connection_push` (or the `push_connection` task) and the real simple-salesforce, over TLS,
into the Salesforce emulator, which answers 429 with Retry-After, 500s, then nothing but 500s
until it is fixed. Retry-After is honoured, a 500 is retried after a backoff, repeated failures
are parked as dead letters that the admin's replay delivers once Salesforce is back, and no
record is ever written twice (counted by our external id)."""

import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from django.db.models import QuerySet
from django.test import Client
from django.urls import reverse

from consent.models import Purpose
from contacts.models import Contact
from contacts.services import contact_upsert
from core.models import AuditAction, AuditEvent
from crmsync.connections import connection_create
from crmsync.models import Connection, ConnectionState, ContactLink, DeadLetter, OutboxEvent
from crmsync.push import connection_push
from crmsync.services import outbox_head
from crmsync.tasks import push_connection
from tests.admin.conftest import otp_verified_login
from tests.emulators import Response
from tests.emulators.salesforce import EXTERNAL_ID, SalesforceEmulator
from tests.factories import PurposeFactory, UserFactory, grant

pytestmark = pytest.mark.django_db

COLLECTIONS = "/composite/sobjects/"
DEAD_LETTERS = reverse("admin:crmsync_deadletter_changelist")
LIMIT_EXCEEDED = [
    {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
]
UNKNOWN_ERROR = [{"message": "An unexpected error occurred.", "errorCode": "UNKNOWN_EXCEPTION"}]


class TimedSalesforce(SalesforceEmulator):
    """The Salesforce emulator, noting when each call was answered (time.monotonic)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answered_at: list[tuple[str, int, float]] = []
        self.path_faults: list[tuple[str, int]] = []

    def answer(self, method: str, target: str, headers: Any, raw: bytes) -> Response:
        response = super().answer(method, target, headers, raw)
        with self.lock:
            self.answered_at.append((target.split("?")[0], response.status, time.monotonic()))
        return response

    def collection_calls(self) -> list[tuple[int, float]]:
        """(status, when) of each sObject Collections upsert answered."""
        with self.lock:
            return [(status, at) for path, status, at in self.answered_at if COLLECTIONS in path]

    def fail_calls_to(self, path_part: str, count: int, *, status: int = 500) -> None:
        """Answer the next `count` calls whose path holds `path_part` with this status (the
        calls before them in the same batch succeed)."""
        with self.lock:
            self.path_faults.extend([(path_part, status)] * count)

    def dispatch(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Response:
        with self.lock:
            if self.path_faults and self.path_faults[0][0] in path:
                _part, status = self.path_faults.pop(0)
                return Response(status, UNKNOWN_ERROR)
        return super().dispatch(method, path, query, body)

    def broken(self) -> None:
        """Every call fails with 500 until `fixed()`."""
        self.fail_next(1000, status=500, body=UNKNOWN_ERROR)

    def fixed(self) -> None:
        with self.lock:
            self.faults.clear()


@pytest.fixture
def salesforce(monkeypatch: pytest.MonkeyPatch) -> Iterator[TimedSalesforce]:
    with TimedSalesforce() as emulator:
        assert isinstance(emulator, TimedSalesforce)
        # simple-salesforce speaks https only: requests trusts the emulator's certificate
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.certificate))
        yield emulator


@pytest.fixture
def newsletter() -> Purpose:
    purpose = PurposeFactory(slug="newsletter", channels=["email"])
    assert isinstance(purpose, Purpose)
    return purpose


@pytest.fixture
def to_salesforce(salesforce: TimedSalesforce, newsletter: Purpose) -> Connection:
    """A connection with consent objects: each push writes Individuals, Contacts and
    ContactPointTypeConsents, three calls any of which may fail."""
    data_use_purpose = salesforce.insert("DataUsePurpose", {"Name": "Newsletter"})
    return connection_create(
        name="salesforce",
        kind="salesforce",
        base_url=salesforce.url,
        credentials={"token": salesforce.session_id},
        purpose_map={"newsletter": data_use_purpose},
        options={"consent_objects": True},
    )


@pytest.fixture
def as_superuser() -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    otp_verified_login(client, UserFactory(username="root-persona", is_superuser=True))
    return client


def people(count: int, newsletter: Purpose) -> list[Contact]:
    """`count` contacts of ours, each granting the newsletter: two outbox events each."""
    made = []
    for n in range(count):
        contact, _created = contact_upsert(
            email=f"person{n}@example.fr", fields={"first_name": "Camille", "last_name": f"M{n}"}
        )
        grant(contact, newsletter)
        made.append(contact)
    return made


def state(connection: Connection) -> ConnectionState:
    return ConnectionState.objects.get(pk=connection.pk)


def unresolved(connection: Connection) -> QuerySet[DeadLetter]:
    return DeadLetter.objects.filter(connection=connection, resolved_at__isnull=True)


def assert_each_written_once(salesforce: SalesforceEmulator, contacts: list[Contact]) -> None:
    """Each of our contacts is one Contact, one Individual and one consent object there."""
    for contact in contacts:
        key = str(contact.public_id)
        [record] = salesforce.find("Contact", **{EXTERNAL_ID: key})
        assert record["HasOptedOutOfEmail"] is False
        assert len(salesforce.find("Individual", **{EXTERNAL_ID: key})) == 1
        [consent] = [
            row
            for row in salesforce.records["ContactPointTypeConsent"].values()
            if row[EXTERNAL_ID].startswith(f"{key}:")
        ]
        assert consent["PrivacyConsentStatus"] == "OptIn"
    for sobject in ("Contact", "Individual", "ContactPointTypeConsent"):
        assert len(salesforce.records[sobject]) == len(contacts), sobject


def test_a_429_is_waited_out_for_its_retry_after_then_delivered_once(
    salesforce: TimedSalesforce, to_salesforce: Connection, newsletter: Purpose
) -> None:
    contacts = people(3, newsletter)
    salesforce.fail_next(2, status=429, body=LIMIT_EXCEEDED, headers={"Retry-After": "1"})
    delivered = []

    while True:
        outcome = connection_push(connection_id=to_salesforce.pk)
        delivered.append(outcome.delivered)
        if outcome.retry_in is None:
            break
        assert outcome.retry_in == 1  # Salesforce's Retry-After, not the backoff
        # too early: the connection waits, nothing is sent
        calls = len(salesforce.calls)
        assert connection_push(connection_id=to_salesforce.pk).delivered == 0
        assert len(salesforce.calls) == calls
        time.sleep(outcome.retry_in)

    assert delivered == [0, 0, 6]
    answers = salesforce.collection_calls()
    assert [status for status, _at in answers] == [429, 429, 200, 200, 200]
    # each attempt came at least Retry-After after the refusal before it
    assert answers[1][1] - answers[0][1] >= 1.0
    assert answers[2][1] - answers[1][1] >= 1.0
    assert_each_written_once(salesforce, contacts)
    assert state(to_salesforce).failures == 0 and state(to_salesforce).next_attempt_at is None
    assert state(to_salesforce).push_cursor == outbox_head()
    assert not DeadLetter.objects.exists()


def test_the_task_queues_its_next_attempt_no_sooner_than_the_retry_after(
    salesforce: TimedSalesforce, to_salesforce: Connection, newsletter: Purpose
) -> None:
    people(1, newsletter)
    salesforce.fail_next(1, status=429, body=LIMIT_EXCEEDED, headers={"Retry-After": "7"})

    with mock.patch.object(push_connection, "apply_async") as queued:
        assert push_connection.apply((to_salesforce.pk,)).get() == 0

    queued.assert_called_once_with((to_salesforce.pk,), countdown=7.0)
    waiting = state(to_salesforce)
    assert waiting.failures == 1 and "429" in waiting.last_error
    assert waiting.next_attempt_at is not None
    # the safety net, running in the meantime, sends nothing before the 7 seconds are over
    calls = len(salesforce.calls)
    assert connection_push(connection_id=to_salesforce.pk).delivered == 0
    assert len(salesforce.calls) == calls and not salesforce.records["Contact"]


def test_a_500_is_retried_after_a_backoff_then_delivered_once(
    salesforce: TimedSalesforce, to_salesforce: Connection, newsletter: Purpose, settings: Any
) -> None:
    settings.CRM_PUSH_BACKOFF_BASE = 0.2
    contacts = people(2, newsletter)
    # the Individuals pass, then the Contacts' call fails: the whole batch goes again
    salesforce.fail_calls_to("/composite/sobjects/Contact/", 1)

    failed = connection_push(connection_id=to_salesforce.pk)

    assert failed.delivered == 0 and failed.retry_in is not None
    assert 0.1 <= failed.retry_in <= 0.2  # half to all of the first backoff
    assert state(to_salesforce).push_cursor < outbox_head()
    assert "500" in state(to_salesforce).last_error
    assert len(salesforce.records["Individual"]) == 2  # written before the failure
    calls = len(salesforce.calls)
    assert connection_push(connection_id=to_salesforce.pk).delivered == 0  # backing off
    assert len(salesforce.calls) == calls
    time.sleep(failed.retry_in)

    delivered = connection_push(connection_id=to_salesforce.pk)

    assert delivered.delivered == 4
    assert [status for status, _at in salesforce.collection_calls()] == [200, 500, 200, 200, 200]
    assert_each_written_once(salesforce, contacts)  # the Individuals went twice, held once
    assert state(to_salesforce).failures == 0 and not DeadLetter.objects.exists()
    assert ContactLink.objects.filter(connection=to_salesforce).count() == 2


def test_repeated_failures_park_dead_letters_that_the_admin_replays_once_salesforce_is_fixed(
    salesforce: TimedSalesforce,
    to_salesforce: Connection,
    newsletter: Purpose,
    settings: Any,
    as_superuser: Client,
) -> None:
    settings.CRM_PUSH_MAX_FAILURES = 3
    settings.CRM_PUSH_BACKOFF_BASE = 0.05
    contacts = people(3, newsletter)
    events = OutboxEvent.objects.count()
    salesforce.broken()

    # when: every attempt fails, until the last one parks the batch
    outcomes = [connection_push(connection_id=to_salesforce.pk)]
    while outcomes[-1].retry_in is not None:
        time.sleep(outcomes[-1].retry_in)
        outcomes.append(connection_push(connection_id=to_salesforce.pk))

    # then: three attempts, each a single failed call, then the batch parked and passed
    assert [outcome.parked for outcome in outcomes] == [0, 0, events]
    assert [status for status, _at in salesforce.collection_calls()] == [500, 500, 500]
    letters = list(unresolved(to_salesforce))
    assert len(letters) == events
    assert {letter.attempts for letter in letters} == {3}
    assert all("500" in letter.error for letter in letters)
    assert state(to_salesforce).push_cursor == outbox_head()  # what comes next is not held
    assert state(to_salesforce).failures == 0
    assert not OutboxEvent.objects.filter(processed_at__isnull=False).exists()

    # when: staff replay them while Salesforce still fails
    ids = [letter.pk for letter in letters]
    answer = as_superuser.post(
        DEAD_LETTERS, {"action": "replay", "_selected_action": ids}, follow=True
    )
    assert f"0 delivered, {events} failed again" in answer.content.decode()
    assert unresolved(to_salesforce).count() == events and not salesforce.records["Contact"]

    # when: Salesforce is fixed, and staff replay them again
    salesforce.fixed()
    answer = as_superuser.post(
        DEAD_LETTERS, {"action": "replay", "_selected_action": ids}, follow=True
    )

    # then: each is delivered and resolved, each record written once
    assert f"{events} delivered, 0 failed again" in answer.content.decode()
    assert not unresolved(to_salesforce).exists()
    assert_each_written_once(salesforce, contacts)
    assert ContactLink.objects.filter(connection=to_salesforce).count() == 3
    assert not OutboxEvent.objects.filter(processed_at__isnull=True).exists()
    replays = AuditEvent.objects.filter(action=AuditAction.DEAD_LETTER_REPLAY).order_by("pk")
    assert [audit.details["resolved"] for audit in replays] == [0, events]
    # and the next push sends none of them again
    calls = len(salesforce.calls)
    assert connection_push(connection_id=to_salesforce.pk).delivered == 0
    assert len(salesforce.calls) == calls
