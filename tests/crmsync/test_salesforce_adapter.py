"""The Salesforce adapter, through the real simple-salesforce, against the Salesforce emulator
(over TLS: the tests trust the emulator's certificate the way requests is told to,
REQUESTS_CA_BUNDLE)."""

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from contacts.models import Contact
from contacts.services import contact_payload
from crmsync.adapters.base import ConnectionConfig, TransientError
from crmsync.adapters.salesforce import SalesforceAdapter
from tests.crmsync.crm_changes import consent_change, contact_change, other_change, person
from tests.emulators.salesforce import SalesforceEmulator
from tests.factories import ContactFactory, PurposeFactory, grant

COLLECTION = "/composite/sobjects/Contact/ConsentDesk_Id__c"


@pytest.fixture
def salesforce(monkeypatch: pytest.MonkeyPatch) -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator() as emulator:
        assert isinstance(emulator, SalesforceEmulator)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.certificate))
        yield emulator


def adapter_for(
    salesforce: SalesforceEmulator, session_id: str = "", **config: object
) -> SalesforceAdapter:
    return SalesforceAdapter(
        ConnectionConfig(
            name="salesforce",
            kind="salesforce",
            base_url=salesforce.url,
            credentials={"session_id": session_id or salesforce.session_id},
            **config,  # type: ignore[arg-type]
        ),
        timeout=5,
    )


def granted_by_email(data: dict[str, Any], *purposes: str) -> Contact:
    """The person of `data` here, with these purposes granted by email: the state the
    adapter reads for the opt-out flag (the outbox's changes follow it)."""
    contact = ContactFactory(public_id=uuid.UUID(data["id"]), email=data["email"])
    assert isinstance(contact, Contact)
    for slug in purposes:
        grant(contact, PurposeFactory(slug=slug, channels=["email"]))
    return contact


def contact_in(salesforce: SalesforceEmulator, n: int) -> dict:
    [record] = salesforce.find("Contact", ConsentDesk_Id__c=person(n)["id"])
    return record


def test_a_contact_reaches_salesforce_by_its_external_id_with_the_default_fields(
    salesforce: SalesforceEmulator,
) -> None:
    change = contact_change(person(1), topic="contact.created")

    result = adapter_for(salesforce).push([change])

    record = contact_in(salesforce, 1)
    assert {
        name: record.get(name)
        for name in ("Email", "FirstName", "LastName", "Phone", "Title", "MailingCountry")
    } == {
        "Email": "person1@example.fr",
        "FirstName": "Camille",
        "LastName": "Martin1",
        "Phone": "+33612345678",
        "Title": "Buyer",
        "MailingCountry": "FR",
    }
    assert result.rejected == {}
    assert result.remote_ids == {change.contact: record["Id"]}


@pytest.mark.django_db
def test_a_contact_of_ours_as_the_outbox_describes_it_reaches_salesforce(
    salesforce: SalesforceEmulator,
) -> None:
    contact = ContactFactory(email="dominique@example.fr", job_title="CFO", country="BE")
    change = contact_change(contact_payload(contact), topic="contact.created")

    result = adapter_for(salesforce).push([change])

    [record] = salesforce.find("Contact", ConsentDesk_Id__c=str(contact.public_id))
    assert (record["Email"], record["LastName"], record["Title"], record["MailingCountry"]) == (
        "dominique@example.fr",
        contact.last_name,
        "CFO",
        "BE",
    )
    assert result.remote_ids == {contact.public_id: record["Id"]}


def test_two_hundred_contacts_go_in_one_full_call_and_more_are_split_at_two_hundred(
    salesforce: SalesforceEmulator,
) -> None:
    adapter = adapter_for(salesforce)

    adapter.push([contact_change(person(n)) for n in range(200)])
    adapter.push([contact_change(person(n)) for n in range(200, 650)])

    sizes = [len(call.body["records"]) for call in salesforce.calls_to(COLLECTION)]
    assert adapter.batch_size == 200
    assert sizes == [200, 200, 200, 50]
    assert len(salesforce.records["Contact"]) == 650


def test_several_changes_of_one_contact_collapse_to_its_last_state(
    salesforce: SalesforceEmulator,
) -> None:
    changes = [
        contact_change(person(1, job_title="Buyer"), topic="contact.created"),
        contact_change(person(2)),
        contact_change(person(1, job_title="Head buyer")),
    ]

    adapter_for(salesforce).push(changes)

    [call] = salesforce.calls_to(COLLECTION)
    assert [record["ConsentDesk_Id__c"] for record in call.body["records"]] == [
        person(1)["id"],
        person(2)["id"],
    ]
    assert contact_in(salesforce, 1)["Title"] == "Head buyer"


def test_field_mappings_push_only_the_fields_mapped_to_push(salesforce: SalesforceEmulator) -> None:
    mappings = [
        {"field": "email", "remote": "Email", "direction": "both", "conflict": "ours"},
        {"field": "last_name", "remote": "LastName", "direction": "push", "conflict": "ours"},
        {"field": "company", "remote": "Department", "direction": "both", "conflict": "latest"},
        {"field": "first_name", "remote": "FirstName", "direction": "pull", "conflict": "theirs"},
    ]

    adapter_for(salesforce, field_mappings=mappings).push([contact_change(person(1))])

    [call] = salesforce.calls_to(COLLECTION)
    assert call.body["records"][0] == {
        "attributes": {"type": "Contact"},
        "ConsentDesk_Id__c": person(1)["id"],
        "Email": "person1@example.fr",
        "LastName": "Martin1",
        "Department": "Acme",
    }


@pytest.mark.django_db
def test_a_consent_alone_creates_the_contact_with_its_fields_and_email_opt_in(
    salesforce: SalesforceEmulator,
) -> None:
    granted_by_email(person(1), "newsletter")

    adapter_for(salesforce).push([consent_change(person(1, last_name=""), "newsletter")])

    record = contact_in(salesforce, 1)
    assert record["Email"] == "person1@example.fr"
    assert record["LastName"] == "[not provided]"  # Salesforce requires one
    assert record["HasOptedOutOfEmail"] is False


def test_a_last_name_sales_typed_in_salesforce_is_kept_when_we_have_none(
    salesforce: SalesforceEmulator,
) -> None:
    salesforce.insert("Contact", {"LastName": "Dupont", "ConsentDesk_Id__c": person(1)["id"]})

    result = adapter_for(salesforce).push([contact_change(person(1, last_name=""))])

    assert contact_in(salesforce, 1)["LastName"] == "Dupont"
    assert result.rejected == {}


@pytest.mark.django_db
def test_the_email_opt_out_follows_the_email_consents_live_now(
    salesforce: SalesforceEmulator,
) -> None:
    one, two, three, four = person(1), person(2), person(3), person(4)
    granted_by_email(two, "offers")
    # the unsubscribe opts out even before the state shows it
    granted_by_email(three, "newsletter")
    adapter_for(salesforce).push(
        [
            # withdrawn, the only email consent of the batch: opted out
            consent_change(one, "newsletter", status="withdrawn"),
            # one withdrawn, another granted: still reachable by email
            consent_change(two, "newsletter", status="withdrawn"),
            consent_change(two, "offers"),
            # granted, then everything withdrawn at the person's request
            consent_change(three, "newsletter"),
            other_change(three, "contact.unsubscribed", {"source": "one_click"}),
            # an SMS consent says nothing of email
            consent_change(four, "newsletter", channel="sms", status="withdrawn"),
            contact_change(four),
        ]
    )

    assert contact_in(salesforce, 1)["HasOptedOutOfEmail"] is True
    assert contact_in(salesforce, 2)["HasOptedOutOfEmail"] is False
    assert contact_in(salesforce, 3)["HasOptedOutOfEmail"] is True
    assert contact_in(salesforce, 4).get("HasOptedOutOfEmail") is None


@pytest.mark.django_db
def test_consent_objects_are_upserted_per_data_use_purpose_when_enabled(
    salesforce: SalesforceEmulator,
) -> None:
    newsletter = salesforce.insert("DataUsePurpose", {"Name": "Newsletter"})
    adapter = adapter_for(
        salesforce, purpose_map={"newsletter": newsletter}, options={"consent_objects": True}
    )
    grant = consent_change(person(1), "newsletter")

    adapter.push([contact_change(person(1)), grant, consent_change(person(1), "events")])

    [individual] = salesforce.find("Individual", ConsentDesk_Id__c=person(1)["id"])
    assert contact_in(salesforce, 1)["IndividualId"] == individual["Id"]
    [consent] = salesforce.find("ContactPointTypeConsent", PartyId=individual["Id"])
    assert consent["DataUsePurposeId"] == newsletter
    assert consent["PrivacyConsentStatus"] == "OptIn"
    assert consent["EffectiveFrom"] == consent["CaptureDate"] == "2026-11-20T09:30:00.000+0000"
    assert grant.data["record"] in consent["CaptureSource"]
    assert consent["ContactPointType"] == "Email"

    adapter.push([consent_change(person(1), "newsletter", status="withdrawn")])

    [consent] = salesforce.find("ContactPointTypeConsent", PartyId=individual["Id"])
    assert consent["PrivacyConsentStatus"] == "OptOut"


def test_an_sms_consent_becomes_a_phone_consent_object_without_touching_the_email_opt_out(
    salesforce: SalesforceEmulator,
) -> None:
    newsletter = salesforce.insert("DataUsePurpose", {"Name": "Newsletter"})
    adapter = adapter_for(
        salesforce, purpose_map={"newsletter": newsletter}, options={"consent_objects": True}
    )

    result = adapter.push([consent_change(person(1), "newsletter", channel="sms")])

    [consent] = salesforce.find("ContactPointTypeConsent", DataUsePurposeId=newsletter)
    assert consent["ContactPointType"] == "Phone"
    assert consent["PrivacyConsentStatus"] == "OptIn"
    assert contact_in(salesforce, 1).get("HasOptedOutOfEmail") is None
    assert result.rejected == {}


def test_a_salesforce_too_slow_to_answer_is_transient(salesforce: SalesforceEmulator) -> None:
    salesforce.delay = 1.0
    adapter = adapter_for(salesforce)
    adapter.timeout = 0.2

    with pytest.raises(TransientError, match="could not be reached"):
        adapter.push([contact_change(person(1))])


@pytest.mark.django_db
def test_consent_objects_are_left_alone_when_not_enabled(salesforce: SalesforceEmulator) -> None:
    newsletter = salesforce.insert("DataUsePurpose", {"Name": "Newsletter"})

    adapter_for(salesforce, purpose_map={"newsletter": newsletter}).push(
        [consent_change(person(1), "newsletter")]
    )

    assert salesforce.records["ContactPointTypeConsent"] == {}
    assert salesforce.records["Individual"] == {}


@pytest.mark.django_db
def test_a_record_salesforce_refuses_is_rejected_and_the_others_delivered(
    salesforce: SalesforceEmulator,
) -> None:
    good = [contact_change(person(n)) for n in range(5)]
    bad = contact_change(person(5, email="not-an-address@nowhere"))
    consent_of_bad = consent_change(person(5, email="not-an-address@nowhere"), "newsletter")

    result = adapter_for(salesforce).push([*good, bad, consent_of_bad])

    assert set(result.rejected) == {bad.id, consent_of_bad.id}
    assert "INVALID_EMAIL_ADDRESS" in result.rejected[bad.id]
    assert len(salesforce.records["Contact"]) == 5
    assert set(result.remote_ids) == {change.contact for change in good}


def test_a_whole_call_refused_is_narrowed_down_to_the_records_at_fault(
    salesforce: SalesforceEmulator,
) -> None:
    salesforce.fail_next(status=400, body=[{"message": "bad", "errorCode": "JSON_PARSER_ERROR"}])

    result = adapter_for(salesforce).push([contact_change(person(n)) for n in range(4)])

    assert result.rejected == {}
    assert len(salesforce.records["Contact"]) == 4


def test_an_external_id_field_salesforce_lacks_rejects_the_batch_in_one_call(
    salesforce: SalesforceEmulator,
) -> None:
    changes = [contact_change(person(n)) for n in range(50)]

    result = adapter_for(salesforce, options={"external_id_field": "Missing__c"}).push(changes)

    assert set(result.rejected) == {change.id for change in changes}
    assert "Missing__c" in result.rejected[changes[0].id]
    assert len(salesforce.calls) == 1


def test_the_api_request_limit_is_transient(salesforce: SalesforceEmulator) -> None:
    salesforce.rate_limit(ratio=1.0)

    with pytest.raises(TransientError, match="REQUEST_LIMIT_EXCEEDED"):
        adapter_for(salesforce).push([contact_change(person(1))])

    assert salesforce.records["Contact"] == {}


@pytest.mark.parametrize("status", [429, 503])
def test_too_busy_is_transient_with_the_retry_after(
    salesforce: SalesforceEmulator, status: int
) -> None:
    salesforce.retry_after = "12"
    salesforce.rate_limit(ratio=1.0, status=status)

    with pytest.raises(TransientError) as raised:
        adapter_for(salesforce).push([contact_change(person(1))])

    assert raised.value.retry_after == 12.0


def test_a_server_error_is_transient(salesforce: SalesforceEmulator) -> None:
    salesforce.fail_next(status=500, body=[{"message": "boom", "errorCode": "UNKNOWN_EXCEPTION"}])

    with pytest.raises(TransientError, match="500"):
        adapter_for(salesforce).push([contact_change(person(1))])


def test_an_expired_session_is_transient_and_says_so(salesforce: SalesforceEmulator) -> None:
    with pytest.raises(TransientError, match="INVALID_SESSION_ID"):
        adapter_for(salesforce, session_id="expired").push([contact_change(person(1))])


def test_a_client_that_does_not_trust_the_certificate_sends_nothing(
    salesforce: SalesforceEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")  # the system's authorities only

    with pytest.raises(TransientError, match="certificate"):
        adapter_for(salesforce).push([contact_change(person(1))])

    assert salesforce.calls == []


@pytest.mark.django_db
def test_replaying_a_batch_leaves_salesforce_identical(salesforce: SalesforceEmulator) -> None:
    newsletter = salesforce.insert("DataUsePurpose", {"Name": "Newsletter"})
    adapter = adapter_for(
        salesforce, purpose_map={"newsletter": newsletter}, options={"consent_objects": True}
    )
    batch = [
        contact_change(person(1), topic="contact.created"),
        contact_change(person(2)),
        consent_change(person(1), "newsletter"),
        consent_change(person(2), "newsletter", status="withdrawn"),
    ]
    first = adapter.push(batch)
    before = salesforce.snapshot()

    again = adapter.push(batch)

    assert salesforce.snapshot() == before
    assert again.rejected == first.rejected == {}
    assert again.remote_ids == first.remote_ids


def test_an_erased_contact_is_delivered_without_a_call(salesforce: SalesforceEmulator) -> None:
    erased = other_change(person(1), "contact.erased", {"id": person(1)["id"], "status": "erased"})

    result = adapter_for(salesforce).push([erased])

    assert result.rejected == {}
    assert salesforce.calls == []
