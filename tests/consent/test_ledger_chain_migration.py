"""A ledger written as one global chain (before per-contact chains) migrates: every record
keeps its hash, gets its place in its contact's chain, the contacts get their heads, the whole
ledger verifies, and new records chain after the old ones.

The test migrates the database back to before the change, writes legacy records through the
models of that time, then migrates forward to the latest migrations.
"""

import importlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.apps.registry import Apps
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor

from consent.ledger import GENESIS_HASH, evidence_digest, ledger_verify, record_hash
from consent.models import ConsentRecord, Purpose
from contacts.models import Contact
from tests.factories import grant

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [
    ("consent", "0007_message_sent_and_state_index"),
    ("contacts", "0009_contact_marketing_objected_at"),
]
WRITTEN_AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
FILL = importlib.import_module("consent.migrations.0008_ledger_per_contact_chain")


def migrate(targets: list[tuple[str, str]]) -> Apps:
    executor = MigrationExecutor(connection)
    state = executor.migrate(targets)
    ContentType.objects.clear_cache()
    return state.apps


def migrate_to_latest() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    ContentType.objects.clear_cache()


@pytest.fixture
def legacy() -> Iterator[Apps]:
    """The models of the global chain; the database ends at the latest migrations."""
    old = migrate(BEFORE)
    yield old
    columns = [
        c.name
        for c in connection.introspection.get_table_description(
            connection.cursor(), "consent_consentrecord"
        )
    ]
    if "contact_seq" not in columns:
        migrate_to_latest()  # a failed test must not leave the next ones on old tables


def write_legacy_ledger(old: Apps, contacts: list, order: list[int]) -> list:
    """Records chained one after the other across contacts (v1), as the old write path did."""
    purpose = old.get_model("consent", "Purpose").objects.create(
        slug="newsletter", name_fr="Lettre", name_en="Newsletter", channels=["email"]
    )
    version = old.get_model("consent", "PurposeVersion").objects.create(
        purpose=purpose, number=1, wording_fr="J'accepte.", wording_en="I agree."
    )
    record_model = old.get_model("consent", "ConsentRecord")
    evidence_model = old.get_model("consent", "ConsentEvidence")
    previous, records = GENESIS_HASH, []
    for n, who in enumerate(order):
        evidence = evidence_model(nonce=uuid.uuid4().hex, ip="203.0.113.7", user_agent="UA")
        record = record_model(
            uuid=uuid.uuid4(),
            contact=contacts[who],
            purpose=purpose,
            purpose_version=version,
            channel="email",
            action="grant" if n % 2 == 0 else "withdraw",
            status="granted" if n % 2 == 0 else "withdrawn",
            given_at=WRITTEN_AT + timedelta(minutes=n),
            recorded_at=WRITTEN_AT + timedelta(minutes=n),
            source_kind="web_form",
            wording="J'accepte.",
            language="fr",
            evidence_digest=evidence_digest(evidence),
            previous_hash=previous,
        )
        record.hash_version = 1  # what record_hash reads; the column does not exist yet
        record.hash = record_hash(record)
        record.save()
        evidence.record = record
        evidence.save()
        previous = record.hash
        records.append(record)
    old.get_model("consent", "LedgerHead").objects.update_or_create(
        id=1,
        defaults={
            "last_hash": previous,
            "last_record_id": records[-1].id,
            "record_count": len(records),
        },
    )
    return records


def test_a_global_chain_migrates_keeping_every_hash_and_verifies(legacy, monkeypatch):
    monkeypatch.setattr(FILL, "BATCH_SIZE", 3)  # several keyset batches over 8 records
    contact_model = legacy.get_model("contacts", "Contact")
    contacts = [contact_model.objects.create(email=f"p{i}@example.fr") for i in range(3)]
    order = [0, 1, 0, 2, 1, 0, 0, 1]
    old_records = write_legacy_ledger(legacy, contacts, order)

    migrate_to_latest()

    migrated = {r.id: r for r in ConsentRecord.objects.all()}
    assert {i: r.hash for i, r in migrated.items()} == {r.id: r.hash for r in old_records}
    assert {r.hash_version for r in migrated.values()} == {1}
    expected_seq, seen = [], {0: 0, 1: 0, 2: 0}
    for who in order:
        seen[who] += 1
        expected_seq.append(seen[who])
    assert [migrated[r.id].contact_seq for r in old_records] == expected_seq
    for who, contact in enumerate(contacts):
        head = Contact.objects.get(pk=contact.pk)
        last = [r for r, w in zip(old_records, order, strict=True) if w == who][-1]
        assert (head.ledger_seq, head.ledger_hash) == (seen[who], last.hash)
    assert ledger_verify() == []
    if connection.vendor == "postgresql":  # the trigger is on again after the fill
        with (
            pytest.raises(Exception, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute("UPDATE consent_consentrecord SET wording = 'x'")


def test_new_records_chain_after_the_migrated_ones_per_contact(legacy):
    contact_model = legacy.get_model("contacts", "Contact")
    contacts = [contact_model.objects.create(email=f"q{i}@example.fr") for i in range(2)]
    old_records = write_legacy_ledger(legacy, contacts, [0, 1, 0])

    migrate_to_latest()
    contact = Contact.objects.get(pk=contacts[0].pk)
    record = grant(contact, Purpose.objects.get(slug="newsletter"))

    assert (record.hash_version, record.contact_seq) == (
        3,
        3,
    )  # per contact, with the actor (issue 12)
    assert record.previous_hash == old_records[2].hash
    assert ledger_verify() == []


def test_a_modified_legacy_record_is_still_detected_after_the_migration(legacy):
    contact_model = legacy.get_model("contacts", "Contact")
    contacts = [contact_model.objects.create(email=f"r{i}@example.fr") for i in range(2)]
    old_records = write_legacy_ledger(legacy, contacts, [0, 1, 0, 1])

    migrate_to_latest()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE consent_consentrecord DISABLE TRIGGER USER")
        cursor.execute(
            "UPDATE consent_consentrecord SET wording = 'forged' WHERE id = %s",
            [old_records[1].id],
        )
        if connection.vendor == "postgresql":
            cursor.execute("ALTER TABLE consent_consentrecord ENABLE TRIGGER USER")

    problems = ledger_verify()
    assert [(p.record, p.reason) for p in problems] == [
        (
            f"record {old_records[1].uuid} (#{old_records[1].id})",
            "content does not match its hash",
        )
    ]
