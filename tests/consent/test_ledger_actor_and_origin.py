"""Hash version 3: each record says who acted and whether its proof is second-hand (and where
the consent was collected), inside its hash; records of versions 1 and 2 verify as before."""

import uuid

import pytest
from django.db import connection
from django.utils import timezone

from consent.ledger import GENESIS_HASH, ledger_seal, ledger_verify, record_hash
from consent.merge import consents_merge
from consent.models import ConsentRecord, HashVersion, SourceKind
from consent.services import ConsentWrite, Evidence, consent_record
from consent.services.consents import consent_confirm
from contacts.models import Contact
from tests.factories import (
    LIST_COLLECTION_REFERENCE,
    ContactFactory,
    EvidenceFactory,
    PurposeFactory,
    grant,
)

pytestmark = pytest.mark.django_db


def _rewrite(statement: str, params: list[object]) -> None:
    """Change ledger rows behind the ORM's back, as a database superuser could."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(statement, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = origin")


def test_a_web_form_grant_is_the_persons_own_first_hand_act():
    record = grant(ContactFactory(), PurposeFactory())

    assert record.hash_version == HashVersion.ACTOR_AND_ORIGIN
    assert (record.actor, record.second_hand, record.collection_reference) == ("person", False, "")


@pytest.mark.parametrize(
    ("source_kind", "actor"), [("admin", "staff"), ("system", "system"), ("api", "person")]
)
def test_who_acted_follows_the_source_when_the_write_does_not_say(source_kind, actor):
    record = grant(ContactFactory(), PurposeFactory(), action="withdraw", source_kind=source_kind)

    assert record.actor == actor


@pytest.mark.parametrize("source_kind", ["import", "crm"])
def test_a_list_grant_is_second_hand_with_where_it_was_collected(source_kind):
    record = grant(
        ContactFactory(), PurposeFactory(), source_kind=source_kind, given_at=timezone.now()
    )

    assert record.second_hand is True
    assert record.collection_reference == LIST_COLLECTION_REFERENCE
    assert ledger_verify() == []


def test_a_confirmation_carries_the_actor_of_the_grant_it_confirms():
    purpose = PurposeFactory(double_opt_in=True)
    contact = ContactFactory()
    pending = grant(
        contact,
        purpose,
        actor="person_and_guardian",
        evidence=Evidence(
            wording="J'accepte.",
            unticked_by_default=True,
            guardian_name="Alex Martin",
            guardian_contact="parent@example.fr",
        ),
    )

    (confirmed,) = consent_confirm(contact=contact, record_uuids=[str(pending.uuid)])

    assert (pending.status, confirmed.status) == ("pending", "granted")
    assert confirmed.actor == "person_and_guardian"


@pytest.mark.parametrize(
    ("column", "value"),
    [("actor", "guardian"), ("second_hand", True), ("collection_reference", "forged")],
)
def test_verify_detects_a_modified_actor_or_origin_on_a_v3_record(column, value):
    contact, purpose = ContactFactory(), PurposeFactory()
    tampered = grant(contact, purpose)
    grant(contact, purpose, action="withdraw")

    _rewrite(
        f"UPDATE consent_consentrecord SET {column} = %s WHERE id = %s",  # noqa: S608 - constant
        [value, tampered.id],
    )

    problems = ledger_verify()
    assert [(p.record, p.reason) for p in problems] == [
        (f"record {tampered.uuid} (#{tampered.id})", "content does not match its hash")
    ]


def test_verify_detects_a_modified_guardian_in_the_personal_evidence():
    record = grant(
        ContactFactory(),
        PurposeFactory(),
        actor="guardian",
        evidence=Evidence(
            wording="J'accepte.",
            unticked_by_default=True,
            guardian_name="Alex Martin",
            guardian_contact="parent@example.fr",
        ),
    )

    _rewrite(
        "UPDATE consent_consentevidence SET guardian_name = 'Someone Else' WHERE record_id = %s",
        [record.id],
    )

    assert [p.reason for p in ledger_verify()] == ["personal evidence does not match its digest"]


def _write_v2(contact: Contact, purpose, action: str = "grant") -> ConsentRecord:
    """A record as the ledger wrote them before hash version 3 (no actor, no origin), at the
    head of the contact's chain."""
    contact.refresh_from_db()
    version = purpose.current_version
    now = timezone.now()
    record = ConsentRecord(
        uuid=uuid.uuid4(),
        contact=contact,
        purpose=purpose,
        purpose_version=version,
        channel="email",
        action=action,
        status="granted" if action == "grant" else "withdrawn",
        given_at=now,
        recorded_at=now,
        source_kind=SourceKind.WEB_FORM,
        source_reference="https://example.fr/newsletter",
        wording=version.wording_fr,
        language="fr",
        unticked_by_default=True,
        contact_seq=contact.ledger_seq + 1,
        hash_version=HashVersion.PER_CONTACT,
        previous_hash=contact.ledger_hash,
    )
    record.hash = record_hash(record)
    record.save()
    Contact.objects.filter(pk=contact.pk).update(
        ledger_seq=record.contact_seq, ledger_hash=record.hash
    )
    return record


def test_an_old_v2_ledger_still_verifies_and_new_records_chain_after_it():
    contact, purpose = ContactFactory(), PurposeFactory()
    old = [_write_v2(contact, purpose), _write_v2(contact, purpose, action="withdraw")]
    ledger_seal()

    contact.refresh_from_db()
    new = grant(contact, purpose)
    ledger_seal()

    assert [r.hash_version for r in old] == [2, 2] and new.hash_version == 3
    assert (new.contact_seq, new.previous_hash) == (3, old[1].hash)
    assert ledger_verify() == []


def test_a_modified_v2_record_is_still_detected():
    contact, purpose = ContactFactory(), PurposeFactory()
    old = _write_v2(contact, purpose)

    _rewrite("UPDATE consent_consentrecord SET wording = 'forged' WHERE id = %s", [old.id])

    assert [p.reason for p in ledger_verify()] == ["content does not match its hash"]


def test_a_merge_carries_the_actor_and_the_second_hand_proof():
    purpose = PurposeFactory()
    survivor, merged = ContactFactory(), ContactFactory()
    origin = grant(
        merged,
        purpose,
        source_kind="crm",
        given_at=timezone.now(),
        evidence=EvidenceFactory(purpose=purpose),
    )

    outcome = consents_merge(survivor=survivor, merged=merged)

    (carried,) = outcome.records
    assert carried.source_kind == "merge"
    assert (carried.actor, carried.second_hand) == (origin.actor, True)
    assert carried.collection_reference == origin.collection_reference
    assert ledger_verify() == []


def test_the_genesis_of_a_new_contact_is_unchanged():
    record = consent_record(
        write=ConsentWrite(
            contact=ContactFactory(),
            purpose=PurposeFactory(),
            channel="email",
            action="withdraw",
            source_kind="preference_center",
        )
    )

    assert (record.contact_seq, record.previous_hash) == (1, GENESIS_HASH)
