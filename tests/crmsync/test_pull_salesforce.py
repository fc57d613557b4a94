"""The pull from Salesforce, through the real simple-salesforce, against the Salesforce
emulator (TLS): SOQL on SystemModstamp with nextRecordsUrl, leads converted to contacts,
HasOptedOutOfEmail and ContactPointTypeConsent."""

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from consent.models import ConsentRecord, ConsentState, Purpose, SourceKind
from contacts.models import Contact
from crmsync.connections import connection_create
from crmsync.models import Connection, ContactLink
from crmsync.pull import PullOutcome, connection_pull
from tests.emulators.salesforce import SalesforceEmulator
from tests.factories import ContactFactory, PurposeFactory, grant


@pytest.fixture
def newsletter(db: None) -> Purpose:
    return PurposeFactory(slug="newsletter", channels=["email"])


def connect(salesforce: SalesforceEmulator, **options: object) -> Connection:
    purpose = salesforce.insert("DataUsePurpose", {"Name": "Newsletter"})
    return connection_create(
        name="salesforce",
        kind="salesforce",
        base_url=salesforce.url,
        credentials={"token": salesforce.session_id},
        purpose_map={"newsletter": purpose},
        options=dict(options),
    )


def pull(connection: Connection) -> PullOutcome:
    outcome = connection_pull(connection_id=connection.pk)
    assert outcome.error == ""
    return outcome


def aged(contact: Contact) -> None:
    """Our contact last changed a minute ago: older than what Salesforce does next (its times
    are in milliseconds, ours in microseconds)."""
    Contact.objects.filter(pk=contact.pk).update(updated_at=timezone.now() - timedelta(minutes=1))


def update(salesforce: SalesforceEmulator, sobject: str, record_id: str, **fields: object) -> None:
    """A Salesforce user changes a record."""
    with salesforce.lock:
        salesforce._write(sobject, record_id, fields)


@pytest.mark.django_db
def test_contacts_and_leads_are_pulled_following_next_records_url(
    salesforce: SalesforceEmulator, newsletter: Purpose, settings: Any
) -> None:
    connection = connect(salesforce)
    salesforce.query_batch = 2  # the emulator pages its answers by two
    settings.CRM_PULL_PAGE_SIZE = 3
    for n in range(5):
        salesforce.insert(
            "Contact", {"LastName": f"Martin{n}", "FirstName": "Camille", "Email": f"c{n}@ex.fr"}
        )
    for n in range(2):
        salesforce.insert(
            "Lead", {"LastName": f"Lead{n}", "Company": "Acme", "Email": f"l{n}@ex.fr"}
        )

    outcome = pull(connection)

    assert (outcome.created, outcome.fetched) == (7, 7)
    assert Contact.objects.get(email="c3@ex.fr").last_name == "Martin3"
    assert ContactLink.objects.count() == 7
    assert any("/query/" in call.path for call in salesforce.calls_to("/query/"))
    assert pull(connection).fetched == 0


@pytest.mark.django_db
def test_a_converted_lead_keeps_its_contact_and_consents(
    salesforce: SalesforceEmulator, newsletter: Purpose
) -> None:
    connection = connect(salesforce)
    lead = salesforce.insert(
        "Lead", {"LastName": "Martin", "Company": "Acme", "Email": "camille@lead.fr"}
    )
    pull(connection)
    contact = Contact.objects.get()
    grant(contact, newsletter)
    aged(contact)
    # converted in Salesforce: a new Contact (sales typed another address), the lead read-only
    converted = salesforce.insert(
        "Contact", {"LastName": "Martin", "FirstName": "Camille", "Email": "camille@work.fr"}
    )
    update(salesforce, "Lead", lead, IsConverted=True, ConvertedContactId=converted)

    outcome = pull(connection)

    assert outcome.created == 0
    assert list(Contact.objects.values_list("pk", "email")) == [(contact.pk, "camille@work.fr")]
    assert list(ContactLink.objects.values_list("contact_id", "remote_id")) == [
        (contact.pk, converted)
    ]
    state = ConsentState.objects.get(contact=contact, purpose=newsletter)
    assert state.status == "granted"

    # the Contact's opt-out, later, reaches the same person of ours
    update(salesforce, "Contact", converted, HasOptedOutOfEmail=True)
    assert pull(connection).consents == 1
    state.refresh_from_db()
    assert state.status == "withdrawn"


@pytest.mark.django_db
def test_a_contact_we_pushed_is_found_by_our_external_id(
    salesforce: SalesforceEmulator, newsletter: Purpose
) -> None:
    connection = connect(salesforce)
    ours = ContactFactory(email="camille@ours.fr")
    aged(ours)
    salesforce.insert(
        "Contact",
        {
            "LastName": "Martin",
            "Email": "camille@theirs.fr",
            "ConsentDesk_Id__c": str(ours.public_id),
        },
    )

    outcome = pull(connection)

    assert (outcome.created, outcome.updated) == (0, 1)
    assert list(Contact.objects.values_list("pk", "email")) == [(ours.pk, "camille@theirs.fr")]


@pytest.mark.django_db
def test_an_older_opt_out_never_overrides_a_newer_grant_of_ours(
    salesforce: SalesforceEmulator, newsletter: Purpose
) -> None:
    connection = connect(salesforce)
    salesforce.clock = lambda: int((timezone.now() - timedelta(hours=1)).timestamp() * 1000)
    salesforce.insert(
        "Contact", {"LastName": "Martin", "Email": "camille@ex.fr", "HasOptedOutOfEmail": True}
    )
    contact = ContactFactory(email="camille@ex.fr")
    grant(contact, newsletter)

    outcome = pull(connection)

    assert outcome.consents == 0
    assert ConsentState.objects.get(contact=contact, purpose=newsletter).status == "granted"


@pytest.mark.django_db
def test_a_contact_point_type_consent_opt_out_is_recorded_for_its_party(
    salesforce: SalesforceEmulator, newsletter: Purpose
) -> None:
    connection = connect(salesforce, consent_objects=True)
    individual = salesforce.insert("Individual", {"LastName": "Martin"})
    salesforce.insert(
        "Contact", {"LastName": "Martin", "Email": "camille@ex.fr", "IndividualId": individual}
    )
    contact = ContactFactory(email="camille@ex.fr")
    grant(contact, newsletter, given_at=timezone.now() - timedelta(days=2))
    captured = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    salesforce.insert(
        "ContactPointTypeConsent",
        {
            "Name": "newsletter (email)",
            "PartyId": individual,
            "DataUsePurposeId": connection.purpose_map["newsletter"],
            "PrivacyConsentStatus": "OptOut",
            "CaptureDate": captured,
            "ContactPointType": "Email",
        },
    )

    outcome = pull(connection)

    assert outcome.consents == 1
    record = ConsentRecord.objects.filter(contact=contact).latest("pk")
    assert (record.action, record.source_kind) == ("withdraw", SourceKind.CRM)
    assert record.given_at.date() == (timezone.now() - timedelta(days=1)).date()
    assert pull(connection).consents == 0  # read again: nothing more


@pytest.mark.django_db
def test_an_opt_in_in_salesforce_is_recorded_as_a_second_hand_grant(
    salesforce: SalesforceEmulator, newsletter: Purpose
) -> None:
    connection = connect(salesforce, consent_objects=True)
    individual = salesforce.insert("Individual", {"LastName": "Martin"})
    salesforce.insert(
        "Contact", {"LastName": "Martin", "Email": "camille@ex.fr", "IndividualId": individual}
    )
    salesforce.insert(
        "ContactPointTypeConsent",
        {
            "Name": "newsletter (email)",
            "PartyId": individual,
            "DataUsePurposeId": connection.purpose_map["newsletter"],
            "PrivacyConsentStatus": "OptIn",
            "ContactPointType": "Email",
        },
    )

    outcome = pull(connection)

    assert (outcome.created, outcome.consents) == (1, 1)
    record = ConsentRecord.objects.get()
    assert (record.action, record.source_kind, record.second_hand) == ("grant", "crm", True)
