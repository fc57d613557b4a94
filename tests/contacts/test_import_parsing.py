"""Reading lists: CSV in UTF-8 (with or without BOM) or Windows-1252, `,` or `;`, and XLSX;
headers mapped automatically (French or English) or by a given mapping."""

import io

import pytest
from django.core.exceptions import ValidationError

from contacts.imports import contacts_import
from contacts.models import Contact
from tests.contacts.imports import csv_bytes, rejected, run_import, xlsx_bytes
from tests.factories import InterestFactory

pytestmark = pytest.mark.django_db

LINES = ["email,first_name,last_name,city", "zoe@example.fr,Zoé,Lefèvre,Besançon"]


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [("utf-8", ","), ("utf-8-sig", ";"), ("cp1252", ";"), ("cp1252", ",")],
)
def test_csv_encodings_and_delimiters_are_detected(encoding: str, delimiter: str) -> None:
    done = run_import(csv_bytes(LINES, encoding=encoding, delimiter=delimiter))

    assert (done.status, done.rows, done.created, done.rejected) == ("done", 1, 1, 0)
    assert done.delimiter == delimiter
    contact = Contact.objects.get(email="zoe@example.fr")
    assert (contact.first_name, contact.last_name, contact.city) == ("Zoé", "Lefèvre", "Besançon")


def test_xlsx_is_read_with_numbers_and_dates_as_text() -> None:
    done = run_import(
        xlsx_bytes(
            [
                ["Courriel", "Prénom", "Code postal", "Téléphone"],
                ["Alix@Example.FR", "Alix", 75011, "+33612345678"],
                [None, None, None, None],
                ["not-an-email", "Bob", 1000, None],
            ]
        ),
        name="list.xlsx",
    )

    assert (done.file_format, done.rows, done.created) == ("xlsx", 2, 1)
    contact = Contact.objects.get(email="alix@example.fr")
    assert (contact.first_name, contact.postal_code, contact.phone) == (
        "Alix",
        "75011",
        "+33612345678",
    )
    assert [line for line, _reason in rejected(done)] == [4]


def test_french_headers_map_automatically() -> None:
    InterestFactory(slug="velo")
    done = run_import(
        csv_bytes(
            [
                "Adresse e-mail;Prénom;Nom;Société;Ville;Pays;Centres d'intérêt",
                "lea@example.fr;Léa;Roux;ACME;Lyon;fr;velo",
            ]
        )
    )

    contact = Contact.objects.get(email="lea@example.fr")
    assert (contact.first_name, contact.last_name, contact.company, contact.country) == (
        "Léa",
        "Roux",
        "ACME",
        "FR",
    )
    assert list(contact.interests.values_list("slug", flat=True)) == ["velo"]
    assert done.mapping["Adresse e-mail"] == "email"


def test_a_given_mapping_is_applied_and_other_columns_ignored() -> None:
    done = run_import(
        csv_bytes(["Mail,Who,Notes", "sam@example.fr,Sam,likes cats"]),
        mapping={"Mail": "email", "Who": "first_name", "Notes": ""},
    )

    assert done.mapping == {"Mail": "email", "Who": "first_name"}
    assert Contact.objects.get(email="sam@example.fr").first_name == "Sam"


@pytest.mark.parametrize(
    ("content", "mapping", "field", "message"),
    [
        (b"", None, "file", "empty"),
        (b"name,city\nSam,Lyon\n", None, "mapping", "No column holds the email"),
        (b"email\nsam@example.fr\n", {"Mail": "email"}, "mapping", "no column"),
        (b"email\nsam@example.fr\n", {"email": "shoe_size"}, "mapping", "unknown field"),
        (b"PK\x03\x04not really a workbook", None, "file", "XLSX"),
    ],
)
def test_unusable_files_and_mappings_are_refused_up_front(
    content: bytes, mapping: dict | None, field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        contacts_import(file=io.BytesIO(content), file_name="x.csv", mapping=mapping, queue=False)

    assert message.lower() in " ".join(caught.value.message_dict[field]).lower()
    assert not Contact.objects.exists()


def test_line_numbers_count_the_header_and_multi_line_cells() -> None:
    content = b'email,address_line1\nok@example.fr,"1 rue\nBat. B"\nbroken,x\n'

    done = run_import(content)

    assert rejected(done) == [(4, "email: Enter a valid email address.")]
    assert Contact.objects.get(email="ok@example.fr").address_line1 == "1 rue\nBat. B"
