"""`POST /api/v1/imports/` (202, loaded by the worker) and `GET /api/v1/imports/{id}/`."""

import json
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from consent.models import ConsentRecord
from contacts.models import Contact, ContactImport
from tests.contacts.imports import LOADED_BY_WORKER, csv_bytes, loaded_by_worker
from tests.factories import PurposeFactory

pytestmark = pytest.mark.django_db

LIST = csv_bytes(
    ["Courriel;Prénom;Date", "a@example.fr;Ana;2025-03-01", "oops;Bo;2025-03-01"], delimiter=";"
)


def upload(content: bytes = LIST, name: str = "list.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


@pytest.fixture
def importer(api):
    return api(scopes=["imports:write"])


@LOADED_BY_WORKER
def test_an_upload_is_accepted_then_loaded_and_followed(
    importer, celery_worker, django_capture_on_commit_callbacks
) -> None:
    purpose = PurposeFactory(channels=["email"])
    consent = {
        "purpose": purpose.slug,
        "channel": "email",
        "wording": "Oui à la lettre",
        "source_reference": "salon 2025",
        "given_at_column": "Date",
    }

    with loaded_by_worker(django_capture_on_commit_callbacks):
        response = importer.post(
            "/api/v1/imports/",
            {"file": upload(), "consent": json.dumps(consent)},
            format="multipart",
        )

    assert response.status_code == 202, response.content
    assert set(response.json()) == {"id", "status"}
    assert response.json()["status"] == "queued"
    progress = importer.get(f"/api/v1/imports/{response.json()['id']}/")
    assert progress.status_code == 200
    assert progress.json() == {
        "id": response.json()["id"],
        "status": "done",
        "rows": 2,
        "processed": 2,
        "created": 1,
        "updated": 0,
        "consents_recorded": 1,
        "rejected": [{"line": 3, "reason": "email: Enter a valid email address."}],
    }
    assert Contact.objects.get().first_name == "Ana"
    assert ConsentRecord.objects.get().source_kind == "import"
    assert ContactImport.objects.get().api_client == importer.record


@LOADED_BY_WORKER
def test_a_mapping_is_given_as_json(
    importer, celery_worker, django_capture_on_commit_callbacks
) -> None:
    with loaded_by_worker(django_capture_on_commit_callbacks):
        response = importer.post(
            "/api/v1/imports/",
            {
                "file": upload(csv_bytes(["who,mail", "Zoé,z@example.fr"])),
                "mapping": json.dumps({"who": "first_name", "mail": "email"}),
            },
            format="multipart",
        )

    assert response.status_code == 202
    assert Contact.objects.get(email="z@example.fr").first_name == "Zoé"


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({}, "file", "No file was submitted."),
        ({"mapping": "not json"}, "mapping", "Value must be valid JSON."),
        ({"mapping": json.dumps(["email"])}, "mapping", "Give a JSON object {column: field}."),
        ({"mapping": json.dumps({"Mail": "email"})}, "mapping", "There is no column “Mail”"),
        (
            {"consent": json.dumps({"purpose": "newsletter", "channel": "email"})},
            "consent",
            "Unknown purpose",
        ),
    ],
)
def test_bad_uploads_are_a_400_naming_the_field(importer, data, field, message) -> None:
    data = {"file": upload(), **data} if field != "file" else data

    response = importer.post("/api/v1/imports/", data, format="multipart")

    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()[field])
    assert not ContactImport.objects.exists()


def test_a_purchased_list_without_proof_is_refused(importer) -> None:
    purpose = PurposeFactory(channels=["email"])
    consent = {"purpose": purpose.slug, "channel": "email", "given_at_column": "Date"}

    response = importer.post(
        "/api/v1/imports/", {"file": upload(), "consent": json.dumps(consent)}, format="multipart"
    )

    assert response.status_code == 400
    assert "purchased lists without proof are refused" in response.json()["consent"][0]
    assert not Contact.objects.exists()


def test_imports_need_the_imports_write_scope(api) -> None:
    other = api(scopes=["contacts:write", "contacts:read"])

    posted = other.post("/api/v1/imports/", {"file": upload()}, format="multipart")
    read = other.get(f"/api/v1/imports/{uuid.uuid4()}/")

    assert (posted.status_code, read.status_code) == (403, 403)
    assert "imports:write" in posted.json()["detail"]
    assert not ContactImport.objects.exists()


def test_only_the_client_that_created_an_import_may_read_it(api, importer) -> None:
    response = importer.post("/api/v1/imports/", {"file": upload()}, format="multipart")
    other = api(scopes=["imports:write"])

    assert other.get(f"/api/v1/imports/{response.json()['id']}/").status_code == 404
    assert importer.get(f"/api/v1/imports/{response.json()['id']}/").status_code == 200
    assert importer.get(f"/api/v1/imports/{uuid.uuid4()}/").status_code == 404


def test_the_consent_may_be_declared_as_plain_form_fields(importer) -> None:
    purpose = PurposeFactory(channels=["email"])

    response = importer.post(
        "/api/v1/imports/",
        {
            "file": upload(),
            "purpose": purpose.slug,
            "channel": "email",
            "wording": "Oui",
            "source_reference": "salon",
            "given_at_column": "Date",
        },
        format="multipart",
    )

    assert response.status_code == 202, response.content
    assert ContactImport.objects.get().consent["given_at_column"] == "Date"
