"""`manage.py import_contacts FILE [--purpose --channel --wording --source-reference]`."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from consent.models import ConsentRecord
from contacts.models import Contact, ContactImport
from tests.contacts.imports import csv_bytes, xlsx_bytes
from tests.factories import ContactFactory, PurposeFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command("import_contacts", *args, stdout=out)
    return out.getvalue().splitlines()


def test_prints_progress_rejected_rows_and_the_counts_last(tmp_path) -> None:
    ContactFactory(email="known@example.fr", first_name="Old")
    path = tmp_path / "list.csv"
    path.write_bytes(
        csv_bytes(
            [
                "email;first_name",
                "a@example.fr;Ana",
                "bad;Bo",
                "known@example.fr;New",
                "c@example.fr;Cé",
            ],
            delimiter=";",
            encoding="cp1252",
        )
    )

    lines = run(str(path), "--batch-size", "2")

    assert lines == [
        "2/4 rows, 0 consents recorded",
        "4/4 rows, 0 consents recorded",
        "line 3: email: Enter a valid email address.",
        "created 2, updated 1, rejected 1",
    ]
    assert Contact.objects.get(email="c@example.fr").first_name == "Cé"


def test_records_the_declared_consent_from_an_xlsx(tmp_path) -> None:
    purpose = PurposeFactory(channels=["email", "sms"])
    path = tmp_path / "salon.xlsx"
    path.write_bytes(
        xlsx_bytes([["E-mail", "Date consentement"], ["a@example.fr", "01/03/2025 10:00"]])
    )

    lines = run(
        str(path),
        "--purpose",
        purpose.slug,
        "--channel",
        "sms",
        "--wording",
        "J'accepte les SMS",
        "--source-reference",
        "salon 2025",
    )

    assert lines[-1] == "created 1, updated 0, rejected 0"
    record = ConsentRecord.objects.get()
    assert (record.channel, record.wording, record.source_kind) == (
        "sms",
        "J'accepte les SMS",
        "import",
    )
    assert record.source_reference.startswith("salon 2025 (import ")


def test_a_consent_without_its_proof_is_a_command_error(tmp_path) -> None:
    purpose = PurposeFactory(channels=["email"])
    path = tmp_path / "bought.csv"
    path.write_bytes(csv_bytes(["email,given_at", "a@example.fr,2025-03-01"]))

    with pytest.raises(CommandError, match="purchased lists without proof are refused"):
        run(str(path), "--purpose", purpose.slug, "--channel", "email")

    assert not Contact.objects.exists()
    assert not ContactImport.objects.exists()


def test_a_missing_file_is_a_command_error(tmp_path) -> None:
    with pytest.raises(CommandError, match="No such file"):
        run(str(tmp_path / "nope.csv"))
