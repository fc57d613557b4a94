"""A worker killed in the middle of an erasure batch: the next one finishes it, each exactly once.

Tasks are acknowledged late, so the broker keeps the batch message of a worker that dies; Redis
hands it to another worker once it has been unacknowledged longer than the visibility timeout.
Each request is carried out in one transaction with its status change, so the crash leaves every
person either erased with the request completed, or untouched with the request still to do.
"""

import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from consent.ledger import ledger_verify
from consent.models import ConsentAction, ConsentEvidence, ConsentRecord, SourceKind
from contacts.models import Contact, ContactStatus, TimelineEvent, TimelineKind
from crmsync.models import OutboxEvent
from privacy.models import (
    PrivacyRequest,
    PrivacyRequestEvent,
    PrivacyRequestStatus,
    PrivacyRequestType,
)
from privacy.services import privacy_request_file
from privacy.tasks import carry_out_pending_privacy_requests
from tests.conftest import wait_for
from tests.consent.workers import Workers
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = [pytest.mark.slow, pytest.mark.worker, pytest.mark.postgres]

PEOPLE = 48
# People per erasure batch in the workers: two batches, so the worker dies between them.
BATCH = 25
GRANTS_EACH = 3
# Short, so that the replacement worker may take the dead worker's message within the test.
VISIBILITY_TIMEOUT = 5
# A Redis database for these workers alone (see tests/consent/workers.py).
REDIS_DATABASE = 15


@pytest.fixture
def workers(transactional_db: None) -> Iterator[Workers]:
    """Workers on a queue of this test; they see the rows it commits (hence transactional_db)."""
    pool = Workers(
        queue=f"crash-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        redis_database=REDIS_DATABASE,
        visibility_timeout=VISIBILITY_TIMEOUT,
        environment={"ERASURE_BATCH_SIZE": str(BATCH)},
    )
    try:
        yield pool
    finally:
        pool.close()


def test_erasure_batch_killed_midway_is_finished_by_the_next_worker_exactly_once(
    workers: Workers,
) -> None:
    # given: people with consents and their evidence, each with a verified erasure request
    people = _people_with_consents()
    requests = _verified_erasure_requests(people)

    # when: the worker carrying out the batch is killed in the middle of it
    first = workers.start()
    task_id = workers.send(carry_out_pending_privacy_requests)
    wait_for(lambda: _completed_count() >= 3, timeout=45, interval=0.02)
    workers.kill(first)

    # then: some requests are done and the others untouched, none half-done
    done_before_crash = dict(
        PrivacyRequest.objects.filter(status=PrivacyRequestStatus.COMPLETED).values_list(
            "pk", "completed_at"
        )
    )
    assert 0 < len(done_before_crash) < PEOPLE
    _assert_each_person_erased_or_untouched(requests)
    assert ledger_verify() == []
    handed_out_at = workers.unacknowledged_since(task_id)
    assert handed_out_at is not None, "the broker forgot the dead worker's message"

    # when: another worker starts once the message's visibility timeout is over. kombu looks for
    # such messages when a worker starts consuming, then every unacked_restore_interval x
    # unacked_restore_throttle (10 x 10 s): one started sooner would take it ~100 s later.
    time.sleep(max(handed_out_at + VISIBILITY_TIMEOUT + 0.5 - time.time(), 0))
    workers.start()
    wait_for(lambda: _completed_count() == PEOPLE, timeout=45)
    wait_for(lambda: workers.unacknowledged_since(task_id) is None, timeout=10)

    # then: every request was carried out once, and what the dead worker did was not redone
    completions = Counter(
        PrivacyRequestEvent.objects.filter(status=PrivacyRequestStatus.COMPLETED).values_list(
            "request_id", flat=True
        )
    )
    assert completions == Counter({request.pk: 1 for request in requests})
    for pk, completed_at in done_before_crash.items():
        assert PrivacyRequest.objects.get(pk=pk).completed_at == completed_at
    _assert_everyone_erased_once(people)
    assert workers.queued() == 0


def _people_with_consents() -> list[Contact]:
    by_email = PurposeFactory(channels=["email", "sms"])
    by_post = PurposeFactory(channels=["email"])
    people = ContactFactory.create_batch(PEOPLE)
    for person in people:
        grant(person, by_email, "email")
        grant(person, by_email, "sms")
        grant(person, by_post, "email")
    return people


def _verified_erasure_requests(people: list[Contact]) -> list[PrivacyRequest]:
    """Verified by the DPO in bulk, without the task per request that verifying one queues:
    the batch job alone carries them out, as after a lost message."""
    requests = [
        privacy_request_file(
            contact=person, type=PrivacyRequestType.ERASURE, source_kind=SourceKind.API
        )
        for person in people
    ]
    PrivacyRequest.objects.filter(pk__in=[request.pk for request in requests]).update(
        status=PrivacyRequestStatus.VERIFIED, handled_by="dpo"
    )
    PrivacyRequestEvent.objects.bulk_create(
        PrivacyRequestEvent(request=request, status=PrivacyRequestStatus.VERIFIED, by="dpo")
        for request in requests
    )
    return requests


def _completed_count() -> int:
    return PrivacyRequest.objects.filter(status=PrivacyRequestStatus.COMPLETED).count()


def _assert_each_person_erased_or_untouched(requests: list[PrivacyRequest]) -> None:
    for request in PrivacyRequest.objects.select_related("contact").filter(
        pk__in=[request.pk for request in requests]
    ):
        person = request.contact
        evidence = ConsentEvidence.objects.filter(record__contact=person).count()
        withdrawals = _withdrawals(person)
        if request.status == PrivacyRequestStatus.COMPLETED:
            assert (person.status, evidence, withdrawals) == (ContactStatus.ERASED, 0, GRANTS_EACH)
            assert person.email.endswith("@erased.invalid")
        else:
            assert request.status == PrivacyRequestStatus.VERIFIED
            assert (person.status, evidence, withdrawals) == (ContactStatus.ACTIVE, GRANTS_EACH, 0)
            assert person.email.endswith("@example.fr")


def _assert_everyone_erased_once(people: list[Contact]) -> None:
    for person in Contact.objects.filter(pk__in=[person.pk for person in people]):
        assert person.status == ContactStatus.ERASED
        assert list(person.timeline.values_list("kind", flat=True)) == [TimelineKind.ERASED]
        assert _withdrawals(person) == GRANTS_EACH
        erased_events = OutboxEvent.objects.filter(
            contact_public_id=person.public_id, topic="contact.erased"
        )
        assert erased_events.count() == 1
    assert not ConsentEvidence.objects.exists()
    assert not TimelineEvent.objects.exclude(kind=TimelineKind.ERASED).exists()
    assert ledger_verify() == []


def _withdrawals(person: Contact) -> int:
    return ConsentRecord.objects.filter(contact=person, action=ConsentAction.WITHDRAW).count()
