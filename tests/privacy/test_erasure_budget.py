"""Erasure at scale (issue 11): set-based for a batch, at most 20 queries per person, and one
person who cannot be erased does not hold back the others, nor is left half-erased.

Queries are counted outside any test transaction, as the workers run them (no savepoints).
"""

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from consent.ledger import ledger_verify
from consent.models import ConsentEvidence, ConsentRecord, ConsentStatus, Purpose
from contacts.models import Contact, ContactStatus, Suppression, TimelineEvent
from crmsync.models import OutboxEvent
from preferences.models import PreferenceToken
from preferences.services import preference_token_issue
from privacy.models import PrivacyRequest, PrivacyRequestStatus
from privacy.services import (
    contacts_erase_many,
    privacy_requests_carry_out_pending,
    retention_apply,
)
from tests.factories import ContactFactory, PrivacyRequestFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db(transaction=True)

BATCH = 50
PER_PERSON = 20


def _purposes() -> list[Purpose]:
    return [PurposeFactory(slug=slug, channels=["email", "sms"]) for slug in ("a", "b", "c")]


def _person(number: int, purposes: list[Purpose]) -> Contact:
    """The benchmark's person: identity, email and phone, three grants with personal
    evidence, a preference link."""
    contact = ContactFactory(
        email=f"person{number}@example.fr",
        phone=f"+336123{number:05d}",
        first_name="Léa",
        last_name=f"Dupont{number}",
        city="Lyon",
    )
    for purpose in purposes:
        grant(contact, purpose)
    preference_token_issue(contact=contact)
    return contact


def _erasure_requested(contact: Contact) -> PrivacyRequest:
    request = PrivacyRequestFactory(contact=contact, type="erasure", source_kind="api")
    # verified by the DPO (filed unverified: nothing is queued before the job runs)
    PrivacyRequest.objects.filter(pk=request.pk).update(status=PrivacyRequestStatus.VERIFIED)
    return request


def _unreadable_email(contact: Contact) -> None:
    """An address stored before validation existed, which no longer normalises: it cannot
    go on the suppression list, so the person's erasure fails once it got that far."""
    Contact.objects.filter(pk=contact.pk).update(email="no-at-sign")


def assert_erased(contact: Contact) -> None:
    contact.refresh_from_db()
    assert contact.status == ContactStatus.ERASED
    assert contact.first_name == contact.phone == ""
    assert not PreferenceToken.objects.filter(contact=contact).exists()
    assert not ConsentEvidence.objects.filter(record__contact=contact).exists()
    assert not contact.consent_states.exclude(status=ConsentStatus.WITHDRAWN).exists()
    assert OutboxEvent.objects.filter(
        contact_public_id=contact.public_id, topic="contact.erased"
    ).exists()
    assert list(TimelineEvent.objects.filter(contact=contact).values_list("kind", flat=True)) == [
        "erased"
    ]


def assert_untouched(contact: Contact, email: str) -> None:
    """Nothing of the erasure stayed: no withdrawal, evidence and links kept, not anonymised."""
    contact.refresh_from_db()
    assert contact.status == ContactStatus.ACTIVE
    assert (contact.email, contact.first_name) == (email, "Léa")
    assert set(contact.consent_states.values_list("status", flat=True)) == {"granted"}
    assert not ConsentRecord.objects.filter(contact=contact, action="withdraw").exists()
    assert ConsentEvidence.objects.filter(record__contact=contact).count() == 3
    assert PreferenceToken.objects.filter(contact=contact).exists()
    assert not OutboxEvent.objects.filter(
        contact_public_id=contact.public_id, topic="contact.erased"
    ).exists()


def test_the_erasure_job_costs_at_most_20_queries_per_person(
    django_assert_max_num_queries: Any,
) -> None:
    purposes = _purposes()
    people = [_person(number, purposes) for number in range(BATCH)]
    for contact in people:
        _erasure_requested(contact)

    with django_assert_max_num_queries(PER_PERSON * BATCH):
        done = privacy_requests_carry_out_pending(batch_size=200)

    assert done == BATCH
    for contact in people[:: BATCH // 5]:
        assert_erased(contact)
    assert ledger_verify() == []


def test_a_batch_erases_everyone_but_the_one_who_fails_who_is_left_whole(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given fifty requested erasures, one of a person whose erasure fails mid-way
    purposes = _purposes()
    people = [_person(number, purposes) for number in range(BATCH)]
    requests = [_erasure_requested(contact) for contact in people]
    failing = people[17]
    _unreadable_email(failing)

    # when the job runs
    with caplog.at_level(logging.ERROR, logger="privacy.services"):
        done = privacy_requests_carry_out_pending(batch_size=200)

    # then the others are erased and their requests completed
    assert done == BATCH - 1
    for contact in people:
        if contact != failing:
            assert_erased(contact)
    completed = PrivacyRequest.objects.filter(status=PrivacyRequestStatus.COMPLETED)
    assert completed.count() == BATCH - 1
    # the failing one is as it was, its request still to do, and the failure logged
    assert_untouched(failing, "no-at-sign")
    assert PrivacyRequest.objects.get(pk=requests[17].pk).status == PrivacyRequestStatus.VERIFIED
    assert any(str(requests[17].pk) in record.getMessage() for record in caplog.records)
    assert ledger_verify() == []

    # and the next run tries it again, once the address is put right
    Contact.objects.filter(pk=failing.pk).update(email="person17@example.fr")
    assert privacy_requests_carry_out_pending(batch_size=200) == 1
    assert_erased(failing)
    assert not PrivacyRequest.objects.exclude(status=PrivacyRequestStatus.COMPLETED).exists()


def test_contacts_erase_many_reports_the_person_it_could_not_erase(
    caplog: pytest.LogCaptureFixture,
) -> None:
    purposes = _purposes()
    people = [_person(number, purposes) for number in range(5)]
    _unreadable_email(people[2])

    with caplog.at_level(logging.ERROR, logger="privacy.services"):
        outcome = contacts_erase_many(
            contact_ids=[contact.pk for contact in people], reason="admin", source_kind="admin"
        )

    assert outcome.failed == [people[2].pk]
    assert sorted(outcome.erased) == sorted(c.pk for c in people if c != people[2])
    assert_untouched(people[2], "no-at-sign")
    for contact in people:
        if contact != people[2]:
            assert_erased(contact)
    assert f"contact {people[2].pk} could not be erased" in caplog.text
    # every erased address is suppressed (email and phone), the failing one is not
    assert Suppression.objects.count() == 2 * 4
    # a second run has nothing left to do but the failing one
    again = contacts_erase_many(contact_ids=[c.pk for c in people], reason="admin")
    assert again.erased == [] and again.failed == [people[2].pk]


def test_erasing_a_batch_withdraws_in_the_ledger_what_one_erasure_withdraws() -> None:
    purposes = _purposes()
    people = [_person(number, purposes) for number in range(3)]
    grant(people[0], purposes[0], channel="sms")

    outcome = contacts_erase_many(
        contact_ids=[c.pk for c in people], reason="retention", source_reference="retention"
    )

    assert sorted(outcome.erased) == sorted(c.pk for c in people)
    withdrawals = ConsentRecord.objects.filter(action="withdraw")
    assert withdrawals.count() == 10  # 3 + 3 + 3 grants, and the extra SMS grant
    assert set(withdrawals.values_list("source_reference", flat=True)) == {"retention"}
    assert set(withdrawals.values_list("source_kind", flat=True)) == {"system"}
    assert ConsentRecord.objects.filter(action="grant").count() == 10  # the proofs stay
    assert ledger_verify() == []


def test_retention_erases_the_silent_as_a_batch_and_skips_the_one_who_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given people asked long ago whether to stay, silent since
    purposes = _purposes()
    people = [_person(number, purposes) for number in range(6)]
    asked = timezone.now() - settings.RETENTION_GRACE - timedelta(days=1)
    Contact.objects.update(repermission_sent_at=asked, last_activity_at=asked - timedelta(days=1))
    _unreadable_email(people[4])

    with caplog.at_level(logging.ERROR, logger="privacy.services"):
        asked_now, erased = retention_apply(batch_size=4)

    assert erased == 5
    for contact in people:
        if contact != people[4]:
            assert_erased(contact)
    assert_untouched(people[4], "no-at-sign")
    assert f"silent contact {people[4].pk} could not be erased" in caplog.text
