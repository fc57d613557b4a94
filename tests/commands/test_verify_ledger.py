from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from consent.models import ConsentRecord
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db


def verify() -> str:
    out = StringIO()
    call_command("verify_ledger", stdout=out, stderr=out)
    return out.getvalue()


def tamper(record: ConsentRecord, **values: str) -> None:
    """Rewrite a ledger row behind the ORM's back, as a database superuser could."""
    table = ConsentRecord._meta.db_table
    assignments = ", ".join(f"{column} = %s" for column in values)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")  # triggers off
        # column names come from the test itself, values are parameters
        statement = f"UPDATE {table} SET {assignments} WHERE id = %s"  # noqa: S608
        cursor.execute(statement, [*values.values(), record.id])
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = origin")


@pytest.fixture
def records() -> list[ConsentRecord]:
    contact, purpose = ContactFactory(), PurposeFactory()
    return [
        grant(contact, purpose),
        grant(contact, purpose, channel="sms"),
        grant(contact, purpose, action="withdraw"),
    ]


def test_an_intact_ledger_passes_with_a_summary(records):
    output = verify()

    assert "3 record(s) verified" in output
    assert records[-1].hash[:12] in output


def test_an_empty_ledger_passes():
    assert "0 record(s) verified" in verify()


def test_a_record_altered_behind_the_orms_back_fails_naming_it(records):
    tampered = records[1]
    tamper(tampered, wording="forged")
    errors = StringIO()

    with pytest.raises(CommandError, match=r"1 problem\(s\)") as failure:
        call_command("verify_ledger", stdout=StringIO(), stderr=errors)

    assert failure.value.returncode == 1  # what `manage.py` exits with
    assert f"record {tampered.uuid} (#{tampered.id})" in errors.getvalue()
    assert str(records[0].uuid) not in errors.getvalue()


def test_each_broken_record_is_named(records):
    tamper(records[0], channel="sms")
    tamper(records[2], action="grant")
    errors = StringIO()

    with pytest.raises(CommandError, match=r"2 problem\(s\)"):
        call_command("verify_ledger", stdout=StringIO(), stderr=errors)

    assert str(records[0].uuid) in errors.getvalue()
    assert str(records[2].uuid) in errors.getvalue()
