"""An import survives what a worker meets: a transient database error (deadlock, lost
connection) leaves it running with its file, resumed by the task's retry; and an upload left
in the admin without its mapping is deleted after a day."""

import io
import os
import time
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

import contacts.imports
from contacts.imports import contact_import_run, contacts_import, import_upload_preview
from contacts.models import Contact, ContactImport
from contacts.tasks import purge_import_uploads, run_contact_import
from core.storage import private_storage
from tests.contacts.imports import csv_bytes

pytestmark = pytest.mark.django_db

LINES = ["email"] + [f"p{n}@example.fr" for n in range(9)]


def _queued() -> ContactImport:
    return contacts_import(file=io.BytesIO(csv_bytes(LINES)), file_name="l.csv", queue=False)


@pytest.fixture
def retried_in_process(monkeypatch):
    """Retries of a task applied in-process run at once, in turn (Celery applies the retry's
    signature itself when eager exceptions are not propagated)."""
    monkeypatch.setitem(run_contact_import.app.conf, "task_eager_propagates", False)


def _deadlock_in_batch(monkeypatch, number: int, times: int = 1) -> None:
    """The `number`-th batch meets a deadlock, `times` times."""
    load_rows = contacts.imports._load_rows
    calls = {"batch": 0, "failed": 0}

    def load(contact_import, plan, batch):
        calls["batch"] += 1
        if calls["batch"] >= number and calls["failed"] < times:
            calls["failed"] += 1
            raise OperationalError("deadlock detected")
        return load_rows(contact_import, plan, batch)

    monkeypatch.setattr(contacts.imports, "_load_rows", load)


def test_a_deadlock_leaves_the_import_running_with_its_file_and_a_new_run_resumes_it(
    monkeypatch,
) -> None:
    contact_import = _queued()
    _deadlock_in_batch(monkeypatch, number=2)

    with pytest.raises(OperationalError):
        contact_import_run(contact_import_id=contact_import.pk, batch_size=3)

    halfway = ContactImport.objects.get(pk=contact_import.pk)
    assert (halfway.status, halfway.position, halfway.error) == ("running", 3, "")
    assert halfway.file and halfway.file.storage.exists(halfway.file.name)

    done = contact_import_run(contact_import_id=contact_import.pk, batch_size=3)

    assert (done.status, done.processed, done.created) == ("done", 9, 9)
    assert Contact.objects.count() == 9


def test_the_task_retries_a_transient_error_and_finishes_the_import(
    monkeypatch, retried_in_process
) -> None:
    contact_import = _queued()
    _deadlock_in_batch(monkeypatch, number=1, times=2)

    result = run_contact_import.apply(args=[contact_import.pk, 3])

    assert result.get() == 9
    assert ContactImport.objects.get(pk=contact_import.pk).status == "done"


def test_the_task_marks_the_import_failed_after_its_last_retry(
    monkeypatch, retried_in_process
) -> None:
    contact_import = _queued()
    _deadlock_in_batch(monkeypatch, number=1, times=100)

    result = run_contact_import.apply(args=[contact_import.pk, 3])

    assert isinstance(result.result, OperationalError)
    failed = ContactImport.objects.get(pk=contact_import.pk)
    assert failed.status == "failed" and "deadlock detected" in failed.error
    assert not failed.file


def test_uploads_left_without_a_mapping_are_deleted_after_a_day(settings) -> None:
    settings.IMPORT_UPLOAD_TTL = timedelta(hours=24)
    storage = private_storage()
    old = import_upload_preview(file=io.BytesIO(csv_bytes(LINES)), file_name="old.csv").upload
    fresh = import_upload_preview(file=io.BytesIO(csv_bytes(LINES)), file_name="new.csv").upload
    two_days_ago = time.time() - 2 * 86400
    os.utime(storage.path(old), (two_days_ago, two_days_ago))

    assert purge_import_uploads.apply().get() == 1

    assert not storage.exists(old) and storage.exists(fresh)
    # nothing older left: a second pass deletes nothing
    assert contacts.imports.import_uploads_purge(now=timezone.now()) == 0
