"""CSV cells never read as formulas in a spreadsheet (OWASP CSV injection, ASVS 1.2.10)."""

import csv
import io
import zipfile
from datetime import UTC, datetime

import pytest

from core.csvfiles import csv_cell, csv_text
from privacy.exports import personal_data_csv_zip
from tests.factories import ContactFactory

FORMULA_CELLS = {
    "equals": '=HYPERLINK("https://evil.example","Click")',
    "plus": "+cmd|' /C calc'!A0",
    "minus": "-2+3+cmd|' /C calc'!A0",
    "at": "@SUM(1+1)*cmd|' /C calc'!A0",
    "tab": "\t=1+1",
    "carriage return": "\r=1+1",
    "line feed": "\n=1+1",
    "full-width equals": '\uff1dHYPERLINK("https://evil.example")',
    "full-width plus": "\uff0b1+1",
    "full-width minus": "\uff0d1+1",
    "full-width at": "\uff20SUM(1)",
    "small equals": "\ufe661+1",
    "spaces then equals": "   =1+1",
    "no-break space then plus": "\u00a0+1+1",
    "ideographic space then at": "\u3000@SUM(1)",
    "spaces then full-width equals": "  \uff1d1+1",
}


@pytest.mark.parametrize("value", FORMULA_CELLS.values(), ids=FORMULA_CELLS.keys())
def test_a_cell_that_would_start_a_formula_is_prefixed_with_a_quote(value):
    assert csv_cell(value) == "'" + value


@pytest.mark.parametrize(
    "value",
    ["Camille", "camille@example.fr", "a=b", "1-2", "'already quoted", "", "Lyon - centre"],
)
def test_plain_text_is_written_as_it_is(value):
    assert csv_cell(value) == value


def test_a_phone_number_in_e164_stays_machine_readable():
    assert csv_cell("+33612345678") == "+33612345678"
    assert csv_cell("+33612345678+cmd") == "'+33612345678+cmd"


def test_dates_are_iso_8601_and_nothing_is_an_empty_cell():
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    assert csv_cell(moment) == "2026-01-02T03:04:05+00:00"
    assert csv_cell(None) == ""
    assert csv_cell(True) is True and csv_cell(-3) == -3


def test_csv_text_escapes_every_cell_under_a_header():
    text = csv_text([{"name": "=1+1", "city": "Lyon"}, {"name": "Ana", "city": "\uff20x"}])

    assert list(csv.reader(io.StringIO(text))) == [
        ["name", "city"],
        ["'=1+1", "Lyon"],
        ["Ana", "'\uff20x"],
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("value", FORMULA_CELLS.values(), ids=FORMULA_CELLS.keys())
def test_the_portability_archive_never_holds_a_formula(value):
    contact = ContactFactory(first_name=value, company="ACME", phone="+33612345678")

    archive = zipfile.ZipFile(io.BytesIO(personal_data_csv_zip(contact)))

    [row] = csv.DictReader(io.StringIO(archive.read("contact.csv").decode(), newline=""))
    assert row["first_name"] == "'" + value
    assert row["company"] == "ACME"
    assert row["phone"] == "+33612345678"
