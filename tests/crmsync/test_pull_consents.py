"""Consents pulled from a CRM (HubSpot and Salesforce, through their real clients against the
emulators): grants recorded as second-hand consent, each change at the time the CRM says it
was made (not the record's modification time), the newer change standing, suppressed and
erased people left alone, double opt-in, re-pulls that add nothing, and re-permission."""

from collections.abc import Iterator
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from campaigns.repermission import grant_undocumented, undocumented_grant_condition
from consent.models import ConsentRecord, ConsentState, Purpose, SourceKind
from contacts.models import Contact
from contacts.services import suppression_add
from crmsync.connections import connection_create
from crmsync.models import Connection, ConnectionState
from crmsync.pull import PullOutcome, connection_pull
from tests.conftest import Mailbox
from tests.crmsync.test_pull import TOKEN, Clock, everything, person
from tests.emulators.hubspot import HubSpotEmulator
from tests.emulators.salesforce import SalesforceEmulator, stamp
from tests.factories import ContactFactory, PurposeFactory, grant

OLDER = "a consent change older than ours: ours stands"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hubspot(clock: Clock) -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(token=TOKEN, clock=clock) as emulator:
        assert isinstance(emulator, HubSpotEmulator)
        yield emulator


@pytest.fixture
def salesforce(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator(clock=clock) as emulator:
        assert isinstance(emulator, SalesforceEmulator)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.certificate))
        yield emulator


@pytest.fixture
def newsletter(db: None) -> Purpose:
    return PurposeFactory(slug="newsletter", channels=["email"])


@pytest.fixture
def days() -> dict[str, datetime]:
    """Monday, Tuesday and Wednesday of the last days, in that order (all in the past)."""
    now = timezone.now().replace(microsecond=0)
    return {
        "monday": now - timedelta(days=3),
        "tuesday": now - timedelta(days=2),
        "wednesday": now - timedelta(days=1),
    }


def hubspot_connection(hubspot: HubSpotEmulator) -> Connection:
    return connection_create(
        name="hubspot",
        kind="hubspot",
        base_url=hubspot.url,
        credentials={"token": TOKEN},
        purpose_map={"newsletter": "1001"},
    )


def salesforce_connection(salesforce: SalesforceEmulator, **options: object) -> Connection:
    purpose = salesforce.insert("DataUsePurpose", {"Name": "Newsletter"})
    return connection_create(
        name="salesforce",
        kind="salesforce",
        base_url=salesforce.url,
        credentials={"token": salesforce.session_id},
        purpose_map={"newsletter": purpose},
        options=dict(options),
    )


def subscription(hubspot: HubSpotEmulator, email: str, subscribe: bool, **body: str) -> None:
    """The person subscribes or unsubscribes in HubSpot (the v3 status API, as HubSpot's own
    forms and users do); mirrored on the contact's hs_email_optout_1001."""
    with hubspot.lock:
        answer = hubspot.set_status(
            {"emailAddress": email, "subscriptionId": "1001", **body}, subscribe
        )
    assert answer.status == 200, answer.body


def pull(connection: Connection) -> PullOutcome:
    outcome = connection_pull(connection_id=connection.pk)
    assert outcome.error == ""
    return outcome


def state_of(contact: Contact, purpose: Purpose) -> str:
    return ConsentState.objects.get(contact=contact, purpose=purpose, channel="email").status


def withdraw(contact: Contact, purpose: Purpose, at: datetime) -> None:
    """The person withdraws with us (the preference center), at `at`."""
    grant(
        contact,
        purpose,
        action="withdraw",
        source_kind="preference_center",
        evidence=None,
        given_at=at,
    )


# -- HubSpot -------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_hubspot_subscription_is_recorded_by_crm_pull_as_a_second_hand_grant_at_its_time(
    hubspot: HubSpotEmulator, newsletter: Purpose, clock: Clock, days: dict[str, datetime]
) -> None:
    hubspot_connection(hubspot)
    clock.at(days["monday"])
    hubspot.put_contact(person(1))
    clock.at(days["tuesday"])
    subscription(
        hubspot,
        "person1@example.fr",
        True,
        legalBasis="CONSENT_WITH_NOTICE",
        legalBasisExplanation="Ticked the newsletter box at the Lyon fair",
    )
    clock.at(days["wednesday"])
    hubspot.put_contact(person(1, phone="+33612345678"))  # an edit, later
    output = StringIO()

    call_command("crm_pull", "hubspot", stdout=output)

    assert "consents 1" in output.getvalue()
    contact = Contact.objects.get(email="person1@example.fr")
    record = ConsentRecord.objects.get(contact=contact)
    remote_id = hubspot.contact("person1@example.fr")["id"]  # type: ignore[index]
    assert (record.action, record.status, record.source_kind) == ("grant", "granted", "crm")
    assert record.given_at == days["tuesday"]  # the subscription's time, not Wednesday's edit
    assert record.second_hand is True
    assert record.source_reference == record.collection_reference == f"hubspot:{remote_id}"
    assert "CONSENT_WITH_NOTICE" in record.wording
    assert "Ticked the newsletter box at the Lyon fair" in record.wording
    assert record.purpose_version == newsletter.current_version


@pytest.mark.django_db
def test_monday_opt_out_in_hubspot_never_withdraws_tuesdays_grant_after_a_wednesday_edit(
    hubspot: HubSpotEmulator, newsletter: Purpose, clock: Clock, days: dict[str, datetime]
) -> None:
    connection = hubspot_connection(hubspot)
    clock.at(days["monday"] - timedelta(hours=1))
    hubspot.put_contact(person(1))
    clock.at(days["monday"])
    subscription(hubspot, "person1@example.fr", False)
    contact = ContactFactory(email="person1@example.fr")
    grant(contact, newsletter, given_at=days["tuesday"])  # through our form
    clock.at(days["wednesday"])
    hubspot.put_contact(person(1, phone="+33612345678"))  # the phone edited in HubSpot
    Contact.objects.filter(pk=contact.pk).update(updated_at=days["tuesday"])

    outcome = pull(connection)

    assert outcome.consents == 0
    assert outcome.skipped[OLDER] == 1
    assert state_of(contact, newsletter) == "granted"
    contact.refresh_from_db()
    assert contact.phone == "+33612345678"  # the edit itself applies


@pytest.mark.django_db
def test_a_newer_opt_out_in_hubspot_withdraws_at_its_own_time(
    hubspot: HubSpotEmulator, newsletter: Purpose, clock: Clock, days: dict[str, datetime]
) -> None:
    connection = hubspot_connection(hubspot)
    contact = ContactFactory(email="person1@example.fr")
    grant(contact, newsletter, given_at=days["monday"])
    clock.at(days["monday"])
    hubspot.put_contact(person(1))
    clock.at(days["tuesday"])
    subscription(hubspot, "person1@example.fr", False)
    clock.at(days["wednesday"])
    hubspot.put_contact(person(1, phone="+33612345678"))

    assert pull(connection).consents == 1

    record = ConsentRecord.objects.filter(contact=contact).latest("pk")
    assert (record.action, record.given_at) == ("withdraw", days["tuesday"])
    assert state_of(contact, newsletter) == "withdrawn"


@pytest.mark.django_db
def test_an_older_grant_in_hubspot_never_overrides_our_newer_withdrawal(
    hubspot: HubSpotEmulator, newsletter: Purpose, clock: Clock, days: dict[str, datetime]
) -> None:
    connection = hubspot_connection(hubspot)
    clock.at(days["monday"])
    hubspot.put_contact(person(1))
    subscription(hubspot, "person1@example.fr", True)
    contact = ContactFactory(email="person1@example.fr")
    withdraw(contact, newsletter, days["tuesday"])
    records = ConsentRecord.objects.count()
    clock.at(days["wednesday"])
    hubspot.put_contact(person(1, phone="+33612345678"))

    outcome = pull(connection)

    assert outcome.skipped[OLDER] == 1
    assert state_of(contact, newsletter) == "withdrawn"
    assert ConsentRecord.objects.count() == records


@pytest.mark.django_db
def test_a_newer_grant_in_hubspot_overrides_our_older_withdrawal(
    hubspot: HubSpotEmulator, newsletter: Purpose, clock: Clock, days: dict[str, datetime]
) -> None:
    connection = hubspot_connection(hubspot)
    contact = ContactFactory(email="person1@example.fr")
    withdraw(contact, newsletter, days["monday"])
    clock.at(days["tuesday"])
    hubspot.put_contact(person(1))
    subscription(hubspot, "person1@example.fr", True)

    assert pull(connection).consents == 1

    assert state_of(contact, newsletter) == "granted"
    record = ConsentRecord.objects.filter(contact=contact).latest("pk")
    assert (record.action, record.given_at) == ("grant", days["tuesday"])


@pytest.mark.django_db
def test_pulling_the_same_consents_again_writes_nothing(
    hubspot: HubSpotEmulator, newsletter: Purpose, clock: Clock, days: dict[str, datetime]
) -> None:
    connection = hubspot_connection(hubspot)
    clock.at(days["monday"])
    for n in (1, 2):
        hubspot.put_contact(person(n))
    subscription(hubspot, "person1@example.fr", True)
    subscription(hubspot, "person2@example.fr", False)
    ContactFactory(email="person2@example.fr")
    grant(
        Contact.objects.get(email="person2@example.fr"),
        newsletter,
        given_at=days["monday"] - timedelta(hours=1),
    )
    Contact.objects.update(updated_at=days["monday"] - timedelta(hours=1))
    assert pull(connection).consents == 2
    before = everything()

    # the whole history read again, then a later edit of each record in HubSpot
    ConnectionState.objects.filter(pk=connection.pk).update(pull_cursor="")
    again = pull(connection)
    clock.at(days["tuesday"])
    for n in (1, 2):
        hubspot.put_contact(person(n, lastname="Martin"))
    edited = pull(connection)

    assert (again.consents, edited.consents) == (0, 0)
    assert list(ConsentRecord.objects.order_by("pk").values_list("pk", flat=True)) == before[2]


@pytest.mark.django_db
def test_a_hubspot_grant_is_never_recorded_for_a_suppressed_person(
    hubspot: HubSpotEmulator, newsletter: Purpose
) -> None:
    connection = hubspot_connection(hubspot)
    contact = ContactFactory(email="person1@example.fr")
    suppression_add(reason="complaint", email="person1@example.fr")
    hubspot.put_contact(person(1))
    subscription(hubspot, "person1@example.fr", True)

    outcome = pull(connection)

    assert outcome.consents == 0
    assert outcome.skipped["a grant from the CRM for a suppressed person: not recorded"] == 1
    assert not ConsentRecord.objects.filter(contact=contact).exists()


@pytest.mark.django_db
def test_a_hubspot_grant_is_never_recorded_for_an_erased_person(
    hubspot: HubSpotEmulator, newsletter: Purpose
) -> None:
    from privacy.services import contact_erase

    connection = hubspot_connection(hubspot)
    contact = ContactFactory(email="person1@example.fr")
    contact_erase(contact=contact, reason="Art. 17 request")
    hubspot.put_contact(person(1))
    subscription(hubspot, "person1@example.fr", True)
    records = ConsentRecord.objects.count()

    outcome = pull(connection)

    assert outcome.consents == 0
    # the erased person's address stays on the suppression list: not even found again
    assert outcome.skipped["suppressed here: never re-created by a pull"] == 1
    assert ConsentRecord.objects.count() == records


@pytest.mark.django_db(transaction=True)
def test_a_grant_on_a_double_opt_in_purpose_waits_pending_for_the_confirmation_email(
    hubspot: HubSpotEmulator, mailbox: Mailbox, celery_worker: Any
) -> None:
    PurposeFactory(slug="newsletter", channels=["email"], double_opt_in=True)
    connection = hubspot_connection(hubspot)
    hubspot.put_contact(person(1))
    subscription(hubspot, "person1@example.fr", True)

    assert pull(connection).consents == 1

    contact = Contact.objects.get(email="person1@example.fr")
    assert ConsentState.objects.get(contact=contact).status == "pending"
    [message] = mailbox.wait(1)
    assert message["To"] == "person1@example.fr"
    assert pull(connection).consents == 0  # still pending: no second grant, no second email


@pytest.mark.django_db
def test_re_permission_counts_a_grant_pulled_from_a_crm_as_undocumented(
    hubspot: HubSpotEmulator, newsletter: Purpose
) -> None:
    connection = hubspot_connection(hubspot)
    documented = ContactFactory(email="form@example.fr")
    grant(documented, newsletter)  # from our own form, with its proof
    hubspot.put_contact(person(1))
    subscription(hubspot, "person1@example.fr", True)

    pull(connection)

    pulled = Contact.objects.get(email="person1@example.fr")
    assert grant_undocumented(pulled, newsletter, "email") is True
    assert grant_undocumented(documented, newsletter, "email") is False
    undocumented = Contact.objects.filter(undocumented_grant_condition(newsletter, "email"))
    assert list(undocumented) == [pulled]


# -- Salesforce ----------------------------------------------------------------------------------
def salesforce_monday_to_wednesday(
    salesforce: SalesforceEmulator, newsletter: Purpose, clock: Clock, days: dict[str, datetime]
) -> Contact:
    """Opted out in Salesforce on Monday, subscribed through our form on Tuesday, the phone
    edited in Salesforce on Wednesday; our contact, linked by its external id."""
    contact = ContactFactory(email="camille@ex.fr")
    clock.at(days["monday"] - timedelta(hours=1))
    remote = salesforce.insert(
        "Contact",
        {
            "LastName": "Martin",
            "Email": "camille@ex.fr",
            "ConsentDesk_Id__c": str(contact.public_id),
        },
    )
    clock.at(days["monday"])
    with salesforce.lock:
        salesforce._write("Contact", remote, {"HasOptedOutOfEmail": True})
    grant(contact, newsletter, given_at=days["tuesday"])
    clock.at(days["wednesday"])
    with salesforce.lock:
        salesforce._write("Contact", remote, {"Phone": "+33612345678"})
    Contact.objects.filter(pk=contact.pk).update(updated_at=days["tuesday"])
    return contact


@pytest.mark.django_db
def test_monday_opt_out_in_salesforce_never_withdraws_tuesdays_grant_with_field_history(
    salesforce: SalesforceEmulator, newsletter: Purpose, clock: Clock, days: dict[str, datetime]
) -> None:
    salesforce.history_tracked["Contact"].add("HasOptedOutOfEmail")
    connection = salesforce_connection(salesforce)
    contact = salesforce_monday_to_wednesday(salesforce, newsletter, clock, days)

    outcome = pull(connection)

    assert outcome.consents == 0
    assert outcome.skipped[OLDER] == 1
    assert state_of(contact, newsletter) == "granted"
    assert salesforce.calls_to("/query")  # the history was asked for
    contact.refresh_from_db()
    assert contact.phone == "+33612345678"


@pytest.mark.django_db
def test_without_field_history_a_salesforce_opt_out_falls_back_to_the_records_time(
    salesforce: SalesforceEmulator, newsletter: Purpose, clock: Clock, days: dict[str, datetime]
) -> None:
    connection = salesforce_connection(salesforce)  # the org does not track the field
    contact = salesforce_monday_to_wednesday(salesforce, newsletter, clock, days)

    assert pull(connection).consents == 1

    record = ConsentRecord.objects.filter(contact=contact).latest("pk")
    assert (record.action, record.given_at) == ("withdraw", days["wednesday"])


@pytest.mark.django_db
def test_a_lead_opt_out_takes_its_time_from_the_lead_history(
    salesforce: SalesforceEmulator, newsletter: Purpose, clock: Clock, days: dict[str, datetime]
) -> None:
    salesforce.history_tracked["Lead"].add("HasOptedOutOfEmail")
    connection = salesforce_connection(salesforce)
    contact = ContactFactory(email="lead@ex.fr")
    grant(contact, newsletter, given_at=days["monday"])
    clock.at(days["monday"])
    lead = salesforce.insert(
        "Lead", {"LastName": "Martin", "Company": "Acme", "Email": "lead@ex.fr"}
    )
    clock.at(days["tuesday"])
    with salesforce.lock:
        salesforce._write("Lead", lead, {"HasOptedOutOfEmail": True})
    clock.at(days["wednesday"])
    with salesforce.lock:
        salesforce._write("Lead", lead, {"Phone": "+33612345678"})

    assert pull(connection).consents == 1

    record = ConsentRecord.objects.filter(contact=contact).latest("pk")
    assert (record.action, record.given_at) == ("withdraw", days["tuesday"])


@pytest.mark.django_db
def test_a_contact_point_type_consent_opt_in_is_a_grant_at_its_capture_date(
    salesforce: SalesforceEmulator, newsletter: Purpose, clock: Clock, days: dict[str, datetime]
) -> None:
    connection = salesforce_connection(salesforce, consent_objects=True)
    individual = salesforce.insert("Individual", {"LastName": "Martin"})
    salesforce.insert(
        "Contact", {"LastName": "Martin", "Email": "camille@ex.fr", "IndividualId": individual}
    )
    clock.at(days["wednesday"])  # the consent object is written on Wednesday...
    consent = salesforce.insert(
        "ContactPointTypeConsent",
        {
            "Name": "newsletter (email)",
            "PartyId": individual,
            "DataUsePurposeId": connection.purpose_map["newsletter"],
            "PrivacyConsentStatus": "OptIn",
            "CaptureDate": stamp(int(days["monday"].timestamp() * 1000)),  # ...captured Monday
            "CaptureSource": "Lyon fair, paper form 42",
            "ContactPointType": "Email",
        },
    )

    assert pull(connection).consents == 1

    record = ConsentRecord.objects.get()
    assert (record.action, record.source_kind, record.second_hand) == ("grant", "crm", True)
    assert record.given_at == days["monday"]
    assert consent in record.wording and "Lyon fair, paper form 42" in record.wording
    assert pull(connection).consents == 0


@pytest.mark.django_db
def test_an_older_salesforce_opt_in_never_overrides_our_newer_withdrawal(
    salesforce: SalesforceEmulator, newsletter: Purpose, days: dict[str, datetime]
) -> None:
    connection = salesforce_connection(salesforce, consent_objects=True)
    individual = salesforce.insert("Individual", {"LastName": "Martin"})
    salesforce.insert(
        "Contact", {"LastName": "Martin", "Email": "camille@ex.fr", "IndividualId": individual}
    )
    contact = ContactFactory(email="camille@ex.fr")
    withdraw(contact, newsletter, days["tuesday"])
    salesforce.insert(
        "ContactPointTypeConsent",
        {
            "Name": "newsletter (email)",
            "PartyId": individual,
            "DataUsePurposeId": connection.purpose_map["newsletter"],
            "PrivacyConsentStatus": "OptIn",
            "CaptureDate": stamp(int(days["monday"].timestamp() * 1000)),
            "ContactPointType": "Email",
        },
    )

    outcome = pull(connection)

    assert outcome.skipped[OLDER] == 1
    assert state_of(contact, newsletter) == "withdrawn"
    assert not ConsentRecord.objects.filter(contact=contact, source_kind=SourceKind.CRM).exists()


# -- the emulators -------------------------------------------------------------------------------
def test_the_hubspot_emulator_serves_property_history_as_the_clients_models_read_it(
    hubspot: HubSpotEmulator, clock: Clock, days: dict[str, datetime]
) -> None:
    from hubspot import HubSpot
    from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId

    clock.at(days["monday"])
    hubspot.put_contact(person(1))
    subscription(hubspot, "person1@example.fr", False)
    clock.at(days["tuesday"])
    with hubspot.lock:
        hubspot.statuses.clear()  # (v3 cannot resubscribe: the emulator's state is reset)
    subscription(hubspot, "person1@example.fr", True)
    remote_id = hubspot.contact("person1@example.fr")["id"]  # type: ignore[index]
    client = HubSpot(access_token=TOKEN, host=hubspot.url)

    answer = client.crm.contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(
            inputs=[{"id": remote_id}],
            properties=["hs_email_optout_1001"],
            properties_with_history=["hs_email_optout_1001", "hs_email_optout_1002"],
        )
    )

    [result] = answer.results
    history = result.properties_with_history["hs_email_optout_1001"]
    assert [(h.value, h.timestamp, h.source_type) for h in history] == [
        ("false", days["tuesday"], "API"),
        ("true", days["monday"], "API"),
    ]
    assert result.properties_with_history["hs_email_optout_1002"] == []
    assert result.properties["hs_email_optout_1001"] == "false"


def test_the_salesforce_emulator_keeps_the_history_of_tracked_fields_only(
    salesforce: SalesforceEmulator, clock: Clock, days: dict[str, datetime]
) -> None:
    from simple_salesforce import Salesforce

    salesforce.history_tracked["Contact"].add("HasOptedOutOfEmail")
    remote = salesforce.insert("Contact", {"LastName": "Martin", "Email": "camille@ex.fr"})
    clock.at(days["monday"])
    with salesforce.lock:
        salesforce._write("Contact", remote, {"HasOptedOutOfEmail": True, "Phone": "+33612"})
    client = Salesforce(
        instance_url=salesforce.url, session_id=salesforce.session_id, version="59.0"
    )

    # SOQL of the emulator's own record id
    answer = client.query_all(
        "SELECT ContactId, CreatedDate, NewValue FROM ContactHistory "  # noqa: S608
        f"WHERE Field = 'HasOptedOutOfEmail' AND ContactId IN ('{remote}')"
    )
    phone = client.query_all(
        "SELECT ContactId FROM ContactHistory "  # noqa: S608
        f"WHERE Field = 'Phone' AND ContactId IN ('{remote}')"
    )

    assert [(r["ContactId"], r["NewValue"]) for r in answer["records"]] == [(remote, True)]
    assert answer["records"][0]["CreatedDate"] == stamp(int(days["monday"].timestamp() * 1000))
    assert phone["records"] == []  # not tracked


@pytest.mark.django_db
def test_a_page_of_many_opt_outs_reads_their_history_fifty_at_a_time(
    hubspot: HubSpotEmulator, newsletter: Purpose, clock: Clock, days: dict[str, datetime]
) -> None:
    connection = hubspot_connection(hubspot)
    contacts = [ContactFactory(email=f"person{n}@example.fr") for n in range(1, 121)]
    for contact in contacts:
        grant(contact, newsletter, given_at=days["monday"])
    clock.at(days["monday"])
    for n in range(1, 121):
        hubspot.put_contact(person(n))
    clock.at(days["tuesday"])
    for n in range(1, 121):
        subscription(hubspot, f"person{n}@example.fr", False)

    assert pull(connection).consents == 120

    reads = [len(call.body["inputs"]) for call in hubspot.calls_to("/batch/read")]
    assert reads and max(reads) <= 50  # HubSpot refuses more with propertiesWithHistory
    assert {state_of(contact, newsletter) for contact in contacts} == {"withdrawn"}


@pytest.mark.django_db
def test_our_own_grant_coming_back_from_hubspot_never_overrides_our_withdrawal_on_its_way(
    hubspot: HubSpotEmulator, newsletter: Purpose, clock: Clock, days: dict[str, datetime]
) -> None:
    from crmsync.push import connection_push

    connection = hubspot_connection(hubspot)
    contact = ContactFactory(email="person1@example.fr")
    clock.at(days["monday"])
    hubspot.put_contact(person(1))
    grant(contact, newsletter, given_at=days["monday"])
    # HubSpot dates what our push sets when it arrives (after the connection was made)
    clock.at(timezone.now() + timedelta(minutes=1))
    connection_push(connection_id=connection.pk)
    # the person withdrew on Tuesday, recorded here after that push: not sent yet
    withdraw(contact, newsletter, at=days["tuesday"])

    outcome = pull(connection)

    # HubSpot's "subscribed since Wednesday" is our own grant, not a newer consent
    assert outcome.consents == 0
    echo = "what we sent the CRM, with a change of ours on its way: ours stands"
    assert outcome.skipped[echo] == 1
    assert state_of(contact, newsletter) == "withdrawn"
    connection_push(connection_id=connection.pk)
    status = hubspot.subscription_status("person1@example.fr", "1001")
    assert status is not None and status["status"] == "NOT_SUBSCRIBED"
