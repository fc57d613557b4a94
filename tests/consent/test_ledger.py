import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from consent.ledger import ledger_verify
from consent.models import ConsentRecord, ConsentState
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db


def test_grant_writes_record_and_state_in_one_go():
    contact, purpose = ContactFactory(), PurposeFactory()

    record = grant(contact, purpose)

    state = ConsentState.objects.get(contact=contact, purpose=purpose, channel="email")
    assert state.status == "granted" and state.record == record
    assert ledger_verify() == []


def test_records_cannot_be_updated_or_deleted_through_the_orm():
    record = grant(ContactFactory(), PurposeFactory())

    with pytest.raises(ValidationError):
        record.save()
    with pytest.raises(ValidationError):
        record.delete()
    with pytest.raises(ValidationError):
        ConsentRecord.objects.filter(pk=record.pk).update(channel="sms")
    with pytest.raises(ValidationError):
        ConsentRecord.objects.all().delete()


def test_tampering_behind_the_orms_back_is_detected():
    contact, purpose = ContactFactory(), PurposeFactory()
    grant(contact, purpose)
    tampered = grant(contact, purpose, channel="sms")
    grant(contact, purpose, action="withdraw")
    table = ConsentRecord._meta.db_table

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
        cursor.execute(f"UPDATE {table} SET wording = 'forged' WHERE id = %s", [tampered.id])

    problems = ledger_verify()
    assert [p.record for p in problems] == [f"record {tampered.uuid} (#{tampered.id})"]
