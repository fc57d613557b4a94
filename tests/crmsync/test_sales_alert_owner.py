"""Sales alerts to the contact's owner in the CRM (issue 14, point 4): the pull reads each
record's owner (HubSpot's `hubspot_owner_id` and the owners API, Salesforce's `OwnerId` and
its `User`), stores it on the contact's link, and an alert "to the contact's owner" emails
them, the configured address standing in when no owner is known."""

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from contacts.models import Contact
from contacts.services import contact_update, contact_upsert
from crmsync import alerts
from crmsync.alerts import sales_alerts_scan, sales_alerts_send
from crmsync.connections import connection_create
from crmsync.models import Connection, ContactLink, SalesAlert
from crmsync.pull import PullOutcome, connection_pull
from crmsync.push import connection_push
from privacy.services import contact_erase
from tests.admin.conftest import otp_verified_login
from tests.emulators.hubspot import HubSpotEmulator
from tests.emulators.salesforce import SalesforceEmulator
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "hubspot-test-token"
OWNERS_PATH = "/crm/v3/owners/"
FALLBACK = "sales@example.fr"


class Clock:
    """The HubSpot emulator's time: the real time, and each call at least a millisecond
    later, so that every change moves `lastmodifieddate` past the cursor."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        self.now = max(self.now + 1, int(time.time() * 1000))
        return self.now


@pytest.fixture
def hubspot() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(token=TOKEN, clock=Clock()) as emulator:
        assert isinstance(emulator, HubSpotEmulator)
        yield emulator


@pytest.fixture
def hubspot_connection(hubspot: HubSpotEmulator) -> Connection:
    return connection_create(
        name="hubspot", kind="hubspot", base_url=hubspot.url, credentials={"token": TOKEN}
    )


@pytest.fixture
def salesforce_connection(salesforce: SalesforceEmulator) -> Connection:
    return connection_create(
        name="salesforce",
        kind="salesforce",
        base_url=salesforce.url,
        credentials={"token": salesforce.session_id},
    )


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The deliveries each scan queued after its commit (sent here, in-process)."""
    calls: list[list[int]] = []
    monkeypatch.setattr(alerts, "_queue_send", calls.append)
    return calls


@pytest.fixture
def to_owner(db: None) -> SalesAlert:
    """Sales qualified leads go to their owner; those nobody owns, to the sales inbox."""
    sales_alerts_scan()  # the cursor starts at the end of the outbox: no alert for the past
    return SalesAlert.objects.create(stage="sql", recipient=FALLBACK, language="en", to_owner=True)


def scan_and_send(queued: list[list[int]]) -> list[list[str]]:
    """Scan, send what was queued, and answer the recipients of each email sent."""
    queued.clear()
    mail.outbox.clear()
    sales_alerts_scan()
    for ids in queued:
        sales_alerts_send(delivery_ids=ids)
    return [message.to for message in mail.outbox]


def aged() -> None:
    """Our contacts last changed a minute ago: older than what the CRM does next (its times
    are in milliseconds, ours in microseconds)."""
    Contact.objects.update(updated_at=timezone.now() - timedelta(minutes=1))


def pushed_to_salesforce(
    salesforce: SalesforceEmulator, connection: Connection, email: str, owner: str
) -> str:
    """Our contact, pushed to Salesforce (keyed by our id), then given an owner there by a
    salesperson; the Salesforce Contact's id."""
    contact, _created = contact_upsert(email=email, fields={"last_name": "Martin"})
    connection_push(connection_id=connection.pk)  # (done already when tasks run eagerly)
    [record] = salesforce.find("Contact", ConsentDesk_Id__c=str(contact.public_id))
    with salesforce.lock:
        salesforce._write("Contact", record["Id"], {"OwnerId": owner})
    return str(record["Id"])


def pull(connection: Connection) -> PullOutcome:
    outcome = connection_pull(connection_id=connection.pk)
    assert outcome.error == ""
    return outcome


def hubspot_person(n: int, **properties: str) -> dict[str, str]:
    return {"email": f"person{n}@example.fr", "lastname": f"Martin{n}", **properties}


def owner_lookups(hubspot: HubSpotEmulator) -> list[str]:
    return [call.path.rsplit("/", 1)[1] for call in hubspot.calls_to(OWNERS_PATH, "GET")]


def user_queries(salesforce: SalesforceEmulator) -> list[str]:
    return [
        query
        for call in salesforce.calls_to("/query")
        for query in call.query.get("q", [])
        if "FROM User" in query
    ]


# -- HubSpot ----------------------------------------------------------------------------------
def test_the_hubspot_owner_of_a_contact_the_crm_qualifies_gets_the_alert(
    hubspot: HubSpotEmulator,
    hubspot_connection: Connection,
    to_owner: SalesAlert,
    queued: list[list[int]],
) -> None:
    # given: a salesperson owns the contact in HubSpot, who qualifies it there
    owner = hubspot.put_owner("julie.vendeuse@velos-martin.example", first_name="Julie")
    hubspot.put_contact(
        hubspot_person(1, hubspot_owner_id=owner, lifecyclestage="salesqualifiedlead")
    )

    # when
    pull(hubspot_connection)

    # then
    assert scan_and_send(queued) == [["julie.vendeuse@velos-martin.example"]]
    [message] = mail.outbox
    assert "Sales qualified lead" in message.subject
    assert "person1@example.fr" in message.body
    link = ContactLink.objects.get()
    assert (link.owner_id, link.owner_email) == (owner, "julie.vendeuse@velos-martin.example")


def test_a_contact_without_owner_alerts_the_configured_address(
    hubspot: HubSpotEmulator,
    hubspot_connection: Connection,
    to_owner: SalesAlert,
    queued: list[list[int]],
) -> None:
    hubspot.put_contact(hubspot_person(1, lifecyclestage="salesqualifiedlead"))

    pull(hubspot_connection)

    assert scan_and_send(queued) == [[FALLBACK]]
    assert ContactLink.objects.get().owner_id == ""


def test_an_owner_hubspot_no_longer_lists_leaves_the_alert_to_the_configured_address(
    hubspot: HubSpotEmulator,
    hubspot_connection: Connection,
    to_owner: SalesAlert,
    queued: list[list[int]],
) -> None:
    # given: the owner's user was deactivated in HubSpot (archived: the owners API's 404)
    owner = hubspot.put_owner("parti@velos-martin.example")
    hubspot.put_contact(
        hubspot_person(1, hubspot_owner_id=owner, lifecyclestage="salesqualifiedlead")
    )
    hubspot.put_owner("parti@velos-martin.example", archived=True)

    pull(hubspot_connection)

    assert owner_lookups(hubspot) == [owner]
    assert scan_and_send(queued) == [[FALLBACK]]


def test_an_alert_not_meant_for_owners_still_goes_to_its_recipient(
    hubspot: HubSpotEmulator, hubspot_connection: Connection, queued: list[list[int]]
) -> None:
    sales_alerts_scan()
    SalesAlert.objects.create(stage="sql", recipient="manager@example.fr", language="en")
    owner = hubspot.put_owner("julie.vendeuse@velos-martin.example")
    hubspot.put_contact(
        hubspot_person(1, hubspot_owner_id=owner, lifecyclestage="salesqualifiedlead")
    )

    pull(hubspot_connection)

    assert scan_and_send(queued) == [["manager@example.fr"]]


def test_an_owner_changed_in_the_crm_gets_the_next_alert(
    hubspot: HubSpotEmulator,
    hubspot_connection: Connection,
    to_owner: SalesAlert,
    queued: list[list[int]],
) -> None:
    # given: a lead of Julie's, pulled
    julie = hubspot.put_owner("julie@velos-martin.example")
    marc = hubspot.put_owner("marc@velos-martin.example")
    hubspot.put_contact(hubspot_person(1, hubspot_owner_id=julie, lifecyclestage="lead"))
    pull(hubspot_connection)
    assert scan_and_send(queued) == []
    aged()

    # when: sales hand it to Marc, who qualifies it
    hubspot.put_contact(
        hubspot_person(1, hubspot_owner_id=marc, lifecyclestage="salesqualifiedlead")
    )
    pull(hubspot_connection)

    # then
    assert scan_and_send(queued) == [["marc@velos-martin.example"]]
    assert ContactLink.objects.get().owner_email == "marc@velos-martin.example"


def test_the_owner_is_decided_when_the_alert_is_sent(
    hubspot: HubSpotEmulator,
    hubspot_connection: Connection,
    to_owner: SalesAlert,
    queued: list[list[int]],
) -> None:
    # given: a reach recorded while Julie owned the contact, its email not sent yet
    julie = hubspot.put_owner("julie@velos-martin.example")
    marc = hubspot.put_owner("marc@velos-martin.example")
    hubspot.put_contact(
        hubspot_person(1, hubspot_owner_id=julie, lifecyclestage="salesqualifiedlead")
    )
    pull(hubspot_connection)
    queued.clear()
    sales_alerts_scan()
    # when: the contact changes hands before the worker sends it
    hubspot.put_contact(hubspot_person(1, hubspot_owner_id=marc))
    pull(hubspot_connection)
    mail.outbox.clear()
    for ids in queued:
        sales_alerts_send(delivery_ids=ids)

    # then
    assert [message.to for message in mail.outbox] == [["marc@velos-martin.example"]]


def test_a_contact_whose_owner_is_removed_in_the_crm_goes_back_to_the_configured_address(
    hubspot: HubSpotEmulator,
    hubspot_connection: Connection,
    to_owner: SalesAlert,
    queued: list[list[int]],
) -> None:
    julie = hubspot.put_owner("julie@velos-martin.example")
    hubspot.put_contact(hubspot_person(1, hubspot_owner_id=julie, lifecyclestage="lead"))
    pull(hubspot_connection)
    aged()

    hubspot.put_contact(hubspot_person(1, hubspot_owner_id="", lifecyclestage="salesqualifiedlead"))
    pull(hubspot_connection)

    assert scan_and_send(queued) == [[FALLBACK]]


def test_a_pull_that_changes_no_owner_leaves_the_links_as_they_were(
    hubspot: HubSpotEmulator, hubspot_connection: Connection
) -> None:
    julie = hubspot.put_owner("julie@velos-martin.example")
    hubspot.put_contact(hubspot_person(1, hubspot_owner_id=julie))
    pull(hubspot_connection)
    before = ContactLink.objects.values_list("owner_email", "updated_at").get()

    hubspot.put_contact(hubspot_person(1, hubspot_owner_id=julie, firstname="Camille"))
    outcome = pull(hubspot_connection)

    assert outcome.fetched == 1
    assert ContactLink.objects.values_list("owner_email", "updated_at").get() == before


def test_the_owners_api_is_called_once_per_distinct_owner_of_a_page(
    hubspot: HubSpotEmulator, hubspot_connection: Connection, settings: Any
) -> None:
    # given: six contacts shared by two owners, one without
    settings.CRM_PULL_PAGE_SIZE = 10
    julie = hubspot.put_owner("julie@velos-martin.example")
    marc = hubspot.put_owner("marc@velos-martin.example")
    for n in range(6):
        hubspot.put_contact(hubspot_person(n, hubspot_owner_id=(julie, marc)[n % 2]))
    hubspot.put_contact(hubspot_person(6))

    # when
    outcome = pull(hubspot_connection)

    # then
    assert outcome.pages == 1
    assert sorted(owner_lookups(hubspot)) == sorted([julie, marc])
    owners = dict(ContactLink.objects.values_list("contact__email", "owner_email"))
    assert owners == {
        **{
            f"person{n}@example.fr": ("julie", "marc")[n % 2] + "@velos-martin.example"
            for n in range(6)
        },
        "person6@example.fr": "",
    }


def test_an_owner_met_on_an_earlier_page_of_the_pull_is_not_looked_up_again(
    hubspot: HubSpotEmulator, hubspot_connection: Connection, settings: Any
) -> None:
    settings.CRM_PULL_PAGE_SIZE = 2
    julie = hubspot.put_owner("julie@velos-martin.example")
    for n in range(5):
        hubspot.put_contact(hubspot_person(n, hubspot_owner_id=julie))

    outcome = pull(hubspot_connection)

    assert outcome.pages == 3
    assert owner_lookups(hubspot) == [julie]
    assert set(ContactLink.objects.values_list("owner_email", flat=True)) == {
        "julie@velos-martin.example"
    }


def test_a_rate_limited_owner_lookup_fails_the_page_which_is_read_again(
    hubspot: HubSpotEmulator,
    hubspot_connection: Connection,
    to_owner: SalesAlert,
    queued: list[list[int]],
) -> None:
    owner = hubspot.put_owner("julie@velos-martin.example")
    hubspot.put_contact(
        hubspot_person(1, hubspot_owner_id=owner, lifecyclestage="salesqualifiedlead")
    )
    original = hubspot.owner

    def throttled_once(key: str, query: dict[str, list[str]]) -> Any:
        hubspot.owner = original  # type: ignore[method-assign]
        return hubspot.throttled()

    hubspot.owner = throttled_once  # type: ignore[method-assign]

    failed = connection_pull(connection_id=hubspot_connection.pk)

    assert "rate limit" in failed.error
    assert not Contact.objects.exists()
    pull(hubspot_connection)
    assert scan_and_send(queued) == [["julie@velos-martin.example"]]


# -- Salesforce -------------------------------------------------------------------------------
def test_the_salesforce_owner_of_a_contact_gets_the_alert(
    salesforce: SalesforceEmulator,
    salesforce_connection: Connection,
    to_owner: SalesAlert,
    queued: list[list[int]],
) -> None:
    # given: our contact in Salesforce, owned there by a salesperson, pulled
    user = salesforce.insert(
        "User",
        {"LastName": "Durand", "Email": "paul.durand@velos-martin.example", "Username": "pd"},
    )
    pushed_to_salesforce(salesforce, salesforce_connection, "camille@example.fr", user)
    pull(salesforce_connection)
    scan_and_send(queued)

    # when: the contact reaches the stage (here, through our own write path)
    contact_update(contact=Contact.objects.get(), fields={"lifecycle_stage": "sql"})

    # then
    assert scan_and_send(queued) == [["paul.durand@velos-martin.example"]]


def test_salesforce_owners_are_read_with_one_user_query_a_page(
    salesforce: SalesforceEmulator, salesforce_connection: Connection
) -> None:
    julie, marc = (
        salesforce.insert(
            "User", {"LastName": name, "Email": f"{name}@vm.example", "Username": name}
        )
        for name in ("julie", "marc")
    )
    for n in range(4):
        salesforce.insert(
            "Contact",
            {"LastName": f"C{n}", "Email": f"c{n}@example.fr", "OwnerId": (julie, marc)[n % 2]},
        )
    salesforce.insert(
        "Lead", {"LastName": "L", "Company": "Acme", "Email": "lead@example.fr", "OwnerId": julie}
    )
    salesforce.insert("Lead", {"LastName": "N", "Company": "Acme", "Email": "none@example.fr"})

    outcome = pull(salesforce_connection)

    assert outcome.pages == 1
    [query] = user_queries(salesforce)
    assert query.startswith("SELECT Id, Email FROM User WHERE Id IN (")
    owners = dict(ContactLink.objects.values_list("contact__email", "owner_email"))
    assert owners == {
        "c0@example.fr": "julie@vm.example",
        "c1@example.fr": "marc@vm.example",
        "c2@example.fr": "julie@vm.example",
        "c3@example.fr": "marc@vm.example",
        "lead@example.fr": "julie@vm.example",
        "none@example.fr": "",
    }


def test_a_salesforce_owner_changed_gets_the_next_alert(
    salesforce: SalesforceEmulator,
    salesforce_connection: Connection,
    to_owner: SalesAlert,
    queued: list[list[int]],
) -> None:
    julie, marc = (
        salesforce.insert(
            "User", {"LastName": name, "Email": f"{name}@vm.example", "Username": name}
        )
        for name in ("julie", "marc")
    )
    record = pushed_to_salesforce(salesforce, salesforce_connection, "camille@example.fr", julie)
    pull(salesforce_connection)
    scan_and_send(queued)

    with salesforce.lock:
        salesforce._write("Contact", record, {"OwnerId": marc})
    pull(salesforce_connection)
    contact_update(contact=Contact.objects.get(), fields={"lifecycle_stage": "sql"})

    assert scan_and_send(queued) == [["marc@vm.example"]]


def test_the_most_recently_updated_link_names_the_owner(
    hubspot: HubSpotEmulator,
    hubspot_connection: Connection,
    salesforce: SalesforceEmulator,
    salesforce_connection: Connection,
    to_owner: SalesAlert,
    queued: list[list[int]],
) -> None:
    # given: one person in both CRMs, each with its own owner; Salesforce spoke last
    paul = salesforce.insert(
        "User", {"LastName": "Durand", "Email": "paul@velos-martin.example", "Username": "pd"}
    )
    pushed_to_salesforce(salesforce, salesforce_connection, "camille@example.fr", paul)
    connection_push(connection_id=hubspot_connection.pk)
    julie = hubspot.put_owner("julie@velos-martin.example")
    hubspot.put_contact({"email": "camille@example.fr", "hubspot_owner_id": julie})
    pull(hubspot_connection)
    pull(salesforce_connection)
    scan_and_send(queued)
    contact = Contact.objects.get()

    contact_update(contact=contact, fields={"lifecycle_stage": "sql"})

    assert scan_and_send(queued) == [["paul@velos-martin.example"]]

    # when: HubSpot hands the person to Marc later, and they reach the stage again
    marc = hubspot.put_owner("marc@velos-martin.example")
    hubspot.put_contact({"email": "camille@example.fr", "hubspot_owner_id": marc})
    pull(hubspot_connection)
    contact_update(contact=contact, fields={"lifecycle_stage": "lead"})
    contact_update(contact=contact, fields={"lifecycle_stage": "sql"})

    # then
    assert scan_and_send(queued) == [["marc@velos-martin.example"]]


# -- erasure, admin ---------------------------------------------------------------------------
def test_no_owner_data_about_an_erased_contact_remains(
    hubspot: HubSpotEmulator, hubspot_connection: Connection
) -> None:
    owner = hubspot.put_owner("julie@velos-martin.example")
    hubspot.put_contact(hubspot_person(1, hubspot_owner_id=owner))
    pull(hubspot_connection)
    contact = Contact.objects.get()
    assert ContactLink.objects.get(contact=contact).owner_email

    contact_erase(contact=contact, reason="erasure")

    # the link stays (HubSpot's id still recognises the person); its owner does not
    assert list(
        ContactLink.objects.filter(contact=contact).values_list("owner_id", "owner_email")
    ) == [("", "")]
    # a later pull of the record never brings it back: an erased person is not touched
    hubspot.put_contact(hubspot_person(1, hubspot_owner_id=owner, firstname="Camille"))
    pull(hubspot_connection)
    assert not ContactLink.objects.filter(contact=contact).exclude(owner_email="").exists()
    assert not ContactLink.objects.exclude(owner_id="").exists()


def test_staff_choose_in_the_admin_that_an_alert_goes_to_the_owner(db: None) -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    otp_verified_login(client, UserFactory(username="root", is_superuser=True, is_staff=True))

    form = client.get(reverse("admin:crmsync_salesalert_add"))
    assert "send to the contact&#x27;s owner" in form.content.decode().lower()
    response = client.post(
        reverse("admin:crmsync_salesalert_add"),
        {
            "stage": "sql",
            "recipient": FALLBACK,
            "language": "fr",
            "enabled": "on",
            "to_owner": "on",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert SalesAlert.objects.get().to_owner is True
