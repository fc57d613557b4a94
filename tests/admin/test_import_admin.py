"""The admin import page: "Import contacts" → upload → column mapping with a preview → start →
a progress page polling a JSON view, with the rejected rows at the end; gated and audited."""

import re

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from consent.models import ConsentRecord
from contacts.models import Contact, ContactImport
from core.models import AuditAction, AuditEvent
from core.storage import private_storage
from tests.admin.conftest import otp_verified_login
from tests.contacts.imports import LOADED_BY_WORKER, csv_bytes, loaded_by_worker
from tests.factories import PurposeFactory, UserFactory

pytestmark = pytest.mark.django_db

ADD = reverse("admin:contacts_contactimport_add")
LIST = csv_bytes(
    [
        "Courriel;Prénom;Signé le;Notes",
        "ana@example.fr;Ana;2025-03-01;vip",
        "nope;Bo;2025-03-01;",
        "cy@example.fr;Cy;2025-03-02;",
    ],
    delimiter=";",
)


def upload(client: Client, **consent: str):
    file = SimpleUploadedFile("salon.csv", LIST, content_type="text/csv")
    return client.post(ADD, {"step": "upload", "file": file, **consent})


def test_the_contact_list_offers_the_import_to_those_allowed(as_marketer: Client) -> None:
    page = as_marketer.get(reverse("admin:contacts_contact_changelist"))

    assert ADD in page.content.decode()


@LOADED_BY_WORKER
def test_upload_map_start_and_follow_an_import(
    as_marketer: Client, celery_worker, django_capture_on_commit_callbacks
) -> None:
    purpose = PurposeFactory(channels=["email"])

    # when: the marketer uploads the list with its consent
    mapping_page = upload(
        as_marketer,
        purpose=purpose.slug,
        channel="email",
        wording="Oui à la lettre",
        source_reference="Salon 2025",
    )

    # then: the mapping form shows the detected headers, the guesses and a preview
    html = mapping_page.content.decode()
    assert mapping_page.status_code == 200, html
    for header in ("Courriel", "Prénom", "Signé le", "Notes", "ana@example.fr", "vip"):
        assert header in html
    assert re.search(r'<option value="email" selected>', html)
    assert not ContactImport.objects.exists()

    # when: the marketer maps the date column and starts the import
    with loaded_by_worker(django_capture_on_commit_callbacks):
        started = as_marketer.post(
            ADD,
            {
                "step": "mapping",
                "column_0": "email",
                "column_1": "first_name",
                "column_2": "given_at",
                "column_3": "",
            },
        )

    # then: the progress page follows the import, which the worker has loaded
    contact_import = ContactImport.objects.get()
    progress = reverse("admin:contacts_contactimport_progress", args=[contact_import.public_id])
    assert started.status_code == 302 and started["Location"] == progress
    assert contact_import.created_by.username == "marketer-persona"
    assert contact_import.mapping == {
        "Courriel": "email",
        "Prénom": "first_name",
        "Signé le": "given_at",
    }
    assert sorted(Contact.objects.values_list("email", flat=True)) == [
        "ana@example.fr",
        "cy@example.fr",
    ]
    assert ConsentRecord.objects.count() == 2
    page = as_marketer.get(progress).content.decode()
    assert "Rejected rows" in page and "email: Enter a valid email address." in page
    json_url = reverse(
        "admin:contacts_contactimport_progress_json", args=[contact_import.public_id]
    )
    assert as_marketer.get(json_url).json() == {
        "id": str(contact_import.public_id),
        "status": "done",
        "rows": 3,
        "processed": 3,
        "created": 2,
        "updated": 0,
        "consents_recorded": 2,
        "rejected": 1,
        "error": "",
    }
    (event,) = AuditEvent.objects.filter(action=AuditAction.IMPORT_CONTACTS)
    assert event.username == "marketer-persona"
    assert event.details["import"] == str(contact_import.public_id)
    assert event.details["rows"] == 3


def test_a_running_import_page_polls_its_progress_with_our_own_script(as_marketer: Client) -> None:
    upload(as_marketer)
    as_marketer.post(ADD, {"step": "mapping", "column_0": "email", "column_1": "first_name"})
    contact_import = ContactImport.objects.get()  # queued: no worker ran it in this test

    page = as_marketer.get(
        reverse("admin:contacts_contactimport_progress", args=[contact_import.public_id])
    ).content.decode()

    assert "/static/js/import_progress.js" in page
    assert "<progress" in page and 'data-url="' in page


def test_a_consent_without_proof_is_refused_on_the_mapping_page(as_marketer: Client) -> None:
    purpose = PurposeFactory(channels=["email"])
    upload(as_marketer, purpose=purpose.slug, channel="email")

    page = as_marketer.post(
        ADD, {"step": "mapping", "column_0": "email", "column_2": "given_at"}
    ).content.decode()

    assert "purchased lists without proof are refused" in page
    assert not ContactImport.objects.exists()


def test_an_unreadable_file_is_reported_on_the_upload_form(as_marketer: Client) -> None:
    file = SimpleUploadedFile("x.xlsx", b"PK\x03\x04garbage")

    page = as_marketer.post(ADD, {"step": "upload", "file": file}).content.decode()

    assert "This is not a readable XLSX file." in page


def test_staff_without_the_import_permission_cannot_import_or_follow(db: None) -> None:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    otp_verified_login(client, UserFactory(username="intern"))
    contact_import = ContactImport.objects.create(file_sha256="0" * 64, file_name="x.csv")

    assert client.get(ADD).status_code == 403
    assert upload(client).status_code == 403
    json_url = reverse(
        "admin:contacts_contactimport_progress_json", args=[contact_import.public_id]
    )
    assert client.get(json_url).status_code == 403


def test_the_dpo_role_may_import_too(dpo) -> None:
    assert Group.objects.get(name="DPO").permissions.filter(codename="add_contactimport").exists()
    assert dpo.has_perm("contacts.add_contactimport")


def test_a_list_uploaded_again_before_its_mapping_replaces_the_first(as_marketer: Client) -> None:
    upload(as_marketer)
    first = as_marketer.session["contact_import_upload"]["upload"]
    upload(as_marketer)
    second = as_marketer.session["contact_import_upload"]["upload"]

    assert first != second
    assert not private_storage().exists(first) and private_storage().exists(second)
