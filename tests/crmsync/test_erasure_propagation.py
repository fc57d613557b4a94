"""Erasure reaches every connected CRM (GDPR Art. 17(2), 19), through the real clients against
the emulators, each acknowledgement recorded on the privacy request."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from contacts.models import Contact
from crmsync.connections import connection_create
from crmsync.models import Connection, ContactLink
from privacy.acknowledgements import erasure_acknowledgements_send
from privacy.models import (
    AcknowledgementStatus,
    ErasureAcknowledgement,
    PrivacyRequest,
    PrivacyRequestStatus,
)
from privacy.services import contact_erase, privacy_request_carry_out, privacy_request_transition
from tests.crmsync.receiver import Receiver, bodies
from tests.emulators.hubspot import HubSpotEmulator
from tests.emulators.salesforce import SalesforceEmulator
from tests.factories import ContactFactory, PrivacyRequestFactory

pytestmark = pytest.mark.django_db

TOKEN = "hubspot-test-token"
EXTERNAL_ID = "ConsentDesk_Id__c"


@pytest.fixture
def hubspot() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(token=TOKEN) as emulator:
        assert isinstance(emulator, HubSpotEmulator)
        yield emulator


@pytest.fixture
def salesforce(monkeypatch: pytest.MonkeyPatch) -> Iterator[SalesforceEmulator]:
    with SalesforceEmulator() as emulator:
        assert isinstance(emulator, SalesforceEmulator)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emulator.certificate))
        yield emulator


def hubspot_connection(hubspot: HubSpotEmulator) -> Connection:
    return connection_create(
        name="hubspot", kind="hubspot", base_url=hubspot.url, credentials={"token": TOKEN}
    )


def salesforce_connection(salesforce: SalesforceEmulator, erasure: str = "") -> Connection:
    return connection_create(
        name="salesforce",
        kind="salesforce",
        base_url=salesforce.url,
        credentials={"token": salesforce.session_id},
        options={"erasure": erasure} if erasure else {},
    )


def erasure_requested(contact: Contact) -> PrivacyRequest:
    request = PrivacyRequestFactory(contact=contact, type="erasure", verified=True)
    assert privacy_request_carry_out(request_id=str(request.pk)) is not None
    request.refresh_from_db()
    return request


def acknowledgements(request: PrivacyRequest) -> dict[str, str]:
    return dict(request.acknowledgements.values_list("connection__name", "status"))


def make_due_again() -> None:
    """The backoff has passed."""
    ErasureAcknowledgement.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_hubspot_gdpr_deletes_the_person_by_the_email_captured_before_anonymisation(
    hubspot: HubSpotEmulator,
) -> None:
    hubspot_connection(hubspot)
    contact = ContactFactory(email="lea@example.fr")
    hubspot.put_contact({"email": "lea@example.fr", "firstname": "Léa"})

    request = erasure_requested(contact)

    # given: erased here, the CRM still to tell, the address kept only encrypted
    assert request.status == PrivacyRequestStatus.AWAITING_CRMS
    [waiting] = ErasureAcknowledgement.objects.all()
    assert waiting.email_token and "lea@example.fr" not in waiting.email_token
    # when
    assert erasure_acknowledgements_send() == 1
    # then
    assert hubspot.contact("lea@example.fr") is None
    assert "lea@example.fr" in hubspot.gdpr_deleted
    waiting.refresh_from_db()
    assert waiting.status == AcknowledgementStatus.ACKNOWLEDGED
    assert waiting.email_token == ""  # no longer needed: gone
    request.refresh_from_db()
    assert request.status == PrivacyRequestStatus.COMPLETED


def test_hubspot_gdpr_deletes_by_the_remote_id_it_gave(hubspot: HubSpotEmulator) -> None:
    connection = hubspot_connection(hubspot)
    contact = ContactFactory(email="lea@example.fr")
    # the address changed in HubSpot since: only its id still finds the record
    stored = hubspot.put_contact({"email": "other@example.fr"})
    ContactLink.objects.create(connection=connection, contact=contact, remote_id=stored["id"])

    request = erasure_requested(contact)
    erasure_acknowledgements_send()

    assert hubspot.contact("other@example.fr") is None
    assert ErasureAcknowledgement.objects.get().email_token == ""  # the id was enough
    assert acknowledgements(request) == {"hubspot": AcknowledgementStatus.ACKNOWLEDGED}


def test_a_person_hubspot_no_longer_holds_counts_as_erased(hubspot: HubSpotEmulator) -> None:
    hubspot_connection(hubspot)
    request = erasure_requested(ContactFactory(email="never-pushed@example.fr"))

    erasure_acknowledgements_send()

    assert hubspot.calls_to("gdpr-delete")  # asked, answered 404
    request.refresh_from_db()
    assert request.status == PrivacyRequestStatus.COMPLETED


def test_salesforce_deletes_the_contact_by_default(salesforce: SalesforceEmulator) -> None:
    salesforce_connection(salesforce)
    contact = ContactFactory()
    salesforce.insert("Contact", {EXTERNAL_ID: str(contact.public_id), "LastName": "Martin"})

    request = erasure_requested(contact)
    erasure_acknowledgements_send()

    assert salesforce.find("Contact", **{EXTERNAL_ID: str(contact.public_id)}) == []
    request.refresh_from_db()
    assert request.status == PrivacyRequestStatus.COMPLETED


def test_salesforce_anonymises_the_contact_when_the_connection_says_so(
    salesforce: SalesforceEmulator,
) -> None:
    salesforce_connection(salesforce, erasure="anonymise")
    contact = ContactFactory()
    salesforce.insert(
        "Contact",
        {
            EXTERNAL_ID: str(contact.public_id),
            "LastName": "Martin",
            "FirstName": "Léa",
            "Email": "lea@example.fr",
        },
    )

    request = erasure_requested(contact)
    erasure_acknowledgements_send()

    [record] = salesforce.find("Contact", **{EXTERNAL_ID: str(contact.public_id)})
    assert (record["LastName"], record.get("FirstName"), record.get("Email")) == (
        "[erased]",
        None,
        None,
    )
    assert record["HasOptedOutOfEmail"] is True
    assert acknowledgements(request) == {"salesforce": AcknowledgementStatus.ACKNOWLEDGED}


def test_the_webhook_receives_contact_erased_as_the_erasure(
    hook: Connection, receiver: Receiver
) -> None:
    contact = ContactFactory()

    request = erasure_requested(contact)
    erasure_acknowledgements_send()

    [body] = bodies(receiver)
    assert (body["topic"], body["contact"]) == ("contact.erased", str(contact.public_id))
    assert acknowledgements(request) == {"integrator": AcknowledgementStatus.ACKNOWLEDGED}


def test_a_failed_erasure_is_recorded_retried_then_acknowledged(
    hubspot: HubSpotEmulator,
) -> None:
    hubspot_connection(hubspot)
    contact = ContactFactory(email="lea@example.fr")
    hubspot.put_contact({"email": "lea@example.fr"})
    request = erasure_requested(contact)
    hubspot.fail_next(1, status=503)

    assert erasure_acknowledgements_send() == 0
    failed = ErasureAcknowledgement.objects.get()
    assert failed.status == AcknowledgementStatus.FAILED
    assert "503" in failed.error
    assert failed.next_attempt_at is not None and failed.next_attempt_at > timezone.now()
    assert erasure_acknowledgements_send() == 0  # backing off: not tried again yet

    make_due_again()
    assert erasure_acknowledgements_send() == 1

    assert hubspot.contact("lea@example.fr") is None
    failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (AcknowledgementStatus.ACKNOWLEDGED, 2)
    request.refresh_from_db()
    assert request.status == PrivacyRequestStatus.COMPLETED


def test_the_request_completes_only_when_every_crm_acknowledged(
    hubspot: HubSpotEmulator, salesforce: SalesforceEmulator
) -> None:
    hubspot_connection(hubspot)
    salesforce_connection(salesforce)
    contact = ContactFactory()
    request = erasure_requested(contact)
    salesforce.fail_next(1, status=500)

    erasure_acknowledgements_send()

    request.refresh_from_db()
    assert request.status == PrivacyRequestStatus.AWAITING_CRMS
    assert acknowledgements(request) == {
        "hubspot": AcknowledgementStatus.ACKNOWLEDGED,
        "salesforce": AcknowledgementStatus.FAILED,
    }
    make_due_again()
    erasure_acknowledgements_send()
    request.refresh_from_db()
    assert request.status == PrivacyRequestStatus.COMPLETED
    last = request.history.last()
    assert last is not None and last.note  # says every CRM acknowledged


def test_the_dpo_closes_a_waiting_erasure_only_with_a_note(hubspot: HubSpotEmulator) -> None:
    hubspot_connection(hubspot)
    hubspot.fail_next(5, status=500)
    request = erasure_requested(ContactFactory(email="lea@example.fr"))
    erasure_acknowledgements_send()

    with pytest.raises(ValidationError):
        privacy_request_transition(request=request, status="completed", by="dpo", note=" ")
    privacy_request_transition(
        request=request, status="completed", by="dpo", note="HubSpot portal closed down."
    )

    request.refresh_from_db()
    assert request.status == PrivacyRequestStatus.COMPLETED
    closed = ErasureAcknowledgement.objects.get()
    assert (closed.status, closed.email_token) == (AcknowledgementStatus.CLOSED, "")
    make_due_again()
    assert erasure_acknowledgements_send() == 0  # never tried again


def test_an_acknowledgement_claimed_by_a_worker_is_not_sent_by_another(
    hubspot: HubSpotEmulator,
) -> None:
    hubspot_connection(hubspot)
    contact = ContactFactory(email="lea@example.fr")
    hubspot.put_contact({"email": "lea@example.fr"})
    erasure_requested(contact)
    # a worker claimed it (its lease runs) and was killed before recording the answer
    ErasureAcknowledgement.objects.update(
        next_attempt_at=timezone.now() + timedelta(minutes=5), attempts=1
    )

    assert erasure_acknowledgements_send() == 0
    assert hubspot.contact("lea@example.fr") is not None

    make_due_again()  # the lease ran out: sent once more, harmless
    assert erasure_acknowledgements_send() == 1


def test_an_erasure_without_a_request_still_reaches_the_crms(hubspot: HubSpotEmulator) -> None:
    hubspot_connection(hubspot)
    contact = ContactFactory(email="lea@example.fr")
    hubspot.put_contact({"email": "lea@example.fr"})

    contact_erase(contact=contact, reason="retention")
    erasure_acknowledgements_send(contact_ids=[contact.pk])

    assert hubspot.contact("lea@example.fr") is None
    assert ErasureAcknowledgement.objects.get().request is None


def test_a_disabled_connection_is_not_told(hubspot: HubSpotEmulator) -> None:
    connection = hubspot_connection(hubspot)
    Connection.objects.filter(pk=connection.pk).update(enabled=False)

    request = erasure_requested(ContactFactory())

    assert request.status == PrivacyRequestStatus.COMPLETED
    assert not ErasureAcknowledgement.objects.exists()


def test_a_request_whose_connection_was_deleted_completes_at_the_next_pass(
    hubspot: HubSpotEmulator,
) -> None:
    connection = hubspot_connection(hubspot)
    request = erasure_requested(ContactFactory())
    assert request.status == PrivacyRequestStatus.AWAITING_CRMS

    connection.delete()
    erasure_acknowledgements_send()

    request.refresh_from_db()
    assert request.status == PrivacyRequestStatus.COMPLETED


def test_with_consent_objects_salesforce_also_deletes_the_individual(
    salesforce: SalesforceEmulator,
) -> None:
    connection = salesforce_connection(salesforce)
    Connection.objects.filter(pk=connection.pk).update(options={"consent_objects": True})
    contact = ContactFactory()
    salesforce.insert("Individual", {EXTERNAL_ID: str(contact.public_id), "LastName": "Martin"})
    salesforce.insert("Contact", {EXTERNAL_ID: str(contact.public_id), "LastName": "Martin"})

    request = erasure_requested(contact)
    erasure_acknowledgements_send()

    assert salesforce.find("Individual", **{EXTERNAL_ID: str(contact.public_id)}) == []
    assert salesforce.find("Contact", **{EXTERNAL_ID: str(contact.public_id)}) == []
    assert acknowledgements(request) == {"salesforce": AcknowledgementStatus.ACKNOWLEDGED}
