"""Removing an erased person's ledger records at the end of their proof period (issue 12,
point 5): the removal leaves tombstones and a signed `strip` seal, and what remains verifies;
a removal without them, or with forged ones, shows as tampering.

Sealing reads what other transactions committed, so these tests commit their writes.
"""

from datetime import date
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from freezegun import freeze_time

from consent.ledger import (
    STRIP_SETTING,
    _Tally,
    ledger_seal,
    ledger_strip,
    ledger_verify,
    seal_build,
    seal_key_id,
    tombstone_digest,
)
from consent.models import ConsentRecord, ConsentState, LedgerSeal, LedgerTombstone, SealKind
from privacy.services import contact_erase
from tests.consent.test_ledger_seals import (
    ON_POSTGRES,
    OTHER_KEY,
    delete_record,
    raw,
    reasons,
)
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stripped() -> dict[str, Any]:
    """Anne erased, then her records stripped; Bruno's records kept. All sealed."""
    purpose = PurposeFactory(channels=["email", "sms"])
    anne, bruno = ContactFactory(), ContactFactory()
    with freeze_time("2026-01-10T10:00:00Z"):
        grant(anne, purpose)
        kept = [grant(bruno, purpose), grant(bruno, purpose, channel="sms")]
        grant(anne, purpose, channel="sms")
        contact_erase(contact=anne, reason="erasure")
        ledger_seal()
    anne_records = list(ConsentRecord.objects.filter(contact=anne).order_by("id"))
    with freeze_time("2031-01-11T03:00:00Z"):
        assert ledger_strip(contact_ids=[anne.pk]) == [anne.pk]
    assert ledger_verify() == []
    return {"anne": anne, "bruno": bruno, "gone": anne_records, "kept": kept, "purpose": purpose}


def test_the_job_s_removal_leaves_tombstones_and_a_strip_seal_and_verifies(stripped):
    anne, gone = stripped["anne"], stripped["gone"]

    assert not ConsentRecord.objects.filter(contact=anne).exists()
    assert not ConsentState.objects.filter(contact=anne).exists()
    tombstones = list(LedgerTombstone.objects.order_by("record_id"))
    assert [(t.record_id, t.hash, t.contact_seq) for t in tombstones] == [
        (r.id, r.hash, r.contact_seq) for r in gone
    ]
    strip = LedgerSeal.objects.get(kind=SealKind.STRIP)
    assert strip.record_count == len(gone) == 4  # two grants and the erasure's two withdrawals
    assert {t.seal_number for t in tombstones} == {strip.number}
    assert ConsentRecord.objects.filter(contact=stripped["bruno"]).count() == 2


def test_a_second_removal_of_the_same_people_does_nothing(stripped):
    seals = LedgerSeal.objects.count()

    assert ledger_strip(contact_ids=[stripped["anne"].pk]) == []

    assert LedgerSeal.objects.count() == seals
    assert ledger_verify() == []


def test_records_written_after_a_removal_are_sealed_and_verify(stripped):
    grant(stripped["bruno"], stripped["purpose"], action="withdraw", evidence=None)
    ledger_seal()

    assert ledger_verify() == []


def test_a_person_with_a_record_not_sealed_yet_waits_for_a_later_run() -> None:
    purpose = PurposeFactory()
    anne = ContactFactory()
    grant(anne, purpose)
    ledger_seal()
    contact_erase(contact=anne, reason="erasure")  # its withdrawal is not sealed yet

    assert ledger_strip(contact_ids=[anne.pk]) == []
    assert ConsentRecord.objects.filter(contact=anne).count() == 2

    ledger_seal()
    assert ledger_strip(contact_ids=[anne.pk]) == [anne.pk]
    assert ledger_verify() == []


def test_deleting_a_record_without_the_job_is_detected(stripped):
    delete_record(stripped["kept"][0])

    problems = reasons(ledger_verify())

    assert any("sealed 6 record(s), found 5 (records deleted or inserted)" in p for p in problems)


def _forge_tombstone(record: ConsentRecord, seal_number: int) -> None:
    record = ConsentRecord.objects.get(pk=record.pk)  # with its sealing key
    raw(
        "INSERT INTO consent_ledgertombstone (record_id, contact_id, contact_seq, hash_version, "
        "xact, period, hash, seal_number) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        [
            record.id,
            record.contact_id,
            record.contact_seq,
            record.hash_version,
            record.xact,
            date(2026, 1, 1),
            record.hash,
            seal_number,
        ],
    )


def test_a_tombstone_without_a_strip_seal_is_detected(stripped):
    # given Bruno's last record removed the way the job does, but without its seal
    record = stripped["kept"][1]
    records_seal = LedgerSeal.objects.filter(kind=SealKind.RECORDS).first()
    assert records_seal is not None
    _forge_tombstone(record, seal_number=records_seal.number)
    delete_record(record)

    assert reasons(ledger_verify()) == [
        f"tombstone of record #{record.id}: removed without a signed strip seal "
        f"(seal #{records_seal.number})"
    ]


def test_a_tombstone_added_under_the_real_strip_seal_is_detected(stripped):
    record = stripped["kept"][1]
    strip = LedgerSeal.objects.get(kind=SealKind.STRIP)
    _forge_tombstone(record, seal_number=strip.number)
    delete_record(record)

    assert reasons(ledger_verify()) == [
        f"seal #{strip.number} (Strip (erased people's records removed) 2031-01): removed 4 "
        "record(s), 5 tombstone(s) found"
    ]


def test_a_strip_seal_forged_without_the_key_is_detected(stripped):
    # given Bruno's records removed with tombstones and a strip seal signed with another key
    records = [ConsentRecord.objects.get(pk=record.pk) for record in stripped["kept"]]
    previous = LedgerSeal.objects.order_by("-number").first()
    assert previous is not None
    tally = _Tally()
    for record in records:
        period = date(2026, 1, 1)
        tally.add(
            record.id,
            tombstone_digest(
                record.id,
                record.contact_id,
                record.contact_seq,
                record.hash_version,
                record.xact,
                period,
                record.hash,
            ),
        )
    forged = seal_build(
        previous=previous,
        kind=SealKind.STRIP,
        period=date(2031, 1, 1),
        key_from=previous.key_to,
        key_to=previous.key_to,
        tally=tally,
        sealed_at=previous.sealed_at,
        key=OTHER_KEY,
    )
    forged.save()
    for record in records:
        _forge_tombstone(record, seal_number=forged.number)
    for record in reversed(records):
        delete_record(record)

    assert reasons(ledger_verify()) == [
        f"seal #{forged.number} (Strip (erased people's records removed) 2031-01): signed with "
        f"key {seal_key_id(OTHER_KEY)}, not with LEDGER_SEAL_KEY ({seal_key_id()})"
    ]


def test_tombstones_cannot_be_changed_or_deleted_through_the_orm(stripped):
    tombstone = LedgerTombstone.objects.first()
    assert tombstone is not None

    with pytest.raises(ValidationError):
        LedgerTombstone.objects.filter(pk=tombstone.pk).update(hash="0" * 64)
    with pytest.raises(ValidationError):
        tombstone.delete()


@ON_POSTGRES
def test_the_database_refuses_a_record_delete_outside_the_job(stripped):
    record = stripped["kept"][0]

    # without the job's setting
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM consent_consentrecord WHERE id = %s", [record.id])
    # with the setting, but no tombstone for the record
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT set_config(%s, 'on', true)", [STRIP_SETTING])
        cursor.execute("DELETE FROM consent_consentrecord WHERE id = %s", [record.id])

    assert ConsentRecord.objects.filter(pk=record.pk).exists()


@ON_POSTGRES
def test_the_database_refuses_to_change_or_delete_a_tombstone(stripped):
    tombstone = LedgerTombstone.objects.first()
    assert tombstone is not None

    for statement in (
        "UPDATE consent_ledgertombstone SET hash = 'x' WHERE id = %s",
        "DELETE FROM consent_ledgertombstone WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [tombstone.pk])
