"""The proof archive (issue 12, point 5): on erasure, who consented and the personal evidence
move to an encrypted entry kept for PROOF_RETENTION_YEARS (EDPB 05/2020 para 107, GDPR Art.
17(3)(e)); then the daily job deletes it with the person's ledger records, and the ledger
still verifies (Art. 5(1)(e)). The suppression hash stays.

Sealing reads what other transactions committed, so these tests commit their writes.
"""

import base64
import json
import threading
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from celery.schedules import crontab
from cryptography.fernet import Fernet
from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from freezegun import freeze_time

from campaigns.models import Recipient, RecipientStatus
from campaigns.selectors import campaign_stats
from consent.ledger import ledger_seal, ledger_verify
from consent.models import (
    ConsentEvidence,
    ConsentRecord,
    ConsentState,
    LedgerSeal,
    LedgerTombstone,
    SealKind,
)
from consent.services.consents import Evidence
from contacts.models import Contact, SuppressionKind
from contacts.selectors import suppression_reason
from privacy.models import ProofArchiveEntry
from privacy.proof import proof_archive_rotate, proof_archives_expire, proof_cipher
from privacy.services import contact_erase, contacts_erase_many
from privacy.tasks import expire_proof_archive
from tests.consent.test_ledger_seals import ON_POSTGRES
from tests.factories import ContactFactory, PurposeFactory, campaign_make, grant

pytestmark = pytest.mark.django_db(transaction=True)

ERASED_AT = "2026-01-10T10:00:00Z"
SCAN = b"%PDF-1.4 signed form of Camille"


def _person(purpose: Any, email: str = "camille.martin@example.fr") -> Contact:
    contact = ContactFactory(
        email=email, phone="+33612345678", first_name="Camille", last_name="Martin"
    )
    grant(contact, purpose)
    grant(
        contact,
        purpose,
        channel="postal",
        source_kind="paper_form",
        evidence=Evidence(
            wording=purpose.current_version.wording_fr,
            unticked_by_default=True,
            document=ContentFile(SCAN, name="form.pdf"),
        ),
    )
    return contact


def decrypted(entry: ProofArchiveEntry) -> Any:
    return json.loads(proof_cipher().decrypt(entry.ciphertext.encode()))


@pytest.fixture
def purpose() -> Any:
    return PurposeFactory(channels=["email", "postal"])


def test_erasure_moves_the_identity_and_the_evidence_to_an_encrypted_entry(purpose):
    # given a person with a web-form grant (IP, user agent) and a signed paper form
    contact = _person(purpose)
    document = ConsentEvidence.objects.exclude(document="").get(record__contact=contact).document
    uuids = list(ConsentRecord.objects.filter(contact=contact).values_list("uuid", flat=True))

    # when they are erased
    with freeze_time(ERASED_AT):
        contact_erase(contact=contact, reason="erasure")

    # then their evidence left the ledger's tables, and is in one encrypted entry
    assert not ConsentEvidence.objects.filter(record__contact=contact).exists()
    assert not document.storage.exists(document.name)
    entry = ProofArchiveEntry.objects.get(contact=contact)
    assert entry.erased_at.isoformat() == "2026-01-10T10:00:00+00:00"
    assert entry.delete_after == entry.erased_at + relativedelta(years=5)
    stored = ProofArchiveEntry.objects.values_list("ciphertext", flat=True).get()
    assert "camille" not in stored.lower() and "203.0.113.7" not in stored
    content = decrypted(entry)
    assert content["contact"]["email"] == "camille.martin@example.fr"
    assert content["contact"]["phone"] == "+33612345678"
    assert (content["contact"]["first_name"], content["contact"]["last_name"]) == (
        "Camille",
        "Martin",
    )
    by_record = {row["record"]: row for row in content["evidence"]}
    assert set(by_record) == {str(uuid) for uuid in uuids}
    web, paper = (by_record[str(uuid)] for uuid in uuids)
    assert (web["ip"], web["user_agent"]) == ("203.0.113.7", "Mozilla/5.0 (test)")
    assert base64.b64decode(paper["document_content"]) == SCAN
    assert paper["document_sha256"]
    # and the ledger still verifies: the evidence digests stay in the records
    ledger_seal()
    assert ledger_verify() == []


def test_with_a_proof_period_of_0_nothing_is_archived(purpose, settings):
    settings.PROOF_RETENTION_YEARS = 0
    contact = _person(purpose)

    contact_erase(contact=contact, reason="erasure")

    assert not ProofArchiveEntry.objects.exists()
    assert not ConsentEvidence.objects.filter(record__contact=contact).exists()


def test_a_person_without_consent_records_leaves_no_entry():
    contact = ContactFactory()

    contact_erase(contact=contact, reason="erasure")

    assert not ProofArchiveEntry.objects.exists()


def test_a_batch_erasure_archives_each_person_apart(purpose):
    people = [_person(purpose, email=f"p{n}@example.fr") for n in range(3)]

    outcome = contacts_erase_many(contact_ids=[c.pk for c in people], reason="retention")

    assert sorted(outcome.erased) == sorted(c.pk for c in people)
    entries = {e.contact_id: e for e in ProofArchiveEntry.objects.all()}
    assert set(entries) == {c.pk for c in people}
    assert [decrypted(entries[c.pk])["contact"]["email"] for c in people] == [
        "p0@example.fr",
        "p1@example.fr",
        "p2@example.fr",
    ]
    assert {e.reason for e in entries.values()} == {"retention"}


def test_after_the_proof_period_the_job_deletes_the_entry_and_the_records(purpose):
    # given Camille erased in January 2026, and Bruno still a contact
    bruno = ContactFactory()
    with freeze_time(ERASED_AT):
        camille = _person(purpose)
        kept = grant(bruno, purpose)
        contact_erase(contact=camille, reason="erasure")
        ledger_seal()
    erased_email = "camille.martin@example.fr"

    # when the job runs the day before the end of the period: nothing goes
    with freeze_time("2031-01-09T02:30:00Z"):
        assert expire_proof_archive() == 0
    assert ProofArchiveEntry.objects.filter(contact=camille).exists()

    # when it runs after the end: the entry and Camille's records go
    with freeze_time("2031-01-11T02:30:00Z"):
        assert expire_proof_archive() == 1
    assert not ProofArchiveEntry.objects.exists()
    assert not ConsentRecord.objects.filter(contact=camille).exists()
    assert not ConsentState.objects.filter(contact=camille).exists()
    assert LedgerTombstone.objects.filter(contact=camille).count() == 4
    assert list(ConsentRecord.objects.filter(contact=bruno)) == [kept]
    # the suppression hash stays (CNIL: at least three years)
    assert suppression_reason(kind=SuppressionKind.EMAIL, value=erased_email) is not None
    # and what remains verifies, through the command too
    assert ledger_verify() == []
    out = StringIO()
    call_command("verify_ledger", stdout=out, stderr=StringIO())
    assert "Consent ledger intact: 1 record(s) verified" in out.getvalue()
    assert "4 removed at the end of their proof period" in out.getvalue()

    # when the job runs again, it does nothing more
    seals = LedgerSeal.objects.count()
    with freeze_time("2031-01-12T02:30:00Z"):
        assert expire_proof_archive() == 0
    assert LedgerSeal.objects.count() == seals
    assert LedgerSeal.objects.filter(kind=SealKind.STRIP).count() == 1
    assert ledger_verify() == []


def test_an_entry_waits_while_its_person_has_a_record_not_sealed_yet(purpose):
    with freeze_time(ERASED_AT):
        camille = _person(purpose)
        contact_erase(contact=camille, reason="erasure")

    with freeze_time("2031-01-11T02:30:00Z"):
        assert expire_proof_archive() == 0
        assert ProofArchiveEntry.objects.filter(contact=camille).exists()
        ledger_seal()
        assert expire_proof_archive() == 1

    assert not ConsentRecord.objects.filter(contact=camille).exists()
    assert ledger_verify() == []


def test_the_job_runs_daily_from_beat():
    entry = settings.CELERY_BEAT_SCHEDULE["expire-proof-archive"]

    assert entry["task"] == "privacy.tasks.expire_proof_archive"
    assert entry["schedule"] == crontab(hour=2, minute=30)


def test_entries_written_under_a_previous_key_are_read_and_rotated(purpose, settings):
    # given an entry written under the key in use then
    contact = _person(purpose)
    contact_erase(contact=contact, reason="erasure")
    old_key = settings.FIELD_ENCRYPTION_KEY
    before = ProofArchiveEntry.objects.get().ciphertext

    # when a new key comes first and the old one is kept for reading
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY, settings.FIELD_ENCRYPTION_PREVIOUS_KEYS = new_key, [old_key]
    assert decrypted(ProofArchiveEntry.objects.get())["contact"]["first_name"] == "Camille"
    assert proof_archive_rotate() == 1

    # then the entry is readable under the new key alone
    settings.FIELD_ENCRYPTION_PREVIOUS_KEYS = []
    entry = ProofArchiveEntry.objects.get()
    assert entry.ciphertext != before
    assert decrypted(entry)["contact"]["first_name"] == "Camille"
    assert entry.delete_after - entry.erased_at > timedelta(days=365 * 5)


@ON_POSTGRES
def test_two_runs_of_the_job_at_once_remove_the_person_once(purpose):
    with freeze_time(ERASED_AT):
        camille = _person(purpose)
        contact_erase(contact=camille, reason="erasure")
        ledger_seal()
    later = timezone.make_aware(datetime(2031, 1, 11, 2, 30))
    holding, release = threading.Event(), threading.Event()
    results: list[int] = []

    def first_run() -> None:
        try:
            with transaction.atomic():
                results.append(proof_archives_expire(now=later))
                holding.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    first = threading.Thread(target=first_run)
    first.start()
    assert holding.wait(timeout=30)
    second = threading.Thread(
        target=lambda: (results.append(proof_archives_expire(now=later)), connection.close())
    )
    second.start()
    second.join(timeout=1)
    assert second.is_alive()  # waiting for the first run's lock on the entry
    release.set()
    first.join(timeout=30)
    second.join(timeout=30)

    assert sorted(results) == [0, 1]
    assert LedgerSeal.objects.filter(kind=SealKind.STRIP).count() == 1
    assert LedgerTombstone.objects.filter(contact=camille).count() == 4
    assert ledger_verify() == []


def test_the_end_of_the_proof_period_unlinks_campaign_recipients_and_keeps_the_counts(purpose):
    # given Camille received a campaign on her consent, then was erased
    with freeze_time(ERASED_AT):
        camille = _person(purpose)
        campaign = campaign_make(purpose)
        Recipient.objects.create(
            campaign=campaign,
            step=campaign.steps.get(),
            contact=camille,
            status=RecipientStatus.SENT,
            sent_at=timezone.now(),
            consent_record=ConsentRecord.objects.filter(contact=camille).first(),
            legal_basis="consent",
        )
        contact_erase(contact=camille, reason="erasure")
        ledger_seal()

    # when her proof period ends
    with freeze_time("2031-01-11T02:30:00Z"):
        assert expire_proof_archive() == 1

    # then her records are gone, the recipient stays, counted, without its record
    assert not ConsentRecord.objects.filter(contact=camille).exists()
    recipient = Recipient.objects.get()
    assert recipient.consent_record is None
    assert recipient.legal_basis == "consent"
    assert campaign_stats(campaign)["sent"] == 1
