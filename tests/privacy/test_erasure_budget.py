"""Erasure at scale (issue 11): set-based for a batch, at most 26 queries per person (and
for one person alone: 20 before the proof archive, whose evidence read and entry insert are
two statements per batch, and the CRM dead letters', issue 14: the undelivered events are
read before they are deleted with their dead letters, and the errors of the others scrubbed,
and the owners in the CRMs named on the person's links blanked; and staff's notes on the
person, deleted in one statement per batch, issue 15),
and one person who cannot be erased does not hold back the
others, nor is left half-erased.

Queries are counted outside any test transaction, as the workers run them (no savepoints).
"""

import logging
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.utils import timezone

from consent.ledger import ledger_verify
from consent.models import ConsentEvidence, ConsentRecord, ConsentState, ConsentStatus, Purpose
from contacts.models import Contact, ContactStatus, Note, Suppression, TimelineEvent
from contacts.services import note_add
from crmsync.models import OutboxEvent
from preferences.models import PreferenceToken
from preferences.services import preference_token_issue
from privacy.merge import contact_merge
from privacy.models import PrivacyRequest, PrivacyRequestStatus, ProofArchiveEntry
from privacy.services import (
    contact_erase,
    contacts_erase_many,
    privacy_requests_carry_out_pending,
    retention_apply,
)
from tests.factories import ContactFactory, PrivacyRequestFactory, PurposeFactory, grant
from tests.statements import at_most_statements

pytestmark = pytest.mark.django_db(transaction=True)

BATCH = 50
# 20, the proof archive's two statements, the dead letters' three, and the CRM owners named
# on the person's links blanked (one); the notes' delete is one statement for a whole batch
PER_PERSON = 26
# One person alone: two more, the read of the enabled CRM connections each erasure tells
# (issue 14: one statement whatever the number erased; two more, the links read and the
# acknowledgements written, when a CRM is connected), and the notes' delete. A batch shares
# them.
ONE_PERSON = PER_PERSON + 2


def _purposes() -> list[Purpose]:
    return [PurposeFactory(slug=slug, channels=["email", "sms"]) for slug in ("a", "b", "c")]


def _person(number: int, purposes: list[Purpose]) -> Contact:
    """The benchmark's person: identity, email and phone, three grants with personal
    evidence, a preference link, two notes (one held for review)."""
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
    note_add(contact=contact, body="Rappeler après le salon de Lyon.", author=None)
    note_add(contact=contact, body="En arrêt maladie jusqu'en mars.", author=None)
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
    assert ProofArchiveEntry.objects.filter(contact=contact).exists()  # the evidence went there
    assert not contact.consent_states.exclude(status=ConsentStatus.WITHDRAWN).exists()
    assert OutboxEvent.objects.filter(
        contact_public_id=contact.public_id, topic="contact.erased"
    ).exists()
    assert list(TimelineEvent.objects.filter(contact=contact).values_list("kind", flat=True)) == [
        "erased"
    ]
    assert not Note.objects.filter(contact=contact).exists()


def assert_untouched(contact: Contact, email: str) -> None:
    """Nothing of the erasure stayed: no withdrawal, evidence and links kept, not anonymised."""
    contact.refresh_from_db()
    assert contact.status == ContactStatus.ACTIVE
    assert (contact.email, contact.first_name) == (email, "Léa")
    assert set(contact.consent_states.values_list("status", flat=True)) == {"granted"}
    assert not ConsentRecord.objects.filter(contact=contact, action="withdraw").exists()
    assert ConsentEvidence.objects.filter(record__contact=contact).count() == 3
    assert PreferenceToken.objects.filter(contact=contact).exists()
    assert Note.objects.filter(contact=contact).count() == 2
    assert not OutboxEvent.objects.filter(
        contact_public_id=contact.public_id, topic="contact.erased"
    ).exists()


def test_the_erasure_job_costs_at_most_26_queries_per_person(
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


def test_erasing_one_person_costs_at_most_28_statements() -> None:
    # given the benchmark's person, and someone else who must be left alone
    purposes = _purposes()
    person = _person(1, purposes)
    other = _person(2, purposes)

    # when the one erasure path erases the person alone (BEGIN and COMMIT not counted)
    with at_most_statements(ONE_PERSON):
        contact_erase(contact=person, reason="admin", source_kind="admin")

    # then everything of theirs is gone, the ledger still verifies, the other is untouched
    assert_erased(person)
    assert ConsentRecord.objects.filter(contact=person, action="withdraw").count() == 3
    assert_untouched(other, "person2@example.fr")
    assert ledger_verify() == []


def test_erasing_one_person_with_a_request_and_its_export_scrubs_them_within_the_budget() -> None:
    # given the benchmark's person, who asked for their data and then for erasure
    purposes = _purposes()
    person = _person(1, purposes)
    request = _erasure_requested(person)
    request.export_json.save(
        "lea.json", ContentFile(b'{"email": "person1@example.fr"}'), save=False
    )
    export = request.export_json
    PrivacyRequest.objects.filter(pk=request.pk).update(
        details="Je suis Léa Dupont1, effacez tout.", export_json=export.name
    )

    # when the person alone is erased (two statements more: the requests and their notes)
    with at_most_statements(ONE_PERSON + 2):
        contact_erase(contact=person, reason="admin", source_kind="admin")

    # then the request keeps no word of theirs, and the export file is gone
    request.refresh_from_db()
    assert (request.details, request.export_json.name) == ("", "")
    assert not export.storage.exists(export.name)
    assert_erased(person)


@pytest.mark.postgres
def test_a_merge_that_commits_while_the_erasure_waits_is_erased_with_the_person() -> None:
    # given a person, and a merge of another of their contacts into them, not committed yet
    survivor = ContactFactory(email="camille@example.fr")
    merged = ContactFactory(email="c.martin@work.example", first_name="Cam")
    merging, release = threading.Event(), threading.Event()
    outcomes: dict[str, BaseException | None] = {}

    def merge() -> None:
        try:
            with transaction.atomic():
                contact_merge(survivor=survivor, merged=merged, actor="dpo")
                merging.set()
                release.wait(timeout=30)
        finally:
            merging.set()
            connection.close()

    def erase() -> None:
        try:
            merging.wait(timeout=30)
            contact_erase(contact=survivor, reason="admin")
            outcomes["erase"] = None
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            outcomes["erase"] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=merge), threading.Thread(target=erase)]
    for thread in threads:
        thread.start()
    # when the erasure waits for the merge's lock, then the merge commits
    _wait_for_a_lock_wait()
    release.set()
    for thread in threads:
        thread.join(timeout=60)

    # then the contact merged while the erasure waited is erased too
    assert outcomes == {"erase": None}
    merged.refresh_from_db()
    assert (merged.status, merged.first_name) == (ContactStatus.ERASED, "")
    assert Contact.objects.get(pk=survivor.pk).status == ContactStatus.ERASED


def _wait_for_a_lock_wait() -> None:
    """Until another connection waits for a row lock."""
    deadline = time.monotonic() + 30
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the erasure never waited for the merge's lock")


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
    # their grants date from before the question (a grant since would be an answer)
    ConsentState.objects.update(since=asked - timedelta(days=2))
    _unreadable_email(people[4])

    with caplog.at_level(logging.ERROR, logger="privacy.services"):
        asked_now, erased = retention_apply(batch_size=4)

    assert erased == 5
    for contact in people:
        if contact != people[4]:
            assert_erased(contact)
    assert_untouched(people[4], "no-at-sign")
    assert f"silent contact {people[4].pk} could not be erased" in caplog.text
