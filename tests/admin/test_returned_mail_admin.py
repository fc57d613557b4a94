"""The contacts admin's "Upload returned mail" page and `manage.py returned_mail`: each valid
line makes that postal address undeliverable with its REFLEX reason; malformed lines are
listed with their line number; the upload is audited."""

from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from contacts.models import ContactStatus, PostalDeliverability, TimelineKind
from core.models import AuditAction, AuditEvent
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

PAGE = reverse("admin:contacts_contact_returned_mail")


def returned_file(lines: list[str], delimiter: str = ";") -> bytes:
    return "\n".join(line.replace(";", delimiter) for line in lines).encode("cp1252")


def test_the_contact_list_links_to_the_returned_mail_upload(as_marketer: Client) -> None:
    page = as_marketer.get(reverse("admin:contacts_contact_changelist"))
    assert PAGE in page.content.decode()


def test_an_uploaded_file_marks_each_named_address_returned_and_lists_bad_lines(
    as_marketer: Client,
) -> None:
    ana, bo = ContactFactory(), ContactFactory()
    erased = ContactFactory(status=ContactStatus.ERASED)
    content = returned_file(
        [
            "public_id;reason",
            f"{ana.public_id};N'habite pas à l'adresse indiquée",
            f"{bo.public_id};not_claimed",
            f"{erased.public_id};refused",
            f"{ana.public_id};lost at sea",
            ";refused",
        ]
    )

    response = as_marketer.post(
        PAGE,
        {"file": SimpleUploadedFile("retours.csv", content, "text/csv"), "campaign": "mailing-9"},
    )

    assert response.status_code == 200
    text = response.content.decode()
    assert "Applied: 2; unknown or erased contacts: 1; rejected lines: 2." in text
    assert "<td>5</td><td>Unknown reason: lost at sea</td>" in text
    assert "<td>6</td><td>No contact named.</td>" in text
    ana.refresh_from_db()
    bo.refresh_from_db()
    assert (ana.postal_deliverability, ana.postal_undeliverable_reason) == (
        PostalDeliverability.RETURNED,
        "unknown_at_address",
    )
    assert bo.postal_undeliverable_reason == "not_claimed"
    assert ana.timeline.get(kind=TimelineKind.MAIL_RETURNED).data["campaign"] == "mailing-9"
    (event,) = AuditEvent.objects.filter(action=AuditAction.RETURNED_MAIL)
    assert event.details["applied"] == 2


def test_a_file_without_the_needed_columns_changes_nothing(as_marketer: Client) -> None:
    ana = ContactFactory()
    content = returned_file(["who;why", f"{ana.public_id};refused"])

    response = as_marketer.post(PAGE, {"file": SimpleUploadedFile("r.csv", content, "text/csv")})

    assert "needs a `public_id`" in response.content.decode()
    ana.refresh_from_db()
    assert ana.postal_deliverability == PostalDeliverability.DELIVERABLE


def test_the_page_is_for_staff_who_may_change_contacts(client: Client) -> None:
    response = client.get(PAGE)
    assert response.status_code == 302  # to the login page


def test_the_command_applies_a_file_by_email_and_prints_the_counts(tmp_path) -> None:
    ana = ContactFactory()
    path = tmp_path / "retours.csv"
    path.write_bytes(returned_file(["email,reason", f"{ana.email},Refused", "x,?"], ","))
    out = StringIO()

    call_command("returned_mail", str(path), stdout=out)

    lines = out.getvalue().strip().splitlines()
    assert lines[-1] == "applied 1, unknown 0, rejected 1"
    assert lines[0] == "line 3: Unknown reason: ?"
    ana.refresh_from_db()
    assert ana.postal_undeliverable_reason == "refused"
