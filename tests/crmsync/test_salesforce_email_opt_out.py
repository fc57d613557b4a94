"""Salesforce's `HasOptedOutOfEmail` is one flag for every purpose: the push sets it from the
contact's current email consents of the purposes the connection maps, not from the batch. A
withdrawal of one purpose while another stays granted leaves the contact opted in, so the next
pull does not read back an opt-out that would withdraw the other purpose too."""

from typing import Any

import pytest

from consent.models import ConsentState, Purpose
from contacts.models import Contact
from contacts.services import contact_upsert
from crmsync.adapters.salesforce import SalesforceAdapter
from crmsync.connections import connection_config, connection_create
from crmsync.models import Connection, OutboxEvent
from crmsync.pull import connection_pull
from crmsync.push import changes_for, connection_push
from tests.emulators.salesforce import EXTERNAL_ID, SalesforceEmulator
from tests.factories import PurposeFactory, grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def purposes() -> dict[str, Purpose]:
    # "events" is granted by email too, but not mapped to this Salesforce org
    made: dict[str, Purpose] = {}
    for slug in ("news", "offers", "events"):
        made[slug] = PurposeFactory(slug=slug, channels=["email"])  # type: ignore[assignment]
    return made


@pytest.fixture
def connection(salesforce: SalesforceEmulator, purposes: dict[str, Purpose]) -> Connection:
    return connection_create(
        name="salesforce",
        kind="salesforce",
        base_url=salesforce.url,
        credentials={"token": salesforce.session_id},
        purpose_map={
            slug: salesforce.insert("DataUsePurpose", {"Name": slug}) for slug in ("news", "offers")
        },
    )


def lea() -> Contact:
    contact, _created = contact_upsert(
        email="lea@example.fr", fields={"first_name": "Léa", "last_name": "Girard"}
    )
    return contact


def opted_out(salesforce: SalesforceEmulator, contact: Contact) -> bool:
    [record] = salesforce.find("Contact", **{EXTERNAL_ID: str(contact.public_id)})
    return bool(record["HasOptedOutOfEmail"])


def status(contact: Contact, slug: str) -> str:
    return ConsentState.objects.get(contact=contact, purpose__slug=slug, channel="email").status


def test_one_purpose_withdrawn_while_another_is_granted_keeps_the_contact_opted_in(
    salesforce: SalesforceEmulator, connection: Connection, purposes: dict[str, Purpose]
) -> None:
    # given: Léa receives the newsletter and the offers by email, in Salesforce too
    contact = lea()
    for purpose in purposes.values():
        grant(contact, purpose)
    connection_push(connection_id=connection.pk)
    assert opted_out(salesforce, contact) is False

    # when: she withdraws the newsletter alone
    grant(contact, purposes["news"], action="withdraw", evidence=None)
    outcome = connection_push(connection_id=connection.pk)

    # then: still reachable by email for the offers, and a pull leaves the offers granted
    assert outcome.rejected == 0
    assert opted_out(salesforce, contact) is False
    connection_pull(connection_id=connection.pk)
    assert (status(contact, "news"), status(contact, "offers")) == ("withdrawn", "granted")


def test_every_mapped_purpose_withdrawn_opts_the_contact_out(
    salesforce: SalesforceEmulator, connection: Connection, purposes: dict[str, Purpose]
) -> None:
    contact = lea()
    for purpose in purposes.values():
        grant(contact, purpose)
    connection_push(connection_id=connection.pk)

    for slug in ("news", "offers"):
        grant(contact, purposes[slug], action="withdraw", evidence=None)
    connection_push(connection_id=connection.pk)

    # the unmapped purpose still granted by email does not keep the flag off
    assert opted_out(salesforce, contact) is True
    connection_pull(connection_id=connection.pk)
    assert status(contact, "events") == "granted"
    assert (status(contact, "news"), status(contact, "offers")) == ("withdrawn", "withdrawn")


def test_the_push_reads_the_state_in_prepare_and_not_in_its_own_thread(
    salesforce: SalesforceEmulator,
    connection: Connection,
    purposes: dict[str, Purpose],
    django_assert_num_queries: Any,
) -> None:
    contact = lea()
    grant(contact, purposes["offers"])
    batch = changes_for(connection, list(OutboxEvent.objects.order_by("created_at")))
    adapter = SalesforceAdapter(connection_config(connection), timeout=5)

    with django_assert_num_queries(1):  # the states of the batch's contacts, at once
        adapter.prepare(batch)
    with django_assert_num_queries(0):
        result = adapter.push(batch)

    assert result.rejected == {}
    assert opted_out(salesforce, contact) is False
