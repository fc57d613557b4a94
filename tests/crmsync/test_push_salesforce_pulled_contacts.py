"""A Salesforce Contact that a Salesforce user made (so without our external id), pulled and
linked to our contact, then changed here: the push updates that very Contact, by its Id, and
writes our id on it; it never makes a second Contact of the same person. One deleted in
Salesforce since is made again by our id."""

from datetime import timedelta

import pytest
from django.utils import timezone

from consent.models import Purpose
from contacts.models import Contact
from contacts.services import contact_update
from crmsync.connections import connection_create
from crmsync.models import Connection, ContactLink, DeadLetter
from crmsync.pull import connection_pull
from crmsync.push import connection_push
from tests.emulators.salesforce import EXTERNAL_ID, SalesforceEmulator
from tests.factories import PurposeFactory, grant

pytestmark = pytest.mark.django_db

EMAIL = "camille@example.fr"


@pytest.fixture
def newsletter() -> Purpose:
    purpose = PurposeFactory(slug="newsletter", channels=["email"])
    assert isinstance(purpose, Purpose)
    return purpose


@pytest.fixture
def connection(salesforce: SalesforceEmulator, newsletter: Purpose) -> Connection:
    return connection_create(
        name="salesforce",
        kind="salesforce",
        base_url=salesforce.url,
        credentials={"token": salesforce.session_id},
        purpose_map={"newsletter": salesforce.insert("DataUsePurpose", {"Name": "Newsletter"})},
    )


def pulled(salesforce: SalesforceEmulator, connection: Connection) -> tuple[Contact, str]:
    """A Contact a Salesforce user typed in, pulled here: our contact and its Salesforce id."""
    remote_id = salesforce.insert(
        "Contact", {"LastName": "Martin", "FirstName": "Camille", "Email": EMAIL}
    )
    assert connection_pull(connection_id=connection.pk).created == 1
    contact = Contact.objects.get(email=EMAIL)
    assert ContactLink.objects.get(connection=connection, contact=contact).remote_id == remote_id
    Contact.objects.filter(pk=contact.pk).update(updated_at=timezone.now() - timedelta(minutes=1))
    contact.refresh_from_db()
    return contact, remote_id


def test_a_pulled_contact_changed_here_updates_the_same_salesforce_contact(
    salesforce: SalesforceEmulator, connection: Connection, newsletter: Purpose
) -> None:
    contact, remote_id = pulled(salesforce, connection)

    grant(contact, newsletter)
    contact_update(contact=contact, fields={"job_title": "Buyer"})
    outcome = connection_push(connection_id=connection.pk)

    # the pull's own event of the contact is delivered too (with nothing sent: no ping-pong)
    assert (outcome.delivered, outcome.rejected) == (3, 0)
    [record] = salesforce.find("Contact", Email=EMAIL)
    assert record["Id"] == remote_id
    assert record[EXTERNAL_ID] == str(contact.public_id)  # our id, written on it
    assert (record["Title"], record["HasOptedOutOfEmail"]) == ("Buyer", False)
    assert ContactLink.objects.get(contact=contact).remote_id == remote_id
    # an sObject Collections update by its Id (an upsert takes external ids only)
    assert [
        call.path.split("/data/")[1].split("/", 1)[1] for call in salesforce.calls_to("/composite/")
    ] == ["composite/sobjects"]

    # and the next change goes the same way: still one Contact
    contact_update(contact=contact, fields={"job_title": "Head buyer"})
    connection_push(connection_id=connection.pk)
    [record] = salesforce.find("Contact", Email=EMAIL)
    assert (record["Id"], record["Title"]) == (remote_id, "Head buyer")


def test_a_linked_contact_deleted_in_salesforce_since_is_made_again_by_our_id(
    salesforce: SalesforceEmulator, connection: Connection
) -> None:
    contact, remote_id = pulled(salesforce, connection)
    with salesforce.lock:
        salesforce.sobject("DELETE", "Contact", [remote_id], None)

    contact_update(contact=contact, fields={"job_title": "Buyer"})
    outcome = connection_push(connection_id=connection.pk)

    assert (outcome.delivered, outcome.rejected) == (2, 0)
    [record] = salesforce.find("Contact", Email=EMAIL)
    assert record["Id"] != remote_id and record[EXTERNAL_ID] == str(contact.public_id)
    assert ContactLink.objects.get(contact=contact).remote_id == record["Id"]
    assert not DeadLetter.objects.exists()


def test_a_linked_contact_whose_id_another_salesforce_contact_holds_updates_that_one(
    salesforce: SalesforceEmulator, connection: Connection
) -> None:
    # given: the linked Contact, and another one that already carries our id (unique there)
    contact, remote_id = pulled(salesforce, connection)
    holder = salesforce.insert(
        "Contact", {"LastName": "Martin", "Email": EMAIL, EXTERNAL_ID: str(contact.public_id)}
    )

    # when: the contact changes here
    contact_update(contact=contact, fields={"job_title": "Buyer"})
    outcome = connection_push(connection_id=connection.pk)

    # then: the update by Id refused as a duplicate goes by our id, to the Contact holding it
    assert (outcome.delivered, outcome.rejected) == (2, 0)
    assert not DeadLetter.objects.exists()
    [record] = salesforce.find("Contact", **{EXTERNAL_ID: str(contact.public_id)})
    assert (record["Id"], record["Title"]) == (holder, "Buyer")
    assert ContactLink.objects.get(contact=contact).remote_id == holder

    # and the next change is not refused again
    contact_update(contact=contact, fields={"job_title": "Head buyer"})
    assert connection_push(connection_id=connection.pk).rejected == 0
    assert salesforce.find("Contact", Id=holder)[0]["Title"] == "Head buyer"
    assert salesforce.find("Contact", Id=remote_id)[0].get(EXTERNAL_ID) in (None, "")
