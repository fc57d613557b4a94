"""The CRMs' batch limits, end to end: the emulators refuse a batch over the documented size
(HubSpot 100 inputs, Salesforce sObject Collections 200 records), and a push of 450 changes
through `connection_push` and the real clients never sends more, full batches first, while
the emulator answers 429 on a share of the calls; each person is held once by the CRM."""

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from contacts.models import Contact
from contacts.services import contact_update, contact_upsert
from crmsync.connections import connection_create
from crmsync.models import Connection, ConnectionState, ContactLink, DeadLetter
from crmsync.push import PushOutcome, connection_push
from crmsync.services import outbox_head
from tests.emulators import Call
from tests.emulators.hubspot import BATCH_LIMIT as HUBSPOT_LIMIT
from tests.emulators.hubspot import HubSpotEmulator
from tests.emulators.salesforce import COLLECTION_LIMIT as SALESFORCE_LIMIT
from tests.emulators.salesforce import EXTERNAL_ID, SalesforceEmulator

pytestmark = pytest.mark.django_db

TOKEN = "hubspot-test-token"
CHANGES = 450
UPSERT = "/crm/v3/objects/contacts/batch/upsert"
UPDATE = "/crm/v3/objects/contacts/batch/update"
COLLECTION = f"/composite/sobjects/Contact/{EXTERNAL_ID}"


@pytest.fixture
def hubspot() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(token=TOKEN) as emulator:
        assert isinstance(emulator, HubSpotEmulator)
        yield emulator


def people(count: int) -> list[Contact]:
    """`count` contacts of ours, created through the service: one outbox event each."""
    return [
        contact_upsert(email=f"person{n}@example.fr", fields={"last_name": f"Martin{n}"})[0]
        for n in range(count)
    ]


def push_until_through(connection: Connection, timeout: float = 60) -> list[PushOutcome]:
    """Push as a worker would: again after each Retry-After, until nothing waits."""
    outcomes = []
    deadline = time.monotonic() + timeout
    while True:
        outcome = connection_push(connection_id=connection.pk)
        outcomes.append(outcome)
        if outcome.retry_in is None and not outcome.more:
            return outcomes
        assert time.monotonic() < deadline, "the push never got through"
        time.sleep(outcome.retry_in or 0)


def sizes(calls: list[Call], key: str) -> list[int]:
    return [len(call.body[key]) for call in calls]


def test_the_emulators_refuse_a_batch_over_the_documented_size(
    hubspot: HubSpotEmulator, salesforce: SalesforceEmulator
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def hub(path: str, inputs: list[dict[str, Any]]) -> requests.Response:
        return requests.post(
            hubspot.url + path, json={"inputs": inputs}, headers=headers, timeout=5
        )

    upserts = [
        {"idProperty": "email", "id": f"p{n}@example.fr", "properties": {}}
        for n in range(HUBSPOT_LIMIT + 1)
    ]
    assert hub(UPSERT, upserts).status_code == 400
    assert hub(UPSERT, upserts[:HUBSPOT_LIMIT]).status_code == 200
    ids = [{"id": hubspot.contact(f"p{n}@example.fr")["id"]} for n in range(HUBSPOT_LIMIT)]  # type: ignore[index]
    updates = [{**item, "properties": {"company": "Acme"}} for item in ids]
    assert hub(UPDATE, [*updates, updates[0]]).status_code == 400
    assert hub("/crm/v3/objects/contacts/batch/read", [*ids, ids[0]]).status_code == 400
    assert all(
        hubspot.contact(f"p{n}@example.fr")["properties"].get("company") != "Acme"  # type: ignore[index]
        for n in range(HUBSPOT_LIMIT)
    )

    records: list[dict[str, Any]] = [
        {"attributes": {"type": "Contact"}, EXTERNAL_ID: str(n), "LastName": "M"}
        for n in range(SALESFORCE_LIMIT + 1)
    ]
    answer = requests.patch(
        f"{salesforce.url}/services/data/v59.0{COLLECTION}",
        json={"allOrNone": False, "records": records},
        headers={"Authorization": f"Bearer {salesforce.session_id}"},
        timeout=5,
    )
    assert answer.status_code == 400
    assert answer.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert not salesforce.records["Contact"]


def test_450_changes_reach_hubspot_in_batches_of_at_most_100_under_429s(
    hubspot: HubSpotEmulator,
) -> None:
    connection = connection_create(
        name="hubspot", kind="hubspot", base_url=hubspot.url, credentials={"token": TOKEN}
    )
    contacts = people(CHANGES)
    hubspot.rate_limit(ratio=0.25, seed=3)

    push_until_through(connection)

    calls = hubspot.calls_to(UPSERT)
    assert max(sizes(calls, "inputs")) <= HUBSPOT_LIMIT
    assert any(call.status == 429 for call in calls), "the seed throttled no call"
    delivered = [call for call in calls if call.status == 200]
    assert sizes(delivered, "inputs") == [100, 100, 100, 100, 50]
    sent = [item["id"] for call in delivered for item in call.body["inputs"]]
    assert sorted(sent) == sorted(contact.email for contact in contacts)  # each once
    assert len(hubspot.contacts) == CHANGES
    assert ConnectionState.objects.get(pk=connection.pk).push_cursor == outbox_head()
    assert ContactLink.objects.filter(connection=connection).count() == CHANGES

    # when: every one of them changes email here: HubSpot's records are updated, by id
    for contact in contacts:
        contact_update(contact=contact, email=f"new.{contact.email}")
    hubspot.calls.clear()
    push_until_through(connection)

    calls = hubspot.calls_to("/batch/")
    assert {call.path for call in calls} == {UPDATE}
    assert max(sizes(calls, "inputs")) <= HUBSPOT_LIMIT
    assert sizes([c for c in calls if c.status == 200], "inputs") == [100, 100, 100, 100, 50]
    assert len(hubspot.contacts) == CHANGES  # the same records: no duplicate after a move
    assert hubspot.contact("new.person7@example.fr") is not None
    assert hubspot.contact("person7@example.fr") is None
    assert not DeadLetter.objects.exists()


def test_450_changes_reach_salesforce_in_collections_of_at_most_200_under_429s(
    salesforce: SalesforceEmulator,
) -> None:
    connection = connection_create(
        name="salesforce",
        kind="salesforce",
        base_url=salesforce.url,
        credentials={"token": salesforce.session_id},
    )
    contacts = people(CHANGES)
    salesforce.rate_limit(ratio=0.4, seed=1, status=429)

    push_until_through(connection)

    calls = salesforce.calls_to(COLLECTION)
    assert max(sizes(calls, "records")) <= SALESFORCE_LIMIT
    assert any(call.status == 429 for call in calls), "the seed throttled no call"
    delivered = [call for call in calls if call.status == 200]
    assert sizes(delivered, "records") == [200, 200, 50]
    sent = [record[EXTERNAL_ID] for call in delivered for record in call.body["records"]]
    assert sorted(sent) == sorted(str(contact.public_id) for contact in contacts)
    assert len(salesforce.records["Contact"]) == CHANGES
    assert len(salesforce.external["Contact"]) == CHANGES
    assert ConnectionState.objects.get(pk=connection.pk).push_cursor == outbox_head()
    assert not DeadLetter.objects.exists()
