"""A worker killed in the middle of an import: the next one resumes it where it stopped.

Each batch commits its contacts, consents, rejected rows, counters and resume position in one
transaction; the task is acknowledged late, so Redis hands the dead worker's message to the
next worker, which starts again from the position: nothing lost, nothing written twice.
"""

import io
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from config.celery import app
from consent.ledger import ledger_verify
from consent.models import ConsentRecord
from contacts.imports import contacts_import
from contacts.models import Contact, ContactImport, ImportRejection, TimelineEvent
from contacts.tasks import run_contact_import
from crmsync.models import OutboxEvent
from tests.conftest import wait_for
from tests.consent.workers import Workers
from tests.contacts.imports import csv_bytes
from tests.factories import PurposeFactory

pytestmark = [pytest.mark.slow, pytest.mark.worker, pytest.mark.postgres]

ROWS = 400
BATCH = 20
BAD_LINES = {52, 203, 398}  # line numbers (the header is line 1)
VISIBILITY_TIMEOUT = 5
# A Redis database for these workers alone (see tests/consent/workers.py).
REDIS_DATABASE = 12


@pytest.fixture
def workers(transactional_db: None) -> Iterator[Workers]:
    pool = Workers(
        queue=f"import-crash-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        redis_database=REDIS_DATABASE,
        visibility_timeout=VISIBILITY_TIMEOUT,
    )
    try:
        yield pool
    finally:
        pool.close()


def _list() -> bytes:
    lines = ["email,first_name,consent_date"]
    for line in range(2, ROWS + 2):
        email = "broken" if line in BAD_LINES else f"person{line}@example.fr"
        lines.append(f"{email},P{line},2025-03-01")
    return csv_bytes(lines)


def _position(pk: int) -> int:
    return ContactImport.objects.get(pk=pk).position


def test_an_import_killed_midway_is_resumed_by_the_next_worker_exactly_once(
    workers: Workers,
) -> None:
    # given: a list of 400 rows with one consent each, three of them bad
    purpose = PurposeFactory(channels=["email"])
    contact_import = contacts_import(
        file=io.BytesIO(_list()),
        file_name="list.csv",
        consent={
            "purpose": purpose.slug,
            "channel": "email",
            "wording": "Oui à la lettre",
            "source_reference": "salon 2025",
            "given_at_column": "consent_date",
        },
        queue=False,
    )

    # when: the worker loading it is killed after a few batches
    first = workers.start()
    with app.connection_for_write(workers.broker_url) as broker:
        task_id = run_contact_import.apply_async(
            args=(contact_import.pk,),
            kwargs={"batch_size": BATCH},
            queue=workers.queue,
            connection=broker,
        ).id
    wait_for(lambda: _position(contact_import.pk) >= 3 * BATCH, timeout=60, interval=0.02)
    workers.kill(first)

    # then: it stopped between two batches, with exactly those batches written
    halfway = ContactImport.objects.get(pk=contact_import.pk)
    assert halfway.status == "running"
    assert 0 < halfway.position < ROWS and halfway.position % BATCH == 0
    assert Contact.objects.count() == halfway.created == halfway.consents_recorded
    assert halfway.created + halfway.rejected == halfway.position
    handed_out_at = workers.unacknowledged_since(task_id)
    assert handed_out_at is not None, "the broker forgot the dead worker's message"

    # when: another worker starts once the message's visibility timeout is over
    time.sleep(max(handed_out_at + VISIBILITY_TIMEOUT + 0.5 - time.time(), 0))
    workers.start()
    wait_for(lambda: ContactImport.objects.get(pk=contact_import.pk).status == "done", timeout=120)
    wait_for(lambda: workers.unacknowledged_since(task_id) is None, timeout=10)

    # then: every row was loaded once, and the final counts and the ledger are exact
    done = ContactImport.objects.get(pk=contact_import.pk)
    good = ROWS - len(BAD_LINES)
    assert (done.processed, done.created, done.updated, done.consents_recorded) == (
        ROWS,
        good,
        0,
        good,
    )
    assert sorted(ImportRejection.objects.values_list("line", flat=True)) == sorted(BAD_LINES)
    assert Contact.objects.count() == good
    grants = Counter(ConsentRecord.objects.values_list("contact_id", flat=True))
    assert len(grants) == good and set(grants.values()) == {1}
    created_events = Counter(
        TimelineEvent.objects.filter(kind="created").values_list("contact_id", flat=True)
    )
    assert len(created_events) == good and set(created_events.values()) == {1}
    assert OutboxEvent.objects.filter(topic="contact.created").count() == good
    assert OutboxEvent.objects.filter(topic="consent.recorded").count() == good
    assert ledger_verify() == []
    assert workers.queued() == 0
