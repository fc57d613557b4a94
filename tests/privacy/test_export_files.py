"""Export files of a request whose transaction rolled back do not stay on the private storage."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage
from django.db import transaction
from django.utils import timezone
from freezegun import freeze_time

from privacy.models import PrivacyRequest
from privacy.services import privacy_exports_purge, privacy_request_carry_out
from tests.factories import PrivacyRequestFactory

pytestmark = pytest.mark.django_db


class Rollback(Exception):
    pass


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Storage:
    """The export fields' storage, in a folder of this test's own: the sweep sees only it."""
    storage = FileSystemStorage(location=tmp_path)
    for name in ("export_json", "export_archive"):
        monkeypatch.setattr(PrivacyRequest._meta.get_field(name), "storage", storage)
    return storage


def carry_out_then_roll_back(request: PrivacyRequest) -> list[str]:
    """Carry the request out in a transaction that then fails; answer the files it wrote."""
    with pytest.raises(Rollback), transaction.atomic():
        privacy_request_carry_out(request_id=str(request.id))
        request.refresh_from_db()
        names = [request.export_json.name, request.export_archive.name]
        raise Rollback
    return names


def test_a_rolled_back_export_leaves_no_file_once_the_purge_job_runs(storage):
    # given an access request carried out in a transaction that rolled back
    request = PrivacyRequestFactory(type="access", verified=True)
    written = carry_out_then_roll_back(request)
    request.refresh_from_db()
    assert (request.status, request.export_json.name) == ("verified", "")

    # when the purge job runs, later
    with freeze_time(timezone.now() + timedelta(hours=2)):
        privacy_exports_purge()

    # then nothing is left of the files
    assert written and not any(storage.exists(name) for name in written)


def test_the_purge_job_keeps_the_files_of_committed_requests_and_those_being_written(storage):
    # given a committed export, and a file a carry-out still running has just written
    request = PrivacyRequestFactory(type="access", verified=True)
    privacy_request_carry_out(request_id=str(request.id))
    request.refresh_from_db()
    kept = [request.export_json.name, request.export_archive.name]
    in_flight = storage.save("exports/in-flight.json", ContentFile(b"{}"))
    written = [*kept, in_flight]

    # when the job runs within the hour (the committed export is still available)
    with freeze_time(timezone.now() + timedelta(minutes=30)):
        privacy_exports_purge()

    # then every file is still there
    assert all(storage.exists(name) for name in written)

    # and past the hour, only the orphan goes
    with freeze_time(timezone.now() + timedelta(hours=2)):
        privacy_exports_purge()
    assert all(storage.exists(name) for name in kept)
    assert not storage.exists(in_flight)
