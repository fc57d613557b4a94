"""The consent write path without a global lock: its statement budget, per-contact chains,
set-based batches (all or nothing, in order), and writes for two contacts in parallel."""

import threading
from dataclasses import replace
from datetime import timedelta
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from consent.ledger import GENESIS_HASH, ledger_verify
from consent.models import ConsentEvidence, ConsentRecord, ConsentState, SourceKind
from consent.selectors import purposes_with_versions
from consent.services import (
    ConsentWrite,
    ConsentWriteErrors,
    Evidence,
    consent_record,
    consents_record_many,
    consents_withdraw_all,
)
from contacts.models import Contact, TimelineEvent
from contacts.selectors import suppression_reason
from contacts.services import suppression_add
from crmsync.models import OutboxEvent
from crmsync.services import enabled_connection_ids, push_after_commit
from preferences.services import Visit
from tests.factories import ContactFactory, PurposeFactory, grant
from tests.statements import at_most_statements

pytestmark = pytest.mark.django_db

WEB_FORM_EVIDENCE = Evidence(
    wording="J'accepte de recevoir la lettre.",
    unticked_by_default=True,
    policy_version="2026-01",
    ip="203.0.113.7",
    user_agent="Mozilla/5.0 (test)",
)


def write(contact: Contact, purpose, action: str = "grant", **kwargs) -> ConsentWrite:
    kwargs.setdefault("source_kind", "web_form")
    kwargs.setdefault("channel", "email")
    kwargs.setdefault("evidence", WEB_FORM_EVIDENCE if action == "grant" else Evidence())
    return ConsentWrite(contact=contact, purpose=purpose, action=action, **kwargs)


def chain_of(contact: Contact) -> list[tuple[int, str, str]]:
    return list(
        ConsentRecord.objects.filter(contact=contact)
        .order_by("contact_seq")
        .values_list("contact_seq", "previous_hash", "hash")
    )


def assert_chained(contact: Contact) -> None:
    """The contact's records form one chain from genesis, and its head names the last one."""
    chain = chain_of(contact)
    previous = GENESIS_HASH
    for position, (seq, previous_hash, hash_) in enumerate(chain, start=1):
        assert (seq, previous_hash) == (position, previous)
        previous = hash_
    contact = Contact.objects.get(pk=contact.pk)
    assert (contact.ledger_seq, contact.ledger_hash) == (len(chain), previous)


# -- the statement budget (outside a transaction: inside one, Django adds a savepoint) -------


@pytest.mark.django_db(transaction=True)
def test_a_web_form_grant_with_ip_costs_at_most_7_statements():
    contact, purpose = ContactFactory(), PurposeFactory()
    # the CRM push queued after each commit reads the enabled connections from the cache,
    # the database once in a while (crmsync.services): warm, as on a running system
    enabled_connection_ids()

    with at_most_statements(7):
        record = consent_record(write=write(contact, purpose))

    assert record.status == "granted" and ConsentEvidence.objects.filter(record=record).exists()
    assert_chained(contact)
    assert ledger_verify() == []


@pytest.mark.django_db(transaction=True)
def test_a_withdrawal_without_personal_evidence_costs_at_most_6_statements():
    contact = ContactFactory()
    purpose = purposes_with_versions().get(pk=PurposeFactory().pk)  # as the page loads it
    grant(contact, purpose)
    withdrawal = write(contact, purpose, "withdraw", source_kind="preference_center")

    with at_most_statements(6):
        record = consent_record(write=withdrawal)

    assert record.status == "withdrawn"
    assert ConsentState.objects.get(contact=contact).status == "withdrawn"


@pytest.mark.django_db(transaction=True)
def test_a_preference_center_withdrawal_with_the_visitors_ip_costs_at_most_7_statements():
    contact = ContactFactory()
    purpose = purposes_with_versions().get(pk=PurposeFactory().pk)
    grant(contact, purpose)
    evidence = Visit(ip="198.51.100.4", user_agent="Firefox").evidence()
    withdrawal = write(
        contact, purpose, "withdraw", source_kind="preference_center", evidence=evidence
    )

    with at_most_statements(7):
        consent_record(write=withdrawal)

    assert ledger_verify() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_1500_writes_cost_at_most_16_statements():
    # PostgreSQL takes a chunk of 1,000 rows in one INSERT; SQLite splits by its 999 variables
    purposes = [PurposeFactory(), PurposeFactory(), PurposeFactory()]
    contacts = ContactFactory.create_batch(500)
    writes = [write(contact, purpose) for contact in contacts for purpose in purposes]

    with at_most_statements(16):
        records = consents_record_many(writes=writes)

    assert len(records) == 1500
    assert ConsentState.objects.filter(status="granted").count() == 1500
    assert TimelineEvent.objects.filter(kind="consent_changed").count() == 1500
    assert OutboxEvent.objects.filter(topic="consent.recorded").count() == 1500
    assert set(Contact.objects.values_list("ledger_seq", flat=True)) == {3}
    assert ledger_verify() == []


def test_statements_grow_with_chunks_not_with_writes():
    purpose = PurposeFactory()
    few = [write(contact, purpose) for contact in ContactFactory.create_batch(3)]
    many = [write(contact, purpose) for contact in ContactFactory.create_batch(60)]
    with connection.execute_wrapper(counter := StatementCounter()):
        consents_record_many(writes=few)
    few_statements, counter.count = counter.count, 0
    with connection.execute_wrapper(counter):
        consents_record_many(writes=many)

    # SQLite splits the INSERTs by its variable limit, PostgreSQL does not: a few more at most
    assert counter.count <= few_statements + 6
    assert ledger_verify() == []


class StatementCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


# -- chains -----------------------------------------------------------------------------------


def test_several_writes_for_one_contact_in_one_batch_chain_one_after_the_other():
    alice, bob = ContactFactory(), ContactFactory()
    newsletter, offers = PurposeFactory(), PurposeFactory()
    grant(alice, newsletter)  # alice's chain already has one record

    records = consents_record_many(
        writes=[
            write(alice, offers),
            write(bob, newsletter),
            write(alice, newsletter, "withdraw"),
            write(alice, offers, "withdraw"),
        ]
    )

    assert [r.contact_seq for r in records] == [2, 1, 3, 4]
    assert records[2].previous_hash == records[0].hash
    assert records[3].previous_hash == records[2].hash
    assert_chained(alice)
    assert_chained(bob)
    states = dict(ConsentState.objects.filter(contact=alice).values_list("purpose__slug", "status"))
    assert states == {newsletter.slug: "withdrawn", offers.slug: "withdrawn"}
    assert ConsentState.objects.get(contact=alice, purpose=offers).record_id == records[3].id
    assert ledger_verify() == []


def test_a_batch_means_what_the_same_writes_one_by_one_would_mean():
    purpose = PurposeFactory()
    one_by_one, batched = ContactFactory(), ContactFactory()
    plan = [("grant", None), ("withdraw", None), ("grant", timedelta(hours=-1))]

    for action, age in plan:
        given_at = timezone.now() + age if age else None
        consent_record(write=write(one_by_one, purpose, action, given_at=given_at))
    consents_record_many(
        writes=[
            write(batched, purpose, action, given_at=timezone.now() + age if age else None)
            for action, age in plan
        ]
    )

    def outcome(contact: Contact) -> tuple[object, ...]:
        records = ConsentRecord.objects.filter(contact=contact).order_by("contact_seq")
        state = ConsentState.objects.get(contact=contact)
        topics = OutboxEvent.objects.filter(contact_public_id=contact.public_id).order_by(
            "created_at"
        )
        return (
            [(r.action, r.status) for r in records],
            state.status,
            state.record.contact_seq,
            list(topics.values_list("topic", flat=True)),
            TimelineEvent.objects.filter(contact=contact, kind="consent_changed").count(),
        )

    # the late grant (given an hour ago, before the withdrawal) is kept but changes nothing
    assert outcome(batched) == outcome(one_by_one)
    assert outcome(batched)[1:3] == ("withdrawn", 2)
    assert outcome(batched)[3][-1] == "consent.superseded"
    assert ledger_verify() == []


def test_a_contacts_instance_saved_after_a_write_keeps_the_new_head():
    contact, purpose = ContactFactory(), PurposeFactory()
    stale = Contact.objects.get(pk=contact.pk)  # loaded before the write, as a form would
    grant(contact, purpose)

    stale.first_name = "Renamed"
    stale.save()
    grant(contact, purpose, channel="sms")

    assert_chained(contact)
    assert ledger_verify() == []


# -- all or nothing ---------------------------------------------------------------------------


def test_a_refused_write_names_its_index_and_nothing_is_written():
    purpose, erased = PurposeFactory(), ContactFactory(status="erased")
    alice = ContactFactory()
    before = (ConsentRecord.objects.count(), TimelineEvent.objects.count())

    with pytest.raises(ConsentWriteErrors) as refused:
        consents_record_many(
            writes=[
                write(alice, purpose),
                write(alice, purpose, channel="fax"),  # not a channel
                write(erased, purpose),
                write(alice, purpose, "withdraw"),
            ]
        )

    assert sorted(refused.value.errors) == [1, 2]
    assert refused.value.detail[0] == {} and refused.value.detail[3] == {}
    assert list(refused.value.detail[1]) == ["channel"]
    assert list(refused.value.detail[2]) == ["contact"]
    assert "write 1" in str(refused.value) and "write 2" in str(refused.value)
    assert (ConsentRecord.objects.count(), TimelineEvent.objects.count()) == before
    assert Contact.objects.get(pk=alice.pk).ledger_seq == 0


def test_a_single_write_still_raises_its_own_field_errors():
    with pytest.raises(ValidationError) as refused:
        consent_record(write=write(ContactFactory(), PurposeFactory(), channel="fax"))

    assert not isinstance(refused.value, ConsentWriteErrors)
    assert list(refused.value.message_dict) == ["channel"]


# -- the rules, per write of a batch ----------------------------------------------------------


def test_a_batch_of_double_opt_in_grants_queues_one_confirmation_per_contact(
    django_capture_on_commit_callbacks,
):
    newsletter, offers = PurposeFactory(double_opt_in=True), PurposeFactory(double_opt_in=True)
    alice, bob = ContactFactory(), ContactFactory()

    with (
        mock.patch("consent.tasks.send_double_opt_in_confirmation.delay") as send,
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        records = consents_record_many(
            writes=[
                write(alice, newsletter),
                write(alice, offers),
                write(bob, newsletter),
            ]
        )
        assert send.call_count == 0  # after the commit only

    # one confirmation per contact (and the CRM push, once for the transaction)
    assert len([hook for hook in callbacks if hook is not push_after_commit]) == 2

    assert [r.status for r in records] == ["pending", "pending", "pending"]
    assert sorted(call.args[0] for call in send.call_args_list) == sorted([alice.pk, bob.pk])


def test_a_list_cannot_re_add_a_suppressed_person_in_a_batch():
    purpose = PurposeFactory()
    kept, suppressed = ContactFactory(), ContactFactory()
    suppression_add(reason="global_unsubscribe", email=suppressed.email)

    # a list's grants with their proof: where and when the person consented
    from_list = {
        "source_kind": "import",
        "evidence": replace(WEB_FORM_EVIDENCE, collection_reference="salon-2026"),
        "given_at": timezone.now(),
    }

    with pytest.raises(ConsentWriteErrors) as refused:
        consents_record_many(
            writes=[write(kept, purpose, **from_list), write(suppressed, purpose, **from_list)]
        )

    assert list(refused.value.errors) == [1]
    assert list(refused.value.detail[1]) == ["email"]
    assert not ConsentRecord.objects.exists()


def test_the_persons_own_grant_lifts_the_suppression_for_the_next_writes_of_the_batch():
    purpose, other = PurposeFactory(), PurposeFactory()
    contact = ContactFactory()
    suppression_add(reason="global_unsubscribe", email=contact.email)

    records = consents_record_many(
        writes=[
            write(contact, purpose),  # a web form: waits for the person's click
            write(contact, purpose, source_kind=SourceKind.PREFERENCE_CENTER),
            write(contact, other),  # after the lift: granted
        ]
    )

    assert [r.status for r in records] == ["pending", "granted", "granted"]
    assert suppression_reason(kind="email", value=contact.email) is None
    assert_chained(contact)


def test_unsubscribe_all_withdraws_everything_in_one_batch():
    contact = ContactFactory()
    purposes = [PurposeFactory(channels=["email", "sms"]) for _ in range(3)]
    for purpose in purposes:
        grant(contact, purpose)
        grant(contact, purpose, channel="sms")

    with at_most_statements(12):  # purposes and versions, contact, states, then one batch
        records = consents_withdraw_all(
            contact=contact, source_kind="one_click_unsubscribe", evidence=Evidence()
        )

    assert len(records) == 6 and {r.status for r in records} == {"withdrawn"}
    assert [r.contact_seq for r in records] == list(range(7, 13))
    assert_chained(contact)


# -- concurrency (PostgreSQL: SQLite serialises every writer) ----------------------------------


def _hold_a_write_open(
    contact: Contact, purpose, started: threading.Event, release: threading.Event
):
    """In its own connection: write for `contact`, then keep the transaction open."""
    try:
        with transaction.atomic():
            consent_record(write=write(contact, purpose))
            started.set()
            release.wait(timeout=30)
    finally:
        connection.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_writes_for_two_contacts_do_not_wait_for_each_other():
    alice, bob, purpose = ContactFactory(), ContactFactory(), PurposeFactory()
    started, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_a_write_open, args=(alice, purpose, started, release))
    holder.start()
    try:
        assert started.wait(timeout=30)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")  # a global lock would fail here
        record = consent_record(write=write(bob, purpose))
        assert record.contact_seq == 1
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
        release.set()
        holder.join(timeout=30)
    assert_chained(alice)
    assert_chained(bob)
    assert ledger_verify() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_writes_for_one_contact_stay_ordered():
    alice, purpose = ContactFactory(), PurposeFactory()
    started, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_a_write_open, args=(alice, purpose, started, release))
    holder.start()
    try:
        assert started.wait(timeout=30)
        second: list[ConsentRecord] = []
        waiter = threading.Thread(
            target=lambda: (
                second.append(consent_record(write=write(alice, purpose, "withdraw"))),
                connection.close(),
            )
        )
        waiter.start()
        waiter.join(timeout=1)
        assert waiter.is_alive(), "the second write must wait for the first one's commit"
    finally:
        release.set()
        holder.join(timeout=30)
    waiter.join(timeout=30)

    assert [r.contact_seq for r in second] == [2]
    assert second[0].status == "withdrawn"
    assert_chained(alice)
    assert ledger_verify() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_suppression_added_while_the_write_waited_is_seen():
    contact, purpose = ContactFactory(), PurposeFactory()
    started, release = threading.Event(), threading.Event()

    def unsubscribe_and_hold() -> None:
        try:
            with transaction.atomic():
                Contact.objects.select_for_update().get(pk=contact.pk)
                suppression_add(reason="global_unsubscribe", email=contact.email)
                Contact.objects.filter(pk=contact.pk).update(marketing_objected_at=timezone.now())
                started.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=unsubscribe_and_hold)
    holder.start()
    assert started.wait(timeout=30)
    result: list[ConsentRecord] = []
    waiter = threading.Thread(
        target=lambda: (
            result.append(consent_record(write=write(contact, purpose))),
            connection.close(),
        )
    )
    # the confirmation email is not the point here (a real worker would race the teardown)
    with mock.patch("consent.tasks.send_double_opt_in_confirmation.delay") as send:
        waiter.start()
        waiter.join(timeout=1)
        release.set()
        holder.join(timeout=30)
        waiter.join(timeout=30)
    send.assert_called_once_with(contact.pk)

    # the web-form grant arrived for an address suppressed meanwhile: it waits for the click
    assert [r.status for r in result] == ["pending"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_state_written_while_the_write_waited_is_seen():
    alice, purpose = ContactFactory(), PurposeFactory()
    started, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_a_write_open, args=(alice, purpose, started, release))
    holder.start()
    assert started.wait(timeout=30)
    late: list[ConsentRecord] = []
    an_hour_ago = timezone.now() - timedelta(hours=1)
    waiter = threading.Thread(
        target=lambda: (
            late.append(consent_record(write=write(alice, purpose, given_at=an_hour_ago))),
            connection.close(),
        )
    )
    waiter.start()
    waiter.join(timeout=1)
    release.set()
    holder.join(timeout=30)
    waiter.join(timeout=30)

    # the grant given an hour ago arrived after today's grant: kept, but it changes nothing
    state = ConsentState.objects.get(contact=alice)
    assert state.record.contact_seq == 1 and late[0].contact_seq == 2
    topics = (
        OutboxEvent.objects.filter(contact_public_id=alice.public_id)
        .order_by("created_at")
        .values_list("topic", flat=True)
    )
    assert list(topics) == ["consent.recorded", "consent.superseded"]
    assert_chained(alice)


def test_a_batch_longer_than_one_chunk_locks_and_writes_every_contact(monkeypatch):
    """Writes for more contacts than a chunk: each chunk's contacts are read with their states
    (a join bound afresh to each chunk's statement), and every write is recorded."""
    monkeypatch.setattr("consent.services.consents.WRITE_CHUNK_SIZE", 2)
    purpose = purposes_with_versions().get(pk=PurposeFactory().pk)
    contacts = ContactFactory.create_batch(5)

    records = consents_record_many(writes=[write(contact, purpose) for contact in contacts])

    assert len(records) == 5
    states = ConsentState.objects.filter(purpose=purpose, channel="email", status="granted")
    assert sorted(states.values_list("contact_id", flat=True)) == sorted(c.pk for c in contacts)
