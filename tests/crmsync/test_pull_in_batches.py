"""The pull applies a page with a few statements, whatever its size (its reads at once, its new
and changed contacts through the batched writers), and keeps every rule of a record applied
alone: a record sees what the ones before it in the page did, a refused record is named and
the rest of the page applied, and what it writes still names its connection."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection as database
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contacts.models import Contact, TimelineEvent
from contacts.services import suppression_add
from crmsync.connections import connection_create
from crmsync.models import Connection, ContactLink, OutboxEvent
from crmsync.pull import connection_pull
from crmsync.services import ORIGIN_KEY
from tests.crmsync.test_pull import TOKEN, Clock, aged, person
from tests.emulators.hubspot import HubSpotEmulator
from tests.factories import ContactFactory, PurposeFactory

SUPPRESSED = "This person asked not to be contacted"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hubspot(clock: Clock) -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(token=TOKEN, clock=clock) as emulator:
        assert isinstance(emulator, HubSpotEmulator)
        yield emulator


@pytest.fixture
def connection(hubspot: HubSpotEmulator, db: None) -> Connection:
    PurposeFactory(slug="newsletter", channels=["email"])
    return connection_create(
        name="hubspot",
        kind="hubspot",
        base_url=hubspot.url,
        credentials={"token": TOKEN},
        purpose_map={"newsletter": "1001"},
    )


def pull_counted(connection: Connection) -> tuple[Any, int]:
    """The pull's outcome, and how many SQL statements it ran."""
    with CaptureQueriesContext(database) as queries:
        outcome = connection_pull(connection_id=connection.pk)
    assert outcome.error == ""
    return outcome, len(queries)


def crm_page(hubspot: HubSpotEmulator, clock: Clock, start: int, count: int) -> None:
    """`count` people in HubSpot, changed there after our last change: a third ours already
    (their last name changed in HubSpot), a third ours (their company filled in HubSpot),
    a third new."""
    for n in range(start, start + count):
        if n % 3 != 2:
            ContactFactory(email=f"person{n}@example.fr", first_name="Camille", last_name="Old")
    aged()
    clock.at(timezone.now())
    for n in range(start, start + count):
        last_name = f"Martin{n}" if n % 3 == 0 else "Old"
        clock.tick()
        hubspot.put_contact(person(n, lastname=last_name, company="Acme"))


@pytest.mark.django_db
def test_a_page_costs_the_same_few_statements_whatever_its_number_of_records(
    hubspot: HubSpotEmulator, connection: Connection, clock: Clock, settings: Any
) -> None:
    settings.CRM_PULL_PAGE_SIZE = 200
    crm_page(hubspot, clock, 0, 12)
    small, small_statements = pull_counted(connection)
    crm_page(hubspot, clock, 100, 60)

    large, large_statements = pull_counted(connection)

    assert (small.created, small.updated, small.unchanged) == (4, 8, 0)
    # the second page: 20 new, 20 changed (last name), 20 the same but for the company
    assert (large.fetched, large.created, large.updated) == (60, 20, 40)
    assert large_statements == small_statements
    assert large_statements < 40
    assert Contact.objects.count() == 72
    assert ContactLink.objects.count() == 72


@pytest.mark.django_db
def test_what_the_batched_writers_write_for_a_pull_names_its_connection(
    hubspot: HubSpotEmulator, connection: Connection, clock: Clock
) -> None:
    crm_page(hubspot, clock, 0, 3)

    outcome = connection_pull(connection_id=connection.pk)

    assert (outcome.created, outcome.updated, outcome.unchanged) == (1, 2, 0)
    events = list(OutboxEvent.objects.filter(topic__startswith="contact."))
    assert sorted(event.topic for event in events) == [
        "contact.created",
        "contact.updated",
        "contact.updated",
    ]
    assert {event.payload[ORIGIN_KEY] for event in events} == {connection.pk}
    changed = {event.payload["email"]: event.payload.get("changed") for event in events}
    assert changed["person0@example.fr"] == ["last_name", "company"]
    assert changed["person1@example.fr"] == ["company"]
    kinds = TimelineEvent.objects.values_list("contact__email", "kind")
    assert ("person2@example.fr", "created") in kinds and ("person0@example.fr", "updated") in kinds


@pytest.mark.django_db
def test_a_record_refused_for_a_suppressed_phone_is_named_and_the_rest_of_the_page_applied(
    hubspot: HubSpotEmulator, connection: Connection, clock: Clock
) -> None:
    suppression_add(reason="complaint", phone="+33612345678")
    known = ContactFactory(email="person1@example.fr", phone="")
    aged()
    clock.at(timezone.now())
    hubspot.put_contact(person(0, phone="+33612345678"))  # new, with a listed phone
    clock.tick()
    hubspot.put_contact(person(1, phone="06 12 34 56 78"))  # ours, given the listed phone
    clock.tick()
    hubspot.put_contact(person(2, phone="+33698765432"))
    clock.tick()
    hubspot.put_contact(person(3))

    outcome = connection_pull(connection_id=connection.pk)

    assert (outcome.created, outcome.updated) == (2, 0)
    assert sum(n for reason, n in outcome.skipped.items() if SUPPRESSED in reason) == 2
    assert set(Contact.objects.values_list("email", flat=True)) == {
        "person1@example.fr",
        "person2@example.fr",
        "person3@example.fr",
    }
    known.refresh_from_db()
    assert known.phone == ""
    # the refused records are not linked: the next pull tries them again
    assert ContactLink.objects.filter(contact=known).count() == 0
    assert ContactLink.objects.count() == 2


@pytest.mark.django_db
def test_a_new_contact_from_a_pull_is_stored_as_one_created_alone(
    hubspot: HubSpotEmulator, connection: Connection
) -> None:
    hubspot.put_contact(person(1, phone="06 12 34 56 78", company="Acme"))

    connection_pull(connection_id=connection.pk)

    contact = Contact.objects.get()
    pulled = {f.attname: getattr(contact, f.attname) for f in Contact._meta.concrete_fields}
    contact.save()  # what a save stores: the suppression digests of the email and phone
    saved = Contact.objects.values().get()
    for name in ("email_digest", "email_quoted_digest", "phone_digest", "phone", "company"):
        assert pulled[name] == saved[name], name
    assert contact.phone_digest and contact.email_digest


@pytest.mark.django_db
def test_two_crm_records_with_one_email_in_a_page_make_one_contact(
    hubspot: HubSpotEmulator, connection: Connection, clock: Clock
) -> None:
    clock.at(timezone.now() + timedelta(minutes=1))  # newer than what the pull creates
    with hubspot.lock:  # HubSpot holds a duplicate: two records, one address
        first = hubspot._write(None, "twice@example.fr", {"firstname": "First"})[0]
        clock.tick()
        second = hubspot._write(None, "twice@example.fr", {"lastname": "Second"})[0]

    outcome = connection_pull(connection_id=connection.pk)

    assert outcome.created == 1 and outcome.fetched == 2
    contact = Contact.objects.get()
    assert contact.email == "twice@example.fr"
    # the second record, newer, found the contact the first created in the same page
    assert contact.last_name == "Second"
    assert list(ContactLink.objects.values_list("contact_id", "remote_id")) == [
        (contact.pk, second["id"])
    ]
    assert first["id"] != second["id"]


@pytest.mark.django_db
def test_an_address_freed_by_an_email_change_earlier_in_the_page_makes_a_new_contact(
    hubspot: HubSpotEmulator, connection: Connection, clock: Clock
) -> None:
    clock.at(timezone.now() - timedelta(minutes=10))
    hubspot.put_contact(person(1))
    connection_pull(connection_id=connection.pk)
    moved = Contact.objects.get()
    remote_id = hubspot.contact("person1@example.fr")["id"]  # type: ignore[index]
    aged()
    clock.at(timezone.now())
    with hubspot.lock:
        hubspot.update_one(remote_id, "hs_object_id", {"properties": {"email": "camille@new.fr"}})
    clock.tick()
    hubspot.put_contact(person(1, firstname="Another"))  # a new person takes the old address

    outcome = connection_pull(connection_id=connection.pk)

    assert (outcome.updated, outcome.created) == (1, 1)
    assert dict(Contact.objects.values_list("email", "first_name")) == {
        "camille@new.fr": "Camille",
        "person1@example.fr": "Another",
    }
    assert Contact.objects.get(email="camille@new.fr").pk == moved.pk
    assert ContactLink.objects.get(contact=moved).remote_id == remote_id


@pytest.mark.django_db
def test_a_freed_address_on_the_suppression_list_is_not_created_by_the_same_page(
    hubspot: HubSpotEmulator, connection: Connection, clock: Clock
) -> None:
    clock.at(timezone.now() - timedelta(minutes=10))
    hubspot.put_contact(person(1))
    connection_pull(connection_id=connection.pk)
    remote_id = hubspot.contact("person1@example.fr")["id"]  # type: ignore[index]
    suppression_add(reason="complaint", email="person1@example.fr")
    aged()
    clock.at(timezone.now())
    with hubspot.lock:
        hubspot.update_one(remote_id, "hs_object_id", {"properties": {"email": "camille@new.fr"}})
    clock.tick()
    hubspot.put_contact(person(1, firstname="Another"))

    outcome = connection_pull(connection_id=connection.pk)

    assert (outcome.updated, outcome.created) == (1, 0)
    assert outcome.skipped["suppressed here: never re-created by a pull"] == 1
    assert list(Contact.objects.values_list("email", flat=True)) == ["camille@new.fr"]


@pytest.mark.django_db
def test_a_lifecycle_stage_emptied_in_the_crm_leaves_ours_and_the_rest_is_applied(
    hubspot: HubSpotEmulator, connection: Connection, clock: Clock
) -> None:
    ContactFactory(email="person1@example.fr", lifecycle_stage="customer", company="Old")
    aged()
    clock.at(timezone.now())
    stored = hubspot.put_contact(person(1, company="New"))
    with hubspot.lock:  # HubSpot answers a property a user cleared as ""
        stored["properties"]["lifecyclestage"] = ""

    outcome = connection_pull(connection_id=connection.pk)

    assert outcome.error == "" and outcome.updated == 1
    assert Contact.objects.values_list("lifecycle_stage", "company").get() == ("customer", "New")
