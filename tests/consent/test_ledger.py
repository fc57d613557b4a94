import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.forms.models import model_to_dict

from consent.ledger import GENESIS_HASH, evidence_digest, ledger_verify
from consent.models import ConsentEvidence, ConsentRecord, ConsentState
from consent.services import Evidence
from contacts.models import Contact
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
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # a database superuser can switch triggers off: only the hash chain still tells
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            "UPDATE consent_consentrecord SET wording = 'forged' WHERE id = %s", [tampered.id]
        )
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = origin")

    problems = ledger_verify()
    assert [p.record for p in problems] == [f"record {tampered.uuid} (#{tampered.id})"]


@pytest.mark.postgres
def test_database_trigger_refuses_updates_and_deletes():
    record = grant(ContactFactory(), PurposeFactory())
    for statement in (
        "UPDATE consent_consentrecord SET wording = 'x' WHERE id = %s",
        "DELETE FROM consent_consentrecord WHERE id = %s",
    ):
        with (
            pytest.raises(Exception, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [record.id])


def test_ip_and_user_agent_are_kept_apart_from_the_chained_record():
    record = grant(ContactFactory(), PurposeFactory())

    evidence = ConsentEvidence.objects.get(record=record)
    assert (evidence.ip, evidence.user_agent) == ("203.0.113.7", "Mozilla/5.0 (test)")
    chained_values = " ".join(str(value) for value in model_to_dict(record).values())
    assert "203.0.113.7" not in chained_values and "Mozilla" not in chained_values
    assert record.evidence_digest == evidence_digest(evidence)


def test_record_without_personal_evidence_has_no_digest_and_no_evidence_row():
    record = grant(
        ContactFactory(),
        PurposeFactory(),
        evidence=Evidence(wording="J'accepte.", unticked_by_default=True),
    )

    assert record.evidence_digest == ""
    assert not ConsentEvidence.objects.exists()


def test_erasing_personal_evidence_keeps_the_chain_valid():
    contact, purpose = ContactFactory(), PurposeFactory()
    first = grant(contact, purpose)
    grant(contact, purpose, channel="sms")

    # what erasure does: remove the personal evidence, never touch a ledger row
    ConsentEvidence.objects.filter(record=first).delete()

    assert ledger_verify() == []
    assert ConsentRecord.objects.get(pk=first.pk).evidence_digest == first.evidence_digest


def test_swapped_personal_evidence_is_detected():
    contact, purpose = ContactFactory(), PurposeFactory()
    record = grant(contact, purpose)
    ConsentEvidence.objects.filter(record=record).update(ip="198.51.100.1")

    problems = ledger_verify()

    assert [p.reason for p in problems] == ["personal evidence does not match its digest"]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2001:0DB8:0000:0000::0007", "2001:db8::7"),
        ("::FFFF:192.0.2.1", "::ffff:192.0.2.1"),
    ],
)
def test_ip_evidence_written_in_any_form_matches_its_digest(given, stored):
    record = grant(
        ContactFactory(),
        PurposeFactory(),
        evidence=Evidence(wording="J'accepte.", unticked_by_default=True, ip=given),
    )

    assert ConsentEvidence.objects.get(record=record).ip == stored
    assert ledger_verify() == []


def test_removed_tail_record_is_detected_by_the_ledger_head():
    contact, purpose = ContactFactory(), PurposeFactory()
    grant(contact, purpose)
    last = grant(contact, purpose, channel="sms")

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("DELETE FROM consent_consentevidence WHERE record_id = %s", [last.id])
        cursor.execute("DELETE FROM consent_consentstate WHERE record_id = %s", [last.id])
        cursor.execute("DELETE FROM consent_consentrecord WHERE id = %s", [last.id])
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = origin")

    problems = ledger_verify()
    assert [(p.record, p.reason[:40]) for p in problems] == [
        (f"contact #{contact.id}", "ledger head expects 2 record(s) ending i")
    ]


def test_each_contact_has_its_own_chain_starting_at_genesis():
    alice, bob, purpose = ContactFactory(), ContactFactory(), PurposeFactory()

    a1 = grant(alice, purpose)
    b1 = grant(bob, purpose)
    a2 = grant(alice, purpose, channel="sms")

    assert (a1.contact_seq, a1.previous_hash) == (1, GENESIS_HASH)
    assert (b1.contact_seq, b1.previous_hash) == (1, GENESIS_HASH)
    assert (a2.contact_seq, a2.previous_hash) == (2, a1.hash)
    alice.refresh_from_db()
    assert (alice.ledger_seq, alice.ledger_hash) == (2, a2.hash)
    assert ledger_verify() == []


def _rewrite(statement: str, params: list[object]) -> None:
    """Change ledger rows behind the ORM's back, as a database superuser could."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(statement, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = origin")


def test_one_contacts_records_swapped_in_their_chain_are_detected():
    contact, purpose = ContactFactory(), PurposeFactory()
    first = grant(contact, purpose)
    second = grant(contact, purpose, channel="sms")

    _rewrite("UPDATE consent_consentrecord SET contact_seq = -1 WHERE id = %s", [first.id])
    _rewrite("UPDATE consent_consentrecord SET contact_seq = 1 WHERE id = %s", [second.id])
    _rewrite("UPDATE consent_consentrecord SET contact_seq = 2 WHERE id = %s", [first.id])

    reasons = {(p.record, p.reason) for p in ledger_verify()}
    assert (f"record {second.uuid} (#{second.id})", "link to the previous record is broken") in (
        reasons
    )
    assert (f"record {first.uuid} (#{first.id})", "content does not match its hash") in reasons


def test_a_tampered_contact_head_is_detected():
    contact, purpose = ContactFactory(), PurposeFactory()
    grant(contact, purpose)

    Contact.objects.filter(pk=contact.pk).update(ledger_hash="f" * 64)

    assert [p.record for p in ledger_verify()] == [f"contact #{contact.id}"]
