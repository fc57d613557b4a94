from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from consent.ledger import ledger_seal
from consent.models import ConsentRecord
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db


def verify(*args: str) -> str:
    out = StringIO()
    call_command("verify_ledger", *args, stdout=out, stderr=out)
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

    assert "3 record(s) verified, 0 seal(s), no seal yet, 3 unsealed" in output


@pytest.mark.django_db(transaction=True)
def test_the_summary_names_the_last_seal_head_on_its_last_line(records):
    [seal] = ledger_seal()

    last_line = verify().strip().splitlines()[-1]

    assert last_line == (
        f"Consent ledger intact: 3 record(s) verified, 1 seal(s), last seal "
        f"{seal.number}:{seal.seal_hash}."
    )


@pytest.mark.django_db(transaction=True)
def test_a_head_kept_outside_is_checked(records):
    [seal] = ledger_seal()
    errors = StringIO()

    assert "intact" in verify("--head", f"{seal.number}:{seal.seal_hash}")
    with pytest.raises(CommandError, match=r"1 problem\(s\)") as failure:
        call_command("verify_ledger", "--head", f"{seal.number + 1}:{'0' * 64}", stderr=errors)

    assert failure.value.returncode == 1
    assert f"seal head #{seal.number + 1}: is missing from the database" in errors.getvalue()


@pytest.mark.django_db(transaction=True)
def test_a_tampered_seal_fails_the_check(records):
    [seal] = ledger_seal()
    tamper_seal = "UPDATE consent_ledgerseal SET record_count = 2 WHERE id = %s"
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(tamper_seal, [seal.id])
    errors = StringIO()

    with pytest.raises(CommandError, match="FAILED"):
        call_command("verify_ledger", stdout=StringIO(), stderr=errors)

    assert "content does not match its seal hash" in errors.getvalue()


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
