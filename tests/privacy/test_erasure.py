"""Erasure (GDPR Art. 17): one path, `contact_erase`, whatever the person used to ask for it.

Every entry point (an integrator's request through the API, the preference center's
confirmation link, a direct call) must leave the same thing behind: an anonymous contact on
the suppression list, a ledger that still proves past consents and still verifies, and no
other copy of the person anywhere (links, queued CRM payloads, stored API answers).
"""

import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from io import StringIO
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from consent.ledger import ledger_verify
from consent.models import ConsentEvidence, ConsentRecord, ConsentState, Purpose
from consent.tasks import send_double_opt_in_confirmation
from contacts.models import Contact, Suppression, TimelineEvent
from contacts.selectors import suppression_reason
from core.models import IdempotencyRecord
from crmsync.models import OutboxEvent
from preferences.models import PreferenceToken
from preferences.services import preference_token_issue
from privacy.models import PrivacyRequest
from privacy.services import contact_erase, privacy_request_carry_out
from tests.api.payloads import box, consent_body, form_body
from tests.conftest import Mailbox, message_text, wait_for
from tests.factories import (
    ContactFactory,
    InterestFactory,
    PrivacyRequestFactory,
    PurposeFactory,
    grant,
)
from tests.queued import held_back

EAGER = settings.CELERY_TASK_ALWAYS_EAGER
REQUESTS = "/api/v1/privacy-requests/"
CONTACTS = "/api/v1/contacts/"
CONSENTS = "/api/v1/consents/"
FORMS = "/api/v1/forms/submissions/"
BROWSER = {"REMOTE_ADDR": "198.51.100.23", "HTTP_USER_AGENT": "Mozilla/5.0 (Léa's laptop)"}
EMAIL = "lea.dupont@example.fr"
PHONE = "+33612345678"
# What identifies the person on the contact row; all of it must be blank after erasure.
IDENTIFYING_FIELDS = (
    "first_name",
    "last_name",
    "phone",
    "company",
    "job_title",
    "address_line1",
    "address_line2",
    "postal_code",
    "city",
    "country",
    "source",
    "guardian_consent_evidence",
    "email_undeliverable_reason",
    "postal_undeliverable_reason",
    "hubspot_id",
    "salesforce_id",
)


@dataclass(frozen=True)
class Held:
    """Everything the database holds on Léa before her erasure, to compare with after."""

    contact: Contact
    newsletter: Purpose
    token: str
    records: frozenset[int]
    on: int  # granted or pending (consent, channel) pairs: each gets one withdrawal
    delivered: frozenset[uuid.UUID]
    queued: frozenset[uuid.UUID]
    other: Contact
    others_answer: int


def hold_everything_on_lea(client: APIClient) -> Held:
    """Léa with every kind of data: identity, CRM ids, interests, granted and pending consents
    with personal evidence, a preference link, delivered and queued CRM events, and stored
    API answers naming her (beside Hugo, whose data must not be touched)."""
    # these tests are about erasure: the confirmation email of her pending grant stays queued
    with held_back(send_double_opt_in_confirmation), transaction.atomic():
        lea = ContactFactory(
            email=EMAIL,
            first_name="Léa",
            last_name="Dupont",
            phone=PHONE,
            company="Acme",
            job_title="CTO",
            address_line1="1 rue de la Paix",
            address_line2="Bâtiment B",
            postal_code="75002",
            city="Paris",
            country="FR",
            source="salon-2026",
            guardian_consent_evidence="signed by her mother",
            email_undeliverable_reason="mailbox full",
            postal_undeliverable_reason="moved",
            crm_record_type="contact",
            hubspot_id="hs-1234",
            salesforce_id="003-sf-5678",
            last_activity_at=timezone.now(),
        )
        lea.interests.set([InterestFactory(slug="cloud"), InterestFactory(slug="security")])
        newsletter = PurposeFactory(slug="newsletter", channels=["email", "sms"])
        offers = PurposeFactory(slug="offers", channels=["email"], double_opt_in=True)
        grant(lea, newsletter)
        grant(lea, offers)  # pending: waits for the double opt-in link
        hugo = ContactFactory(email="hugo@example.fr", first_name="Hugo")
        grant(hugo, newsletter)
    # stored API answers: one naming her email and id, one her id only, one naming Hugo
    answers = [
        (CONTACTS, {"email": EMAIL, "company": "Acme"}, "lea-contact"),
        (CONSENTS, consent_body(newsletter, contact=str(lea.public_id), channel="sms"), "lea-sms"),
        (CONTACTS, {"email": hugo.email, "company": "Globex"}, "hugo-contact"),
    ]
    for path, body, key in answers:
        response = client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)
        assert response.status_code in (200, 201), response.json()
    # the CRMs already received her first events; the later ones still wait in the outbox
    events = OutboxEvent.objects.filter(contact_public_id=lea.public_id).order_by("created_at")
    delivered = [event.id for event in events[:2]]
    OutboxEvent.objects.filter(id__in=delivered).update(processed_at=timezone.now())
    lea.refresh_from_db()
    return Held(
        contact=lea,
        newsletter=newsletter,
        token=preference_token_issue(contact=lea),
        records=frozenset(ConsentRecord.objects.filter(contact=lea).values_list("id", flat=True)),
        on=ConsentState.objects.filter(contact=lea, status__in=["granted", "pending"]).count(),
        delivered=frozenset(delivered),
        queued=frozenset(events.exclude(id__in=delivered).values_list("id", flat=True)),
        other=hugo,
        others_answer=IdempotencyRecord.objects.get(key="hugo-contact").id,
    )


def assert_erased(held: Held) -> None:
    """Léa is anonymous and unreachable; only the proof of her past consents remains."""
    lea = Contact.objects.get(pk=held.contact.pk)
    assert {name: getattr(lea, name) for name in IDENTIFYING_FIELDS} == dict.fromkeys(
        IDENTIFYING_FIELDS, ""
    )
    assert lea.email == f"erased-{lea.public_id}@erased.invalid"
    assert lea.public_id == held.contact.public_id  # the pseudonym the ledger and CRMs use
    assert lea.status == "erased"
    assert (lea.last_activity_at, lea.paused_until) == (None, None)
    assert not lea.interests.exists()
    assert [(event.kind, event.data) for event in lea.timeline.all()] == [("erased", {})]
    # never re-contacted: her email and phone are suppressed, as digests only
    assert suppression_reason(kind="email", value=EMAIL) == "erased"
    assert suppression_reason(kind="phone", value=PHONE) == "erased"
    assert not Suppression.objects.filter(digest__in=[EMAIL, PHONE]).exists()
    assert_ledger_kept(held, lea)
    assert_no_copies_left(held, lea)


def assert_ledger_kept(held: Held, lea: Contact) -> None:
    records = ConsentRecord.objects.filter(contact=lea)
    assert held.records <= set(records.values_list("id", flat=True))
    withdrawals = records.exclude(id__in=held.records)
    assert withdrawals.count() == held.on
    assert set(withdrawals.values_list("action", flat=True)) == {"withdraw"}
    # the pending double opt-in grant is withdrawn too: a late click cannot confirm it
    assert set(ConsentState.objects.filter(contact=lea).values_list("status", flat=True)) == {
        "withdrawn"
    }
    assert not ConsentEvidence.objects.filter(record__contact=lea).exists()
    assert ConsentEvidence.objects.filter(record__contact=held.other).exists()
    assert ledger_verify() == []
    output = StringIO()
    call_command("verify_ledger", stdout=output)  # raises CommandError (exit 1) when broken
    assert "intact" in output.getvalue()


def assert_no_copies_left(held: Held, lea: Contact) -> None:
    assert not PreferenceToken.objects.filter(contact=lea).exists()
    assert Client().get(f"/p/{held.token}/").status_code == 404
    events = OutboxEvent.objects.filter(contact_public_id=lea.public_id)
    assert not events.filter(id__in=held.queued).exists()
    delivered = events.filter(id__in=held.delivered)
    assert [event.payload for event in delivered] == [{"erased": True}] * len(held.delivered)
    [erased] = events.exclude(id__in=held.delivered)
    assert erased.topic == "contact.erased"
    assert erased.processed_at is None
    assert erased.payload == {
        "id": str(lea.public_id),
        "status": "erased",
        "hubspot_id": "hs-1234",
        "salesforce_id": "003-sf-5678",
        "crm_record_type": "contact",
    }
    assert OutboxEvent.objects.filter(contact_public_id=held.other.public_id).exists()
    assert list(IdempotencyRecord.objects.values_list("id", flat=True)) == [held.others_answer]


def assert_refused_and_pending_until_she_confirms(client: APIClient, held: Held) -> None:
    """No query by her old email finds her; a form signing her up again is only pending: she is
    not re-created and stays suppressed until she follows the link emailed to her address."""
    found = client.get(CONTACTS, {"email": EMAIL})
    assert found.status_code == 200
    assert found.json()["results"] == []

    refused = client.post(CONTACTS, {"email": EMAIL, "first_name": "Léa"}, format="json")
    assert refused.status_code == 400
    assert "suppression" in refused.json()["email"][0]
    assert not Contact.objects.filter(email=EMAIL).exists()

    pending = client.post(
        FORMS, form_body(email=EMAIL, boxes=[box(held.newsletter)]), format="json"
    )
    assert pending.status_code == 201, pending.json()
    assert pending.json()["contact"] is None
    assert [(c["status"], c["id"]) for c in pending.json()["consents"]] == [("pending", None)]
    assert not Contact.objects.filter(email=EMAIL).exists()
    assert suppression_reason(kind="email", value=EMAIL) == "erased"


def assert_back_once_she_follows_the_link(mailbox: Mailbox, held: Held) -> None:
    """Following the link emailed to her address brings her back as a new contact."""
    link = wait_for(lambda: signup_link(mailbox), timeout=30)
    client = Client()
    assert client.get(link).status_code == 200
    assert not Contact.objects.filter(email=EMAIL).exists()

    assert client.post(link, **BROWSER).status_code == 200

    back = Contact.objects.get(email=EMAIL)
    assert back.status == "active" and back.public_id != held.contact.public_id
    assert suppression_reason(kind="email", value=EMAIL) is None
    record = ConsentRecord.objects.get(contact=back)
    assert (record.source_kind, record.status) == ("email_confirmation", "granted")


def signup_link(mailbox: Mailbox) -> str | None:
    for message in mailbox.messages:
        found = re.search(r"https?://\S+(/confirm/s-\S+/)", message_text(message))
        if message["To"] == EMAIL and found:
            return found.group(1)
    return None


def erasure_requested_by_api(client: APIClient, lea: Contact) -> PrivacyRequest:
    response = client.post(
        REQUESTS,
        {"email": lea.email, "type": "erasure", "details": "Léa Dupont, 06 12 34 56 78"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return PrivacyRequest.objects.get(id=response.json()["id"])


def completed(request: PrivacyRequest) -> bool:
    request.refresh_from_db()
    return request.status == "completed"


# --- the API ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.skipif(not EAGER, reason="runs the on_commit task in-process; see the worker test")
def test_an_erasure_request_filed_through_the_api_is_carried_out_once_committed(
    api: Callable[..., APIClient], django_capture_on_commit_callbacks: Any
) -> None:
    # given
    client = api()
    held = hold_everything_on_lea(client)

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        request = erasure_requested_by_api(client, held.contact)

    # then
    assert len(callbacks) == 1
    request.refresh_from_db()
    assert (request.status, request.details, request.handled_by) == ("completed", "", "worker")
    assert list(request.history.values_list("status", flat=True)) == ["verified", "completed"]
    assert_erased(held)
    assert_refused_and_pending_until_she_confirms(client, held)


def test_an_erasure_request_filed_through_the_api_is_carried_out_by_the_worker(
    transactional_db: None, celery_worker: Any, mailbox: Mailbox, api: Callable[..., APIClient]
) -> None:
    # given (a real worker on Redis when REDIS_URL is set, in-process after commit otherwise)
    client = api()
    held = hold_everything_on_lea(client)

    # when
    request = erasure_requested_by_api(client, held.contact)

    # then
    wait_for(lambda: completed(request), timeout=30)
    assert request.completed_at is not None
    assert_erased(held)
    assert_refused_and_pending_until_she_confirms(client, held)
    assert_back_once_she_follows_the_link(mailbox, held)


# --- the preference center --------------------------------------------------------------------


def test_an_erasure_confirmed_from_the_preference_center_is_carried_out(
    transactional_db: None,
    celery_worker: Any,
    mailbox: Mailbox,
    api: Callable[..., APIClient],
    client: Client,
) -> None:
    # given Léa asked for her erasure on her preference page and got the link by email
    held = hold_everything_on_lea(api())
    asked = client.post(f"/p/{held.token}/", {"form": "erasure", "lang": "en"}, **BROWSER)
    assert asked.status_code == 303
    [message] = mailbox.wait(1)
    assert message["To"] == EMAIL
    link = re.search(r"https?://\S+/p/confirm/\S+/", message_text(message)).group(0)

    # when she confirms from her mailbox
    confirmed = client.post(urlsplit(link).path, **BROWSER)

    # then the request is filed as verified and carried out by the workers
    assert confirmed.status_code == 200
    request = PrivacyRequest.objects.get(contact=held.contact, type="erasure")
    assert request.source_kind == "preference_center"
    wait_for(lambda: completed(request), timeout=30)
    assert_erased(held)
    assert_refused_and_pending_until_she_confirms(api(), held)
    # the confirmation link no longer leads anywhere
    assert client.get(urlsplit(link).path).status_code == 404
    assert_back_once_she_follows_the_link(mailbox, held)


# --- a direct call ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_contact_erase_called_directly_erases_everything(api: Callable[..., APIClient]) -> None:
    # given
    client = api()
    held = hold_everything_on_lea(client)

    # when
    contact_erase(contact=held.contact, reason="retention", source_kind="system")

    # then
    assert_erased(held)
    assert Contact.objects.get(pk=held.contact.pk).timeline.get().summary == "retention"
    withdrawals = ConsentRecord.objects.filter(contact=held.contact, action="withdraw")
    assert set(withdrawals.values_list("source_kind", "source_reference")) == {
        ("system", "erasure")
    }
    assert_refused_and_pending_until_she_confirms(client, held)


def lea_with_an_access_export(api: Callable[..., APIClient]) -> tuple[Any, PrivacyRequest]:
    """Léa, who downloaded her data through an access request before asking for erasure."""
    held = hold_everything_on_lea(api())
    access = PrivacyRequestFactory(
        contact=held.contact,
        type="access",
        details="Please send me everything, Léa Dupont",
        verified=True,
    )
    privacy_request_carry_out(request_id=str(access.id))
    access.refresh_from_db()
    return held, access


@pytest.mark.django_db
def test_a_rolled_back_erasure_keeps_the_export_files_its_rows_point_to(
    api: Callable[..., APIClient],
) -> None:
    # given
    held, access = lea_with_an_access_export(api)
    files = [access.export_json, access.export_archive]

    # when the erasure fails after its files were marked for deletion
    with pytest.raises(RuntimeError), transaction.atomic():
        contact_erase(contact=held.contact, reason="erasure")
        raise RuntimeError("a later step of the same transaction failed")

    # then the rows still name the files, and the files are still there
    access.refresh_from_db()
    assert access.export_json.name == files[0].name
    assert all(file.storage.exists(file.name) for file in files)


@pytest.mark.django_db
def test_erasure_removes_the_export_files_and_the_request_details(
    api: Callable[..., APIClient], django_capture_on_commit_callbacks: Any
) -> None:
    # given
    held, access = lea_with_an_access_export(api)
    files = [access.export_json, access.export_archive]
    assert all(file.storage.exists(file.name) for file in files)

    # when (the files go once the erasure commits)
    with django_capture_on_commit_callbacks(execute=True):
        contact_erase(contact=held.contact, reason="erasure")

    # then
    assert not any(file.storage.exists(file.name) for file in files)
    access.refresh_from_db()
    assert (access.details, access.export_json.name, access.export_archive.name) == ("", "", "")
    assert access.export_expires_at is None
    assert access.status == "completed"  # the request itself is kept: it proves we answered


@pytest.mark.django_db
def test_erasing_twice_writes_nothing_the_second_time(api: Callable[..., APIClient]) -> None:
    # given
    held = hold_everything_on_lea(api())
    contact_erase(contact=held.contact, reason="erasure")
    counts = (
        ConsentRecord.objects.count(),
        OutboxEvent.objects.count(),
        TimelineEvent.objects.count(),
        Suppression.objects.count(),
    )

    # when
    again = contact_erase(contact=held.contact, reason="erasure")

    # then
    assert again.status == "erased"
    assert (
        ConsentRecord.objects.count(),
        OutboxEvent.objects.count(),
        TimelineEvent.objects.count(),
        Suppression.objects.count(),
    ) == counts
    assert_erased(held)


@pytest.mark.django_db
def test_a_second_erasure_request_completes_without_erasing_again(
    api: Callable[..., APIClient],
) -> None:
    # given two verified erasure requests (the person asked twice before the first was done)
    held = hold_everything_on_lea(api())
    first, second = PrivacyRequestFactory.create_batch(
        2, contact=held.contact, type="erasure", verified=True
    )
    privacy_request_carry_out(request_id=str(first.id))
    records, events = ConsentRecord.objects.count(), OutboxEvent.objects.count()

    # when
    privacy_request_carry_out(request_id=str(second.id))

    # then
    second.refresh_from_db()
    assert second.status == "completed"
    assert (ConsentRecord.objects.count(), OutboxEvent.objects.count()) == (records, events)
    assert_erased(held)


@pytest.mark.django_db
def test_an_erased_contact_cannot_file_a_new_request(api: Callable[..., APIClient]) -> None:
    # given
    lea = ContactFactory(email=EMAIL)
    contact_erase(contact=lea, reason="erasure")

    # when
    response = api().post(
        REQUESTS, {"contact": str(lea.public_id), "type": "access"}, format="json"
    )

    # then
    assert response.status_code == 400
    assert list(response.json()) == ["contact"]
    assert not PrivacyRequest.objects.exists()


@pytest.mark.postgres
def test_a_consent_written_while_the_contact_is_erased_never_deadlocks_nor_follows_the_erasure(
    transactional_db: None,
) -> None:
    # given people with a consent, each erased while a new grant for them arrives at once
    newsletter = PurposeFactory(slug="newsletter", channels=["email", "sms"])
    for round_number in range(6):
        contact = ContactFactory(email=f"race{round_number}@example.fr")
        grant(contact, newsletter, channel="email")

        erased, granted = at_once(
            lambda c=contact: contact_erase(contact=c, reason="request"),
            lambda c=contact: grant(c, newsletter, channel="sms"),
        )

        # then the erasure always completes; the grant is either before it (and withdrawn by
        # it) or refused because the contact is erased; nothing is granted afterwards
        assert erased is None, repr(erased)
        assert granted is None or "contact" in getattr(granted, "message_dict", {}), repr(granted)
        contact.refresh_from_db()
        assert contact.status == "erased"
        assert not ConsentState.objects.filter(contact=contact, status="granted").exists()
    assert ledger_verify() == []


def at_once(*works: Callable[[], object]) -> list[BaseException | None]:
    """Run each work in its own thread and connection, released together; their errors."""
    start = threading.Barrier(len(works))
    outcomes: list[BaseException | None] = [None] * len(works)

    def run(index: int) -> None:
        try:
            start.wait(timeout=30)
            works[index]()
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            outcomes[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(works))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes
