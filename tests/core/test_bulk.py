"""Large batches go through COPY and array upserts on PostgreSQL (core.bulk): the rows written
are exactly those `bulk_create` writes, awkward values included, and the consent ledger they
carry verifies."""

from datetime import timedelta

import pytest
from django.utils import timezone

import core.bulk
from consent.ledger import ledger_seal, ledger_verify
from consent.models import ConsentRecord, ConsentState, ConsentStatus
from consent.services import ConsentWrite, Evidence, consents_record_many
from contacts.models import TimelineEvent
from contacts.services import timeline_add_many
from core.bulk import bulk_insert, bulk_insert_rows, bulk_upsert_rows
from crmsync.models import OutboxEvent
from crmsync.services import outbox_emit_many
from tests.factories import ContactFactory, PurposeFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

AWKWARD = ["", "\\N", 'a "quoted" « mot », back\\slash', "line\nbreak\r\nand\ttab", "😀 \u2028"]


@pytest.fixture
def copies(monkeypatch):
    """The tables each COPY of the test wrote to."""
    seen: list[str] = []
    copy_rows = core.bulk.copy_rows

    def spy(cursor, table, fields, rows):
        seen.append(table)
        return copy_rows(cursor, table, fields, rows)

    monkeypatch.setattr(core.bulk, "copy_rows", spy)
    return seen


def test_copy_keeps_empty_text_apart_from_null_and_writes_awkward_text_as_given(copies):
    contact = ContactFactory()
    now = timezone.now()
    rows = [
        {
            "contact_id": contact.pk,
            "kind": "note",
            "summary": AWKWARD[n % len(AWKWARD)],
            "data": {"n": n, "text": AWKWARD[n % len(AWKWARD)], "nested": {"list": [1, None]}},
            "occurred_at": now + timedelta(microseconds=n),
        }
        for n in range(core.bulk.COPY_MIN_ROWS)
    ]
    bulk_insert_rows(TimelineEvent, rows)

    assert copies == ["contacts_timelineevent"]
    stored = list(
        TimelineEvent.objects.filter(contact=contact)
        .order_by("occurred_at")
        .values("summary", "data", "occurred_at")
    )
    assert stored == [
        {"summary": r["summary"], "data": r["data"], "occurred_at": r["occurred_at"]} for r in rows
    ]


def test_copy_writes_null_booleans_and_ips_as_bulk_create_does(copies):
    """The same records and evidence, once by bulk_create (a small batch) and once by COPY."""
    purpose = PurposeFactory(channels=["email"])
    ips = [None, "203.0.113.7", "2001:db8::1"]
    ticks = [None, True]
    # staff in the admin may leave the box undeclared (null); a CRM's grant is second-hand
    kinds = ["admin", "crm"]
    size = core.bulk.COPY_MIN_ROWS
    now = timezone.now()

    def writes(contacts):
        return [
            ConsentWrite(
                contact=contact,
                purpose=purpose,
                channel="email",
                action="grant",
                source_kind=kinds[n % 2],
                source_reference=AWKWARD[n % len(AWKWARD)] or "https://example.fr",
                evidence=Evidence(
                    wording=purpose.current_version.wording_fr,
                    unticked_by_default=ticks[n % 2],
                    policy_version=AWKWARD[n % len(AWKWARD)][:50],
                    ip=ips[n % 3],
                    user_agent=f"Agent {AWKWARD[n % len(AWKWARD)]}",
                    collection_reference=AWKWARD[n % len(AWKWARD)] or "salon",
                ),
                given_at=now,
            )
            for n, contact in enumerate(contacts)
        ]

    small = [ContactFactory() for _ in range(3)]
    large = [ContactFactory() for _ in range(size)]
    consents_record_many(writes=writes(small))
    assert copies == []
    consents_record_many(writes=writes(large))
    assert "consent_consentrecord" in copies and "consent_consentevidence" in copies

    def seen(contacts):
        fields = [
            "source_reference",
            "policy_version",
            "unticked_by_default",
            "wording",
            "actor",
            "second_hand",
            "collection_reference",
        ]
        records = ConsentRecord.objects.filter(contact__in=contacts).order_by("contact_id")
        evidence = [(r.personal_evidence.ip, r.personal_evidence.user_agent) for r in records]
        return [tuple(getattr(r, f) for f in fields) for r in records], evidence

    small_rows, small_evidence = seen(small)
    large_rows, large_evidence = seen(large)
    assert large_rows[:3] == small_rows
    assert large_evidence[:3] == small_evidence
    assert (
        ConsentState.objects.filter(contact__in=large, status=ConsentStatus.GRANTED).count() == size
    )
    ledger_seal()
    assert ledger_verify() == []


def test_upsert_by_arrays_updates_the_rows_it_meets_and_inserts_the_others():
    purpose = PurposeFactory(channels=["email", "sms"])
    contacts = [ContactFactory() for _ in range(core.bulk.COPY_MIN_ROWS)]
    for contact in contacts[:10]:  # ten states exist already, with their records
        consents_record_many(
            writes=[
                ConsentWrite(
                    contact=contact,
                    purpose=purpose,
                    channel="email",
                    action="grant",
                    source_kind="api",
                    evidence=Evidence(wording="Oui", unticked_by_default=True),
                )
            ]
        )
    record = ConsentRecord.objects.first()
    later = timezone.now() + timedelta(minutes=1)

    bulk_upsert_rows(
        ConsentState,
        [
            {
                "contact_id": contact.pk,
                "purpose_id": purpose.pk,
                "channel": "email",
                "status": ConsentStatus.WITHDRAWN,
                "purpose_version_id": purpose.current_version.pk,
                "record_id": record.pk,
                "since": later,
                "actor": record.actor,
            }
            for contact in contacts
        ],
        unique_fields=["contact", "purpose", "channel"],
        update_fields=["status", "since"],
    )

    states = ConsentState.objects.filter(purpose=purpose, channel="email")
    assert states.count() == len(contacts)
    assert set(states.values_list("status", "since")) == {(ConsentStatus.WITHDRAWN, later)}


def test_ids_drawn_for_copied_rows_are_theirs_and_the_sequence_moves_on():
    contact = ContactFactory()
    rows = [
        TimelineEvent(contact=contact, kind="note", summary=str(n))
        for n in range(core.bulk.COPY_MIN_ROWS)
    ]

    bulk_insert(TimelineEvent, rows)
    after = TimelineEvent.objects.create(contact=contact, kind="note", summary="after")

    assert all(row.pk for row in rows) and not any(row._state.adding for row in rows)
    assert {row.pk: row.summary for row in rows} == dict(
        TimelineEvent.objects.filter(pk__in=[r.pk for r in rows]).values_list("pk", "summary")
    )
    assert after.pk > max(row.pk for row in rows)


def test_large_outbox_and_timeline_batches_keep_their_order_and_payloads():
    contacts = [ContactFactory() for _ in range(core.bulk.COPY_MIN_ROWS)]
    payloads = [{"n": n, "text": AWKWARD[n % len(AWKWARD)]} for n in range(len(contacts))]

    outbox_emit_many(
        events=[("contact.updated", c, p) for c, p in zip(contacts, payloads, strict=True)]
    )
    timeline_add_many(
        events=[
            {
                "contact_id": c.pk,
                "kind": "note",
                "summary": "x" * 600,
                "data": {},
                "occurred_at": timezone.now(),
            }
            for c in contacts
        ]
    )

    assert list(OutboxEvent.objects.order_by("created_at").values_list("payload", flat=True)) == (
        payloads
    )
    assert {len(s) for s in TimelineEvent.objects.values_list("summary", flat=True)} == {500}
