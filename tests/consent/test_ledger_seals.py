"""The ledger's seals: every minute, what was recorded since the previous seal is sealed into a
signed seal chained to the one before; `ledger_verify` checks records, chains and seals.

Sealing reads what other transactions committed (PostgreSQL: below the oldest running
transaction), so these tests commit their writes (`transactional_db`); the database's own
refusals are switched off the way a superuser could (`session_replication_role`) to tamper.
"""

import threading
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from celery.schedules import crontab
from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from freezegun import freeze_time

from consent.ledger import (
    GENESIS_HASH,
    UNSEALED_TOLERANCE,
    LedgerReport,
    _Tally,
    ledger_seal,
    ledger_verify,
    month_of,
    record_hash,
    seal_build,
    seal_hash,
    seal_head_send,
    seal_key_id,
    seal_signature,
)
from consent.models import ConsentRecord, LedgerSeal, Purpose, SealKind
from consent.tasks import seal_ledger, send_seal_head
from contacts.models import Contact
from tests.conftest import message_text
from tests.factories import ContactFactory, PurposeFactory, UserFactory, grant

pytestmark = pytest.mark.django_db(transaction=True)

ON_POSTGRES = pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="needs PostgreSQL (set DATABASE_URL)",
)
OTHER_KEY = "someone-elses-key-who-can-write-to-the-database"


def raw(statement: str, params: list[Any] | None = None) -> None:
    """Run SQL behind the ORM's back with the database's triggers off, as a superuser could."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(statement, params or [])


def set_columns(table: str, row_id: int, **values: Any) -> None:
    assignments = ", ".join(f"{column} = %s" for column in values)
    # column names come from the test itself, values are parameters
    raw(f"UPDATE {table} SET {assignments} WHERE id = %s", [*values.values(), row_id])  # noqa: S608


def delete_record(record: ConsentRecord) -> None:
    for statement in (
        "DELETE FROM consent_consentevidence WHERE record_id = %s",
        "DELETE FROM consent_consentstate WHERE record_id = %s",
        "DELETE FROM consent_consentrecord WHERE id = %s",
    ):
        raw(statement, [record.id])


def reasons(report: LedgerReport) -> list[str]:
    return [str(problem) for problem in report]


def fresh(record: ConsentRecord) -> ConsentRecord:
    return ConsentRecord.objects.get(pk=record.pk)


def set_contact_head(contact_id: int) -> None:
    """Point a contact's chain head at its last record, as a careful forger would."""
    last = ConsentRecord.objects.filter(contact_id=contact_id).order_by("-contact_seq").first()
    set_columns(
        "contacts_contact",
        contact_id,
        ledger_seq=last.contact_seq if last else 0,
        ledger_hash=last.hash if last else GENESIS_HASH,
    )


def rehash(record_id: int, **values: Any) -> ConsentRecord:
    """Change a record and recompute its hash, as someone who knows the hash rule would."""
    if values:
        set_columns("consent_consentrecord", record_id, **values)
    record = ConsentRecord.objects.get(pk=record_id)
    set_columns("consent_consentrecord", record_id, hash=record_hash(record))
    return ConsentRecord.objects.get(pk=record_id)


@pytest.fixture
def ledger() -> dict[str, Any]:
    """Two contacts with three and two records, all sealed."""
    anne, bruno, purpose = ContactFactory(), ContactFactory(), PurposeFactory()
    records = [
        grant(anne, purpose),
        grant(bruno, purpose),
        grant(anne, purpose, channel="sms"),
        grant(anne, purpose, action="withdraw", evidence=None),
        grant(bruno, purpose, channel="sms"),
    ]
    seals = ledger_seal()
    assert [seal.record_count for seal in seals] == [5]
    assert ledger_verify() == []
    return {"anne": anne, "bruno": bruno, "purpose": purpose, "records": records, "seals": seals}


# Sealing.


def test_a_seal_covers_every_record_since_the_previous_one_and_verifies(ledger):
    [seal] = ledger["seals"]
    records = ledger["records"]

    assert (seal.number, seal.kind, seal.period) == (1, "records", month_of(seal.sealed_at))
    assert (seal.record_count, seal.total_count) == (5, 5)
    assert (seal.first_record_id, seal.last_record_id) == (records[0].id, records[-1].id)
    assert seal.previous_seal_hash == GENESIS_HASH
    assert seal.seal_hash == seal_hash(seal)
    assert seal.signature == seal_signature(seal.seal_hash)
    assert seal.key_id == seal_key_id()
    assert ledger_verify().records == 5


def test_the_next_seal_chains_to_the_previous_one_and_takes_only_new_records(ledger):
    later = grant(ledger["bruno"], ledger["purpose"], action="withdraw", evidence=None)

    [seal] = ledger_seal()

    assert (seal.number, seal.record_count, seal.total_count) == (2, 1, 6)
    assert seal.previous_seal_hash == ledger["seals"][0].seal_hash
    assert seal.key_from == ledger["seals"][0].key_to
    assert (seal.first_record_id, seal.last_record_id) == (later.id, later.id)
    assert ledger_verify() == []


def test_an_empty_minute_gives_a_heartbeat_seal():
    first = ledger_seal()
    second = ledger_seal()

    assert [(s.number, s.record_count, s.total_count) for s in first + second] == [
        (1, 0, 0),
        (2, 0, 0),
    ]
    assert second[0].previous_seal_hash == first[0].seal_hash
    assert ledger_verify() == []


def test_records_unsealed_yet_are_checked_and_their_age_reported(ledger):
    with freeze_time(datetime.now(UTC) - timedelta(minutes=3)):
        record = grant(ledger["anne"], ledger["purpose"], action="withdraw", evidence=None)

    report = ledger_verify()

    assert report == []
    assert report.unsealed == 1
    assert report.oldest_unsealed_at == fresh(record).recorded_at


def test_seals_split_at_midnight_on_the_first_of_the_month():
    contact, purpose = ContactFactory(), PurposeFactory()
    with freeze_time("2026-01-31T23:59:30Z"):
        january = grant(contact, purpose)
    with freeze_time("2026-02-01T00:00:30Z"):
        february = grant(contact, purpose, channel="sms")
        seals = ledger_seal()

    assert [(s.number, s.period, s.record_count, s.total_count) for s in seals] == [
        (1, date(2026, 1, 1), 1, 1),
        (2, date(2026, 2, 1), 1, 2),
    ]
    assert (seals[0].first_record_id, seals[1].first_record_id) == (january.id, february.id)
    assert seals[1].previous_seal_hash == seals[0].seal_hash
    assert ledger_verify() == []


def test_records_left_unsealed_past_the_tolerance_are_a_problem(ledger):
    with freeze_time(datetime.now(UTC) - UNSEALED_TOLERANCE - timedelta(minutes=5)):
        grant(ledger["anne"], ledger["purpose"], action="withdraw", evidence=None)

    report = ledger_verify()

    assert len(report) == 1
    assert "1 record(s) not sealed" in str(report[0])
    assert "the sealer stopped, or seals were deleted" in str(report[0])


def test_a_consistent_rewrite_with_the_seals_deleted_is_caught_once_the_sealer_is_late(ledger):
    # someone without the key rewrites a record and its chain head, and deletes every seal
    record = ledger["records"][-1]
    forged = rehash(record.id, wording="J'accepte tout")
    Contact.objects.filter(pk=record.contact_id).update(ledger_hash=forged.hash)
    raw("DELETE FROM consent_ledgerseal")

    # then: within the tolerance it only looks unsealed; past it, it is a problem
    assert ledger_verify() == []
    with freeze_time(datetime.now(UTC) + UNSEALED_TOLERANCE + timedelta(minutes=1)):
        report = ledger_verify()
    assert any("not sealed" in str(problem) for problem in report)


def test_the_database_sets_the_sealing_key_not_the_orm():
    contact, purpose = ContactFactory(), PurposeFactory()
    first = grant(contact, purpose)
    second = grant(contact, purpose, channel="sms")

    keys = dict(ConsentRecord.objects.values_list("id", "xact"))

    if connection.vendor == "postgresql":  # the writing transaction
        assert keys[first.id] < keys[second.id]
    else:  # the row id
        assert keys == {first.id: first.id, second.id: second.id}


def test_a_record_without_its_sealing_key_is_named(ledger):
    """SQLite rebuilds a table on some schema changes, dropping its triggers: a record the
    trigger never keyed would escape every seal, so the check names it."""
    record = ledger["records"][2]
    set_columns("consent_consentrecord", record.id, xact=0)

    problems = reasons(ledger_verify())

    assert (
        f"record {record.uuid} (#{record.id}): has no sealing key (the database's "
        "consent_record_xact trigger)" in problems
    )


def test_the_receipt_names_the_chain_and_its_seals(api):
    record = grant(ContactFactory(), PurposeFactory())

    response = api().get(f"/api/v1/consents/{record.uuid}/receipt/")

    assert response.status_code == 200
    assert response.json()["integrity"] == {
        "algorithm": "SHA-256 per-contact hash chain, HMAC-sealed",
        "hash": record.hash,
        "previous_hash": GENESIS_HASH,
        "evidence_digest": record.evidence_digest,
    }


def test_the_seal_task_seals_and_the_beat_runs_it_every_minute():
    grant(ContactFactory(), PurposeFactory())

    assert seal_ledger.apply().get() == 1
    assert LedgerSeal.objects.get().record_count == 1
    entry = settings.CELERY_BEAT_SCHEDULE["seal-ledger"]
    assert entry["task"] == "consent.tasks.seal_ledger"
    assert entry["schedule"] == timedelta(minutes=1)


@ON_POSTGRES
def test_a_record_committed_out_of_order_lands_in_the_next_seal():
    """T1 writes first and stays open; T2 writes after it and commits. The seal taken then
    must not close the window over T1's record: it waits for the next seal."""
    purpose = PurposeFactory()
    anne, bruno = ContactFactory(), ContactFactory()
    written, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                grant(anne, purpose)
                written.set()
                release.wait(timeout=30)
        except BaseException as error:  # noqa: BLE001 - handed back to the test below
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert written.wait(timeout=30)
    late = grant(bruno, purpose)  # a later transaction, committed first

    [while_open] = ledger_seal()
    release.set()
    thread.join(timeout=30)
    [after] = ledger_seal()

    assert errors == []
    assert while_open.record_count == 0
    assert after.record_count == 2
    assert late.id in (after.first_record_id, after.last_record_id)
    assert ledger_verify() == []


@ON_POSTGRES
def test_two_seal_runs_at_once_give_one_chain():
    grant(ContactFactory(), PurposeFactory())
    holding, release = threading.Event(), threading.Event()
    results: list[list[LedgerSeal]] = []

    def sealer(hold: bool) -> None:
        try:
            with transaction.atomic():
                results.append(ledger_seal())
                if hold:
                    holding.set()
                    release.wait(timeout=30)
        finally:
            connection.close()

    first = threading.Thread(target=sealer, args=(True,))
    first.start()
    assert holding.wait(timeout=30)
    second = threading.Thread(target=sealer, args=(False,))
    second.start()
    second.join(timeout=1)
    assert second.is_alive()  # waiting for the first run's lock
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)

    seals = list(LedgerSeal.objects.order_by("number"))
    assert [s.number for s in seals] == [1, 2]
    assert [s.record_count for s in seals] == [1, 0]
    assert seals[1].previous_seal_hash == seals[0].seal_hash
    assert ledger_verify() == []


# Detection: each tampering named by the problem it causes.


def test_1_a_record_modified_with_its_hash_left_alone(ledger):
    record = ledger["records"][1]
    set_columns("consent_consentrecord", record.id, wording="forged")

    assert reasons(ledger_verify()) == [
        f"record {record.uuid} (#{record.id}): content does not match its hash"
    ]


def test_2_a_record_modified_with_its_hash_recomputed_breaks_its_seal(ledger):
    last_of_bruno = ledger["records"][4]
    rehash(last_of_bruno.id, wording="forged")
    set_contact_head(ledger["bruno"].id)  # its chain now ends in the new hash

    assert reasons(ledger_verify()) == [
        f"seal #1 (Records {ledger['seals'][0].period:%Y-%m}): records differ from the sealed "
        "digest (modified, replaced or reordered)"
    ]


def test_3_a_record_deleted_inside_a_sealed_month(ledger):
    first_of_anne = ledger["records"][0]  # no state points at it any more
    delete_record(first_of_anne)

    problems = reasons(ledger_verify())

    period = f"{ledger['seals'][0].period:%Y-%m}"
    assert (
        f"seal #1 (Records {period}): sealed 5 record(s), found 4 (records deleted or inserted)"
        in problems
    )
    following = ConsentRecord.objects.filter(contact=ledger["anne"]).order_by("contact_seq")[0]
    assert (
        f"record {following.uuid} (#{following.id}): a record of this contact is missing "
        "before it" in problems
    )


def test_4_a_record_inserted_with_a_forged_key_in_a_sealed_window(ledger):
    contact = ledger["bruno"]
    head = Contact.objects.get(pk=contact.pk)
    model = fresh(ledger["records"][4])
    forged = ConsentRecord(
        uuid=uuid.uuid4(),
        contact=contact,
        purpose=model.purpose,
        purpose_version=model.purpose_version,
        channel="postal",
        action="grant",
        status="granted",
        given_at=model.given_at,
        recorded_at=model.recorded_at,
        source_kind="admin",
        wording="forged",
        contact_seq=head.ledger_seq + 1,
        hash_version=2,
        previous_hash=head.ledger_hash,
    )
    forged.hash = record_hash(forged)
    ConsentRecord.objects.bulk_create([forged])
    set_columns("consent_consentrecord", forged.id, xact=model.xact)  # inside the sealed window
    set_contact_head(contact.pk)

    period = f"{ledger['seals'][0].period:%Y-%m}"
    assert reasons(ledger_verify()) == [
        f"seal #1 (Records {period}): sealed 5 record(s), found 6 (records deleted or inserted)"
    ]


def test_5_a_contacts_records_reordered(ledger):
    first, second = ledger["records"][1], ledger["records"][4]  # bruno's two records
    set_columns("consent_consentrecord", first.id, contact_seq=-1)
    set_columns("consent_consentrecord", second.id, contact_seq=1)
    set_columns("consent_consentrecord", first.id, contact_seq=2)

    problems = reasons(ledger_verify())

    assert f"record {first.uuid} (#{first.id}): content does not match its hash" in problems
    assert f"record {second.uuid} (#{second.id}): content does not match its hash" in problems
    assert f"record {second.uuid} (#{second.id}): link to the previous record is broken" in problems


CONTENT_COLUMNS = (
    "uuid",
    "contact_id",
    "purpose_id",
    "purpose_version_id",
    "channel",
    "action",
    "status",
    "given_at",
    "recorded_at",
    "source_kind",
    "source_reference",
    "wording",
    "language",
    "unticked_by_default",
    "policy_version",
    "evidence_digest",
    "resolves_id",
    "contact_seq",
    "hash_version",
    "previous_hash",
    "hash",
)


def test_6_contents_swapped_across_ids(ledger):
    """Each row still matches its own hash and chain: only the sealed order tells."""
    a, b = ledger["records"][0], ledger["records"][1]
    rows = {
        row["id"]: row
        for row in ConsentRecord.objects.filter(id__in=[a.id, b.id]).values("id", *CONTENT_COLUMNS)
    }
    set_columns(
        "consent_consentrecord", a.id, uuid=str(uuid.uuid4()), hash="f" * 64, contact_seq=-1
    )
    swapped_b = {column: rows[a.id][column] for column in CONTENT_COLUMNS}
    swapped_a = {column: rows[b.id][column] for column in CONTENT_COLUMNS}
    for values in (swapped_b, swapped_a):
        values["uuid"] = str(values["uuid"])
    set_columns("consent_consentrecord", b.id, **swapped_b)
    set_columns("consent_consentrecord", a.id, **swapped_a)
    raw("DELETE FROM consent_consentevidence WHERE record_id IN (%s, %s)", [a.id, b.id])

    period = f"{ledger['seals'][0].period:%Y-%m}"
    assert reasons(ledger_verify()) == [
        f"seal #1 (Records {period}): records differ from the sealed digest (modified, "
        "replaced or reordered)"
    ]


def test_7_last_records_deleted_with_the_seals_left_intact(ledger):
    last = ledger["records"][4]
    delete_record(last)
    set_contact_head(ledger["bruno"].id)

    period = f"{ledger['seals'][0].period:%Y-%m}"
    assert reasons(ledger_verify()) == [
        f"seal #1 (Records {period}): sealed 5 record(s), found 4 (records deleted or inserted)",
        "ledger: seals count 5 record(s) kept, 4 found sealed",
    ]


def test_8_records_and_tail_seals_deleted_are_caught_by_the_head_kept_outside(ledger):
    kept_head = f"{ledger['seals'][0].number}:{ledger['seals'][0].seal_hash}"
    tail = grant(ledger["bruno"], ledger["purpose"], action="withdraw", evidence=None)
    [second] = ledger_seal()
    outside = f"{second.number}:{second.seal_hash}"
    assert ledger_verify(head=outside) == []

    raw("DELETE FROM consent_ledgerseal WHERE number = %s", [second.number])
    delete_record(tail)
    set_contact_head(ledger["bruno"].id)

    assert ledger_verify(head=kept_head) == []  # an older head cannot tell
    assert reasons(ledger_verify(head=outside)) == [
        "seal head #2: is missing from the database: seals (and records) were cut off"
    ]
    raw(
        "INSERT INTO consent_ledgerseal (number, kind, period, key_from, key_to, record_count, "
        "total_count, records_digest, previous_seal_hash, seal_hash, signature, key_id, "
        "sealed_at) VALUES (2, 'records', %s, %s, %s, 0, 5, %s, %s, %s, %s, %s, %s)",
        [
            second.period,
            second.key_from,
            second.key_to,
            "0" * 64,
            ledger["seals"][0].seal_hash,
            "e" * 64,
            "e" * 64,
            second.key_id,
            second.sealed_at,
        ],
    )
    assert "seal head #2: differs from the head kept outside" in reasons(
        ledger_verify(head=outside)
    )


def test_9_an_emptied_ledger_is_told_by_the_contacts_chain_heads(ledger):
    for table in ("consent_consentevidence", "consent_consentstate", "consent_consentrecord"):
        raw(f"DELETE FROM {table}")  # noqa: S608 - table names from the test
    raw("DELETE FROM consent_ledgerseal")

    problems = reasons(ledger_verify())

    assert "ledger: emptied: 2 contact(s) have a chain head but no record remains" in problems
    assert any(
        p.startswith(f"contact #{ledger['anne'].id}: ledger head expects 3") for p in problems
    )


@ON_POSTGRES
@pytest.mark.parametrize(
    "table", ["consent_consentrecord", "consent_purposeversion", "consent_ledgerseal"]
)
def test_10_truncate_is_refused(ledger, table):
    with (
        pytest.raises(Exception, match=f"table {table} is append-only: TRUNCATE refused"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"TRUNCATE {table} CASCADE")

    assert ledger_verify() == []


@ON_POSTGRES
def test_10_seals_cannot_be_updated_or_deleted_in_the_database(ledger):
    for statement in (
        "UPDATE consent_ledgerseal SET record_count = 0",
        "DELETE FROM consent_ledgerseal",
    ):
        with (
            pytest.raises(Exception, match="consent_ledgerseal is append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)


def test_the_orm_refuses_to_change_a_seal(ledger):
    seal = LedgerSeal.objects.get()
    with pytest.raises(ValidationError):
        seal.save()
    with pytest.raises(ValidationError):
        LedgerSeal.objects.all().delete()


def resign_everything(key: str, *, key_id: str | None = None) -> None:
    """Rewrite every seal consistently (digests, links, totals) and sign it with `key`."""
    previous = None
    for seal in LedgerSeal.objects.order_by("number"):
        tally = _Tally()
        for record_id, record_hash_hex in (
            ConsentRecord.objects.filter(xact__gte=seal.key_from, xact__lt=seal.key_to)
            .order_by("xact", "id")
            .values_list("id", "hash")
        ):
            tally.add(record_id, record_hash_hex)
        rebuilt = seal_build(
            previous=previous,
            kind=seal.kind,
            period=seal.period,
            key_from=seal.key_from,
            key_to=seal.key_to,
            tally=tally,
            sealed_at=seal.sealed_at,
            key=key,
        )
        if key_id is not None:  # the forger copies the genuine key id
            rebuilt.key_id = key_id
            rebuilt.seal_hash = seal_hash(rebuilt)
            rebuilt.signature = seal_signature(rebuilt.seal_hash, key)
        set_columns(
            "consent_ledgerseal",
            seal.id,
            records_digest=rebuilt.records_digest,
            record_count=rebuilt.record_count,
            total_count=rebuilt.total_count,
            first_record_id=rebuilt.first_record_id,
            last_record_id=rebuilt.last_record_id,
            previous_seal_hash=rebuilt.previous_seal_hash,
            seal_hash=rebuilt.seal_hash,
            signature=rebuilt.signature,
            key_id=rebuilt.key_id,
        )
        previous = rebuilt


def test_11_a_consistent_rewrite_without_the_key_fails_on_the_signatures(ledger):
    last_of_bruno = ledger["records"][4]
    rehash(last_of_bruno.id, wording="forged", status="withdrawn")
    set_contact_head(ledger["bruno"].id)
    resign_everything(OTHER_KEY, key_id=seal_key_id())

    period = f"{ledger['seals'][0].period:%Y-%m}"
    assert reasons(ledger_verify()) == [
        f"seal #1 (Records {period}): signature does not match (not signed with LEDGER_SEAL_KEY)"
    ]


def test_11_seals_signed_with_another_key_are_named(ledger):
    resign_everything(OTHER_KEY)

    period = f"{ledger['seals'][0].period:%Y-%m}"
    assert reasons(ledger_verify()) == [
        f"seal #1 (Records {period}): signed with key {seal_key_id(OTHER_KEY)}, not with "
        f"LEDGER_SEAL_KEY ({seal_key_id()})"
    ]


def prune_seal(period: date, count: int, key: str | None = None) -> LedgerSeal:
    previous = LedgerSeal.objects.order_by("-number").first()
    assert previous is not None
    seal = seal_build(
        previous=previous,
        kind=SealKind.PRUNE,
        period=period,
        key_from=previous.key_to,
        key_to=previous.key_to,
        tally=_Tally(count=count),
        sealed_at=previous.sealed_at,
        key=key,
    )
    seal.save()
    return seal


@pytest.fixture
def two_months() -> dict[str, Any]:
    """One contact's chain across January (sealed in January) and February (sealed then)."""
    contact, purpose = ContactFactory(), PurposeFactory()
    with freeze_time("2026-01-10T10:00:00Z"):
        january = [grant(contact, purpose, channel="sms"), grant(contact, purpose)]
        ledger_seal()
    with freeze_time("2026-02-10T10:00:00Z"):
        february = [
            grant(contact, purpose, action="withdraw", evidence=None),
            grant(contact, purpose, channel="sms", action="withdraw", evidence=None),
        ]
        ledger_seal()
    assert ledger_verify() == []
    return {"contact": contact, "january": january, "february": february}


def test_12_a_pruned_month_leaves_the_rest_verifying(two_months):
    for record in two_months["january"]:
        delete_record(record)
    prune_seal(date(2026, 1, 1), 2)

    assert ledger_verify() == []


def test_12_a_forged_prune_seal_fails(two_months):
    for record in two_months["january"]:
        delete_record(record)
    prune_seal(date(2026, 1, 1), 2, key=OTHER_KEY)

    assert reasons(ledger_verify()) == [
        f"seal #3 (Prune (a month removed) 2026-01): signed with key {seal_key_id(OTHER_KEY)}, "
        f"not with LEDGER_SEAL_KEY ({seal_key_id()})"
    ]


def test_12_a_prune_seal_must_count_its_months_records(two_months):
    delete_record(two_months["january"][0])
    prune_seal(date(2026, 1, 1), 1)

    problems = reasons(ledger_verify())

    assert (
        "seal #3 (Prune (a month removed) 2026-01): prunes 1 record(s) but its month's seals "
        "count 2" in problems
    )
    assert (
        "seal #1 (Records 2026-01): its month was pruned (seal #3) but 1 record(s) remain"
        in problems
    )


def test_13_a_tampered_contact_chain_head(ledger):
    anne = Contact.objects.get(pk=ledger["anne"].pk)
    set_columns("contacts_contact", anne.pk, ledger_hash="a" * 64)

    last = fresh(ledger["records"][3])
    assert reasons(ledger_verify()) == [
        f"contact #{anne.pk}: ledger head expects 3 record(s) ending in aaaaaaaaaaaa, found 3 "
        f"ending in {last.hash[:12]}"
    ]


def test_problems_past_the_cap_are_counted_not_listed(ledger):
    for record in ledger["records"]:
        set_columns("consent_consentrecord", record.id, wording="forged")

    report = ledger_verify(max_problems=2)

    assert len(report) == 2
    assert report.problem_count == report.left_off + 2 == 5


# Bounded memory.


def _bulk_ledger(contacts: int, per_contact: int) -> None:
    """`contacts × per_contact` valid version-2 records, written set-based."""
    purpose = PurposeFactory()
    version = purpose.current_version
    now = datetime.now(UTC)
    batch: list[ConsentRecord] = []
    people = ContactFactory.create_batch(contacts)
    for person in people:
        previous = GENESIS_HASH
        for seq in range(1, per_contact + 1):
            record = ConsentRecord(
                contact=person,
                purpose=purpose,
                purpose_version=version,
                channel="email",
                action="grant" if seq % 2 else "withdraw",
                status="granted" if seq % 2 else "withdrawn",
                given_at=now,
                recorded_at=now,
                source_kind="import",
                wording="J'accepte.",
                contact_seq=seq,
                hash_version=2,
                previous_hash=previous,
            )
            record.hash = previous = record_hash(record)
            batch.append(record)
        if len(batch) >= 5000:
            ConsentRecord.objects.bulk_create(batch)
            batch = []
        Contact.objects.filter(pk=person.pk).update(ledger_seq=per_contact, ledger_hash=previous)
    ConsentRecord.objects.bulk_create(batch)


def _peak(check: Callable[[], LedgerReport]) -> tuple[int, LedgerReport]:
    tracemalloc.start()
    try:
        report = check()
        return tracemalloc.get_traced_memory()[1], report
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_verify_memory_stays_flat_from_5k_to_50k_records():
    _bulk_ledger(contacts=500, per_contact=10)
    ledger_seal()
    small_peak, small = _peak(ledger_verify)
    _bulk_ledger(contacts=4500, per_contact=10)
    ledger_seal()
    large_peak, large = _peak(ledger_verify)

    assert (small.records, large.records) == (5_000, 50_000)
    assert small == [] and large == []
    assert large_peak < small_peak * 1.5 + 1_000_000, (small_peak, large_peak)


# Migration of a legacy ledger (one global chain under a head row) into genesis seals.

BEFORE_THE_SEALS = [
    ("consent", "0007_message_sent_and_state_index"),
    ("contacts", "0009_contact_marketing_objected_at"),
]


def migrate(targets: list[tuple[str, str]]) -> Any:
    state = MigrationExecutor(connection).migrate(targets)
    ContentType.objects.clear_cache()
    return state.apps


def migrate_to_latest() -> None:
    executor = MigrationExecutor(connection)
    migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture
def legacy_ledger() -> Iterator[dict[str, Any]]:
    """Three records of the legacy global chain (January and February) and its head row,
    written through the models of before the seals; the database ends at the latest
    migrations."""
    old = migrate(BEFORE_THE_SEALS)
    try:
        Contact_ = old.get_model("contacts", "Contact")
        Purpose_ = old.get_model("consent", "Purpose")
        Version = old.get_model("consent", "PurposeVersion")
        Record = old.get_model("consent", "ConsentRecord")
        Head = old.get_model("consent", "LedgerHead")
        anne = Contact_.objects.create(email="anne@example.fr")
        bruno = Contact_.objects.create(email="bruno@example.fr")
        purpose = Purpose_.objects.create(slug="news", name_fr="Lettre", name_en="Newsletter")
        version = Version.objects.create(purpose=purpose, number=1, wording_fr="J'accepte.")
        previous, records = GENESIS_HASH, []
        for contact, moment in (
            (anne, datetime(2026, 1, 5, 9, 0, tzinfo=UTC)),
            (bruno, datetime(2026, 1, 31, 23, 59, tzinfo=UTC)),
            (anne, datetime(2026, 2, 1, 0, 1, tzinfo=UTC)),
        ):
            record = Record(
                contact=contact,
                purpose=purpose,
                purpose_version=version,
                channel="email",
                action="grant",
                status="granted",
                given_at=moment,
                recorded_at=moment,
                source_kind="web_form",
                wording="J'accepte.",
                previous_hash=previous,
            )
            record.hash_version = 1  # what `record_hash` reads; the table has no such column yet
            record.hash = previous = record_hash(record)
            record.save()
            records.append(record)
        Head.objects.update_or_create(
            id=1,
            defaults={"last_record_id": records[-1].id, "last_hash": previous, "record_count": 3},
        )
        yield {"records": records, "anne": anne.pk, "purpose": purpose.pk}
    finally:
        if "consent_ledgerhead" in connection.introspection.table_names():
            migrate_to_latest()  # a failed test must not leave the next ones on old tables


def test_a_legacy_ledger_migrates_into_genesis_seals_keeping_its_hashes(legacy_ledger):
    migrate_to_latest()

    records = legacy_ledger["records"]
    assert {r.id: r.hash for r in records} == dict(ConsentRecord.objects.values_list("id", "hash"))
    seals = list(LedgerSeal.objects.order_by("number"))
    assert [(s.kind, s.period, s.record_count, s.total_count) for s in seals] == [
        ("genesis", date(2026, 1, 1), 2, 2),
        ("genesis", date(2026, 2, 1), 1, 3),
    ]
    assert {(s.key_from, s.key_to) for s in seals} == {(0, 1)}
    assert ledger_verify() == []

    # the contact's chain goes on from its last legacy record, and the next seal follows
    anne = Contact.objects.get(pk=legacy_ledger["anne"])
    later = grant(anne, Purpose.objects.get(pk=legacy_ledger["purpose"]), action="withdraw")
    assert (later.contact_seq, later.previous_hash) == (3, records[2].hash)
    [seal] = ledger_seal()
    assert (seal.number, seal.key_from, seal.record_count, seal.total_count) == (3, 1, 1, 4)
    assert ledger_verify() == []


def test_a_tampered_legacy_ledger_is_refused_by_the_migration(legacy_ledger):
    tampered = legacy_ledger["records"][1]
    set_columns("consent_consentrecord", tampered.id, wording="forged")

    with pytest.raises(RuntimeError, match="fails its check") as refusal:
        migrate_to_latest()

    assert f"record {tampered.uuid} (#{tampered.id}): content does not match its hash" in str(
        refusal.value
    )
    assert "consent_ledgerhead" in connection.introspection.table_names()
    assert not LedgerSeal.objects.exists()

    # restored from a backup, the ledger migrates
    set_columns("consent_consentrecord", tampered.id, wording="J'accepte.")
    migrate_to_latest()
    assert LedgerSeal.objects.count() == 2
    assert ledger_verify() == []


# The DPO's daily copy of the seal head.


@pytest.fixture
def dpo_team() -> list[str]:
    call_command("setup_roles", stdout=StringIO())
    group = Group.objects.get(name="DPO")
    for username, email, active in (
        ("dpo-anne", "anne@staff.example.fr", True),
        ("dpo-left", "left@staff.example.fr", False),
    ):
        UserFactory(username=username, email=email, is_active=active).groups.add(group)
    UserFactory(username="marketer", email="marketer@staff.example.fr")
    return ["anne@staff.example.fr"]


def test_the_dpo_receives_yesterdays_last_seal_head_once(dpo_team, mailbox):
    with freeze_time("2026-03-19T21:00:00Z"):
        ledger_seal()
        [last_of_the_day] = ledger_seal()
    with freeze_time("2026-03-20T01:00:00Z"):  # the next day, in Paris too
        ledger_seal()
        sent = seal_head_send()
        again = seal_head_send()

    assert (sent, again) == (True, False)
    [message] = mailbox.messages
    assert message["To"] == "anne@staff.example.fr"
    head = f"{last_of_the_day.number}:{last_of_the_day.seal_hash}"
    body = message_text(message)
    assert head in body
    assert f"manage.py verify_ledger --head {head}" in body
    assert last_of_the_day.signature in body


def test_no_email_without_a_seal_that_day(dpo_team, mailbox):
    with freeze_time("2026-03-20T09:00:00Z"):
        ledger_seal()  # today's: not yesterday's
        assert seal_head_send() is False

    assert mailbox.messages == []


def test_the_seal_head_goes_out_daily_from_beat(dpo_team, mailbox):
    entry = settings.CELERY_BEAT_SCHEDULE["send-seal-head"]
    assert entry["task"] == "consent.tasks.send_seal_head"
    assert isinstance(entry["schedule"], crontab)
    assert len(entry["schedule"].hour) == 1 and len(entry["schedule"].day_of_week) == 7
    with freeze_time("2026-03-19T12:00:00Z"):
        ledger_seal()
    with freeze_time("2026-03-20T06:00:00Z"):
        assert send_seal_head.apply().get() is True
    assert len(mailbox.messages) == 1
