"""The verifier's fast path reads records as tuples and writes their canonical JSON itself: it
must give the very bytes `record_hash` and `evidence_digest` hash, or every existing ledger
would stop verifying (or, worse, a forged one would pass)."""

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import given
from hypothesis import strategies as st

from consent.ledger import (
    _evidence_digest_of_row,
    _timestamp,
    evidence_digest,
    ledger_seal,
    ledger_verify,
    record_hash,
    record_hash_of_row,
)
from consent.models import ConsentEvidence, ConsentRecord
from consent.services import Evidence
from tests.factories import ContactFactory, PurposeFactory, grant

# text as people and browsers write it: accents, quotes, backslashes, control characters,
# emoji (outside the BMP), the separators JSON escapes or not
TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8", exclude_categories=["Cs"]),
        st.sampled_from(['"', "\\", "\n", "\t", "\x00", "\u2028", "é", "😀", "/", ":", ","]),
    ),
    max_size=40,
)
MOMENTS = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]),
)


@given(
    hash_version=st.sampled_from([1, 2]),
    contact=st.integers(min_value=1, max_value=2**40),
    resolves=st.one_of(st.none(), st.integers(min_value=1, max_value=2**40)),
    unticked=st.sampled_from([None, True, False]),
    given_at=MOMENTS,
    recorded_at=MOMENTS,
    wording=TEXT,
    source_reference=TEXT,
    policy_version=TEXT,
    language=st.sampled_from(["", "fr", "en"]),
    contact_seq=st.integers(min_value=1, max_value=2**40),
)
def test_the_fast_record_hash_hashes_the_bytes_record_hash_does(
    hash_version, contact, resolves, unticked, given_at, recorded_at, wording, **fields
):
    record = ConsentRecord(
        uuid=uuid.uuid4(),
        contact_id=contact,
        purpose_id=3,
        purpose_version_id=7,
        channel="email",
        action="grant",
        status="granted",
        given_at=given_at,
        recorded_at=recorded_at,
        source_kind="web_form",
        source_reference=fields["source_reference"],
        wording=wording,
        language=fields["language"],
        unticked_by_default=unticked,
        policy_version=fields["policy_version"],
        evidence_digest="ab" * 32,
        resolves_id=resolves,
        previous_hash="cd" * 32,
        hash_version=hash_version,
        contact_seq=fields["contact_seq"],
    )

    fast = record_hash_of_row(
        record_uuid=str(record.uuid),
        contact=contact,
        purpose=3,
        purpose_version=7,
        channel="email",
        action="grant",
        status="granted",
        given_at=_timestamp(given_at),
        recorded_at=_timestamp(recorded_at),
        source_kind="web_form",
        source_reference=fields["source_reference"],
        wording=wording,
        language=fields["language"],
        unticked_by_default=unticked,
        policy_version=fields["policy_version"],
        evidence_digest_hex="ab" * 32,
        resolves=resolves,
        previous_hash="cd" * 32,
        hash_version=hash_version,
        contact_seq=fields["contact_seq"],
    )

    assert fast == record_hash(record)


@given(nonce=TEXT, ip=st.sampled_from([None, "", "203.0.113.7", "2001:db8::1"]), agent=TEXT)
def test_the_fast_evidence_digest_hashes_the_bytes_evidence_digest_does(nonce, ip, agent):
    evidence = ConsentEvidence(nonce=nonce, ip=ip, user_agent=agent, document_sha256="ef" * 32)

    assert _evidence_digest_of_row(nonce, ip, agent, "ef" * 32) == evidence_digest(evidence)


@pytest.mark.django_db
def test_records_with_awkward_text_written_by_the_write_path_verify():
    purpose = PurposeFactory()
    for number, text in enumerate(
        ['« Oui » "quoted" \\ back', "emoji 😀 and \u2028", "plain \\t tab"]
    ):
        contact = ContactFactory()
        grant(
            contact,
            purpose,
            source_reference=f"https://example.fr/é/{number}",
            evidence=Evidence(
                wording=text,
                unticked_by_default=True,
                policy_version="v é",
                ip="2001:db8::1" if number else "203.0.113.7",
                user_agent=f"Agent/{text}",
            ),
        )
        grant(contact, purpose, action="withdraw", evidence=None)  # no box, no evidence
    ledger_seal()

    assert ledger_verify() == []


@pytest.mark.django_db
def test_verify_reads_the_records_in_a_number_of_queries_that_does_not_grow_with_them():
    purpose = PurposeFactory()

    def queries_of_verify() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert ledger_verify(chunk_size=10_000) == []
        return len(queries)

    grant(ContactFactory(), purpose)
    ledger_seal()
    few = queries_of_verify()
    for _ in range(30):
        grant(ContactFactory(), purpose)
    ledger_seal()

    assert queries_of_verify() == few


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_verify_outside_a_transaction_reads_one_read_only_snapshot():
    purpose = PurposeFactory()
    for _ in range(3):
        grant(ContactFactory(), purpose)
    ledger_seal()

    with CaptureQueriesContext(connection) as queries:
        report = ledger_verify()

    assert report == [] and report.records == 3
    statements = [query["sql"] for query in queries.captured_queries if query["sql"] != "BEGIN"]
    assert "REPEATABLE READ, READ ONLY" in statements[0]
    assert not connection.in_atomic_block
