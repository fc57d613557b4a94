"""End to end: our writes (a contact created, a consent granted then withdrawn) go through the
outbox and `connection_push` (claims, cursor, retries, dead letters) and the real clients
(hubspot-api-client, simple-salesforce) into the HubSpot and Salesforce emulators, over HTTP
on 127.0.0.1."""

import time
from collections.abc import Iterator
from typing import Any

import pytest

from consent.models import Purpose
from contacts.models import Contact
from contacts.services import contact_upsert
from crmsync.connections import connection_create
from crmsync.models import Connection, ConnectionState, ContactLink, DeadLetter, OutboxEvent
from crmsync.push import PushOutcome, connection_push, dead_letters_replay, outbox_mark_processed
from crmsync.services import outbox_head
from tests.emulators import Response
from tests.emulators.hubspot import HubSpotEmulator
from tests.emulators.salesforce import SalesforceEmulator
from tests.factories import PurposeFactory, grant

pytestmark = pytest.mark.django_db

TOKEN = "hubspot-test-token"
UPSERT = "/crm/v3/objects/contacts/batch/upsert"
NEWSLETTER_SUBSCRIPTION = "1001"


class TimedHubSpot(HubSpotEmulator):
    """The HubSpot emulator, noting when each call was answered (time.monotonic)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answered_at: list[tuple[str, int, float]] = []

    def answer(self, method: str, target: str, headers: Any, raw: bytes) -> Response:
        response = super().answer(method, target, headers, raw)
        with self.lock:
            self.answered_at.append((target.split("?")[0], response.status, time.monotonic()))
        return response


@pytest.fixture
def hubspot() -> Iterator[TimedHubSpot]:
    with TimedHubSpot(token=TOKEN) as emulator:
        assert isinstance(emulator, TimedHubSpot)
        yield emulator


@pytest.fixture
def newsletter() -> Purpose:
    purpose: Purpose = PurposeFactory(slug="newsletter", channels=["email"])
    return purpose


@pytest.fixture
def to_hubspot(hubspot: TimedHubSpot, newsletter: Purpose) -> Connection:
    return connection_create(
        name="hubspot",
        kind="hubspot",
        base_url=hubspot.url,
        credentials={"token": TOKEN},
        purpose_map={"newsletter": NEWSLETTER_SUBSCRIPTION},
    )


@pytest.fixture
def to_salesforce(salesforce: SalesforceEmulator, newsletter: Purpose) -> Connection:
    return connection_create(
        name="salesforce",
        kind="salesforce",
        base_url=salesforce.url,
        credentials={"token": salesforce.session_id},
        purpose_map={"newsletter": "0Jd000000000001"},
    )


def lea() -> Contact:
    contact, _created = contact_upsert(
        email="lea@example.fr",
        fields={"first_name": "Léa", "last_name": "Girard", "company": "Vélos Martin"},
    )
    return contact


def state(connection: Connection) -> ConnectionState:
    return ConnectionState.objects.get(pk=connection.pk)


def upserts(hubspot: TimedHubSpot) -> list[tuple[int, float]]:
    with hubspot.lock:
        return [(status, at) for path, status, at in hubspot.answered_at if path == UPSERT]


def test_a_contact_and_its_consent_granted_then_withdrawn_reach_hubspot(
    hubspot: TimedHubSpot, to_hubspot: Connection, newsletter: Purpose
) -> None:
    contact = lea()
    granted = grant(contact, newsletter)

    first = connection_push(connection_id=to_hubspot.pk)

    assert (first.delivered, first.rejected, first.retry_in) == (2, 0, None)
    stored = hubspot.contact("lea@example.fr")
    assert stored is not None
    assert (
        stored["properties"]["firstname"],
        stored["properties"]["lastname"],
        stored["properties"]["company"],
    ) == ("Léa", "Girard", "Vélos Martin")
    status = hubspot.subscription_status("lea@example.fr", NEWSLETTER_SUBSCRIPTION)
    assert status is not None
    assert (status["status"], status["legalBasis"]) == ("SUBSCRIBED", "CONSENT_WITH_NOTICE")
    # the explanation names the ledger record HubSpot's users can ask us to prove
    assert str(granted.uuid) in status["legalBasisExplanation"]
    link = ContactLink.objects.get(connection=to_hubspot)
    assert (link.contact_id, link.remote_id) == (contact.pk, stored["id"])

    grant(contact, newsletter, action="withdraw", evidence=None)
    second = connection_push(connection_id=to_hubspot.pk)

    assert second.delivered == 1
    status = hubspot.subscription_status("lea@example.fr", NEWSLETTER_SUBSCRIPTION)
    assert status is not None and (status["status"], status["optedOut"]) == (
        "NOT_SUBSCRIBED",
        True,
    )
    assert "withdrawn" in status["legalBasisExplanation"]
    refreshed = hubspot.contact("lea@example.fr")
    assert refreshed is not None
    assert refreshed["properties"][f"hs_email_optout_{NEWSLETTER_SUBSCRIPTION}"] == "true"
    assert state(to_hubspot).push_cursor == outbox_head()
    outbox_mark_processed()
    assert not OutboxEvent.objects.filter(processed_at__isnull=True).exists()


def test_a_contact_and_its_email_consent_granted_then_withdrawn_reach_salesforce(
    salesforce: SalesforceEmulator, to_salesforce: Connection, newsletter: Purpose
) -> None:
    contact = lea()
    grant(contact, newsletter)

    first = connection_push(connection_id=to_salesforce.pk)

    assert (first.delivered, first.rejected) == (2, 0)
    [record] = salesforce.find("Contact", ConsentDesk_Id__c=str(contact.public_id))
    assert (record["Email"], record["FirstName"], record["LastName"]) == (
        "lea@example.fr",
        "Léa",
        "Girard",
    )
    assert record["HasOptedOutOfEmail"] is False
    link = ContactLink.objects.get(connection=to_salesforce)
    assert (link.contact_id, link.remote_id) == (contact.pk, record["Id"])

    grant(contact, newsletter, action="withdraw", evidence=None)
    connection_push(connection_id=to_salesforce.pk)

    [record] = salesforce.find("Contact", ConsentDesk_Id__c=str(contact.public_id))
    assert record["HasOptedOutOfEmail"] is True
    assert len(salesforce.records["Contact"]) == 1  # the same record, not a second one
    assert ContactLink.objects.get(connection=to_salesforce).remote_id == record["Id"]


def test_a_push_that_succeeded_sends_nothing_again(
    hubspot: TimedHubSpot, to_hubspot: Connection, newsletter: Purpose
) -> None:
    grant(lea(), newsletter)
    connection_push(connection_id=to_hubspot.pk)
    calls, snapshot = len(hubspot.calls), hubspot.snapshot()

    again = connection_push(connection_id=to_hubspot.pk)

    assert again == PushOutcome()
    assert len(hubspot.calls) == calls and hubspot.snapshot() == snapshot


def test_a_429_storm_is_waited_out_each_retry_after_and_delivered_once(
    hubspot: TimedHubSpot, to_hubspot: Connection
) -> None:
    lea()
    hubspot.fail_next(3, status=429, headers={"Retry-After": "1"})
    outcomes = []

    while True:
        outcome = connection_push(connection_id=to_hubspot.pk)
        outcomes.append(outcome)
        if outcome.retry_in is None:
            break
        assert outcome.retry_in == 1
        # too early: the connection waits, nothing is sent
        calls = len(hubspot.calls)
        assert connection_push(connection_id=to_hubspot.pk).delivered == 0
        assert len(hubspot.calls) == calls
        time.sleep(outcome.retry_in)

    assert [outcome.delivered for outcome in outcomes] == [0, 0, 0, 1]
    answers = upserts(hubspot)
    assert [status for status, _at in answers] == [429, 429, 429, 200]
    # each attempt came at least Retry-After after the refusal before it
    times = [at for _status, at in answers]
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert all(gap >= 1.0 for gap in gaps), gaps
    assert hubspot.contact("lea@example.fr") is not None
    assert state(to_hubspot).failures == 0 and state(to_hubspot).next_attempt_at is None


def test_a_500_is_retried_after_a_backoff_then_delivered(
    hubspot: TimedHubSpot, to_hubspot: Connection, settings: Any
) -> None:
    settings.CRM_PUSH_BACKOFF_BASE = 0.2
    lea()
    hubspot.fail_next(1, status=500, body={"status": "error", "message": "internal error"})

    failed = connection_push(connection_id=to_hubspot.pk)

    assert failed.delivered == 0 and failed.retry_in is not None
    assert 0.1 <= failed.retry_in <= 0.2  # half to all of the first backoff
    assert state(to_hubspot).push_cursor == 0 and "500" in state(to_hubspot).last_error
    time.sleep(failed.retry_in)
    delivered = connection_push(connection_id=to_hubspot.pk)

    assert delivered.delivered == 1
    assert [status for status, _at in upserts(hubspot)] == [500, 200]
    assert hubspot.contact("lea@example.fr") is not None
    assert state(to_hubspot).failures == 0 and not DeadLetter.objects.exists()


def test_a_contact_hubspot_refuses_becomes_a_dead_letter_that_replay_delivers_once_fixed(
    hubspot: TimedHubSpot, to_hubspot: Connection
) -> None:
    # HubSpot blocks an address it GDPR-deleted: that one input is refused, the batch is not
    hubspot.gdpr_deleted.add("lea@example.fr")
    refused = lea()
    accepted, _created = contact_upsert(email="paul@example.fr", fields={"last_name": "Roux"})

    outcome = connection_push(connection_id=to_hubspot.pk)

    assert (outcome.delivered, outcome.rejected) == (1, 1)
    assert hubspot.contact("paul@example.fr") is not None
    assert hubspot.contact("lea@example.fr") is None
    [letter] = DeadLetter.objects.filter(connection=to_hubspot)
    assert letter.event.contact_public_id == refused.public_id
    assert "permanently deleted" in letter.error
    assert state(to_hubspot).push_cursor == outbox_head()  # the rest went on
    assert OutboxEvent.objects.get(pk=letter.event_id).processed_at is None

    hubspot.gdpr_deleted.discard("lea@example.fr")  # HubSpot's support lifted the block
    replay = dead_letters_replay(dead_letter_ids=[letter.pk])

    assert (replay.resolved, replay.failed) == (1, 0)
    stored = hubspot.contact("lea@example.fr")
    assert stored is not None and stored["properties"]["lastname"] == "Girard"
    assert ContactLink.objects.get(contact=refused).remote_id == stored["id"]
    letter.refresh_from_db()
    assert letter.resolved_at is not None
    assert OutboxEvent.objects.get(pk=letter.event_id).processed_at is not None
    # and the next push does not send it again
    calls = len(hubspot.calls)
    assert connection_push(connection_id=to_hubspot.pk).delivered == 0
    assert len(hubspot.calls) == calls


def test_an_email_changed_in_the_batch_after_the_one_that_created_the_record_updates_it(
    hubspot: TimedHubSpot,
    to_hubspot: Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from contacts.services import contact_update
    from crmsync.adapters.hubspot import HubSpotAdapter

    # one event a batch: the second batch is read while the first is being delivered
    monkeypatch.setattr(HubSpotAdapter, "batch_size", 1)
    contact = lea()
    contact_update(contact=contact, email="lea.girard@example.fr", fields={})

    outcome = connection_push(connection_id=to_hubspot.pk)

    assert outcome.delivered == 2
    # HubSpot was told the new address on the record it had just made, not a second record
    assert hubspot.contact("lea@example.fr") is None
    moved = hubspot.contact("lea.girard@example.fr")
    assert moved is not None
    assert len(hubspot.contacts) == 1
    assert ContactLink.objects.get(connection=to_hubspot).remote_id == moved["id"]


def test_a_withdrawal_followed_by_a_new_pending_sign_up_still_unsubscribes_in_hubspot(
    hubspot: TimedHubSpot, to_hubspot: Connection, newsletter: Purpose
) -> None:
    newsletter.double_opt_in = True
    newsletter.save(update_fields=["double_opt_in"])
    from consent.services import consent_confirm

    contact = lea()
    pending = grant(contact, newsletter)
    consent_confirm(contact=contact, record_uuids=[str(pending.uuid)])
    connection_push(connection_id=to_hubspot.pk)
    status = hubspot.subscription_status("lea@example.fr", NEWSLETTER_SUBSCRIPTION)
    assert status is not None and status["status"] == "SUBSCRIBED"

    grant(contact, newsletter, action="withdraw", evidence=None)
    grant(contact, newsletter)  # signs up again: pending until the link is followed
    connection_push(connection_id=to_hubspot.pk)

    # meanwhile no consent holds: HubSpot must not keep sending to them
    status = hubspot.subscription_status("lea@example.fr", NEWSLETTER_SUBSCRIPTION)
    assert status is not None and status["status"] == "NOT_SUBSCRIBED"
