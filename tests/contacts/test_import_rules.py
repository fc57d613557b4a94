"""The rules of an import: dedupe in the file and against the base, suppressions and erasures
refused, consent only with its evidence, double opt-in pending with one email per contact,
every rejected row reported, and a re-import that creates nothing new."""

import io
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from consent.models import ConsentRecord, ConsentState
from contacts.imports import contact_import_run, contacts_import
from contacts.models import Contact, ContactImport, SuppressionReason, TimelineEvent
from contacts.services import suppression_add
from crmsync.models import OutboxEvent
from privacy.services import contact_erase
from tests.contacts.imports import (
    LOADED_BY_WORKER,
    csv_bytes,
    loaded_by_worker,
    rejected,
    run_import,
)
from tests.factories import ContactFactory, PurposeFactory

pytestmark = pytest.mark.django_db

WORDING = "Je souhaite recevoir la lettre d'information."
SOURCE = "Salon Vivatech 2025, formulaire papier scanné"


def consent_for(purpose, /, **extra: str) -> dict[str, str]:
    return {
        "purpose": purpose.slug,
        "channel": "email",
        "wording": WORDING,
        "source_reference": SOURCE,
        "given_at_column": "consent_date",
        **extra,
    }


def test_one_email_on_several_lines_is_one_contact_and_the_later_line_wins() -> None:
    lines = [
        "email,first_name,city",
        "ana@example.fr,Ana,Lyon",
        "  ANA@Example.fr ,Anna,",
        "other@example.fr,Bo,Nice",
    ]

    done = run_import(csv_bytes(lines))

    assert Contact.objects.filter(email="ana@example.fr").count() == 1
    ana = Contact.objects.get(email="ana@example.fr")
    assert (ana.first_name, ana.city) == ("Anna", "Lyon")  # an empty cell changes nothing
    assert (done.rows, done.processed, done.created, done.updated, done.rejected) == (3, 3, 2, 0, 0)


def test_a_duplicate_line_in_a_later_batch_updates_the_contact_it_created() -> None:
    lines = ["email,first_name", "ana@example.fr,Ana", "ana@example.fr,Anna"]

    done = run_import(csv_bytes(lines), batch_size=1)

    assert Contact.objects.get(email="ana@example.fr").first_name == "Anna"
    assert (done.created, done.updated) == (1, 1)


def test_existing_contacts_are_updated_not_duplicated_with_timeline_and_outbox() -> None:
    known = ContactFactory(email="known@example.fr", first_name="Old", city="Paris")
    lines = ["email,first_name,city,phone", "Known@Example.fr,New,,06 12 34 56 78"]

    done = run_import(csv_bytes(lines))

    known.refresh_from_db()
    assert Contact.objects.count() == 1
    assert (known.first_name, known.city, known.phone) == ("New", "Paris", "+33612345678")
    assert known.phone_digest  # the suppression key follows the new phone
    assert (done.created, done.updated) == (0, 1)
    event = TimelineEvent.objects.get(contact=known)
    assert (event.kind, event.data) == ("updated", {"fields": ["first_name", "phone"]})
    outbox = OutboxEvent.objects.get(contact_public_id=known.public_id)
    assert outbox.topic == "contact.updated"
    assert outbox.payload["changed"] == ["first_name", "phone"]
    assert outbox.payload["first_name"] == "New"


def test_created_contacts_get_what_contact_save_computes() -> None:
    reference = Contact(email="new@example.fr", phone="+33612345678")
    reference.save()
    expected = (reference.email_digest, reference.email_quoted_digest, reference.phone_digest)
    reference.delete()

    run_import(csv_bytes(["email,phone,source", "new@example.fr,+33612345678,salon"]))

    imported = Contact.objects.get(email="new@example.fr")
    assert all(expected)
    assert (imported.email_digest, imported.email_quoted_digest, imported.phone_digest) == expected
    assert imported.public_id and imported.created_at and imported.updated_at
    assert TimelineEvent.objects.get(contact=imported).kind == "created"
    created = OutboxEvent.objects.get(contact_public_id=imported.public_id)
    assert (created.topic, created.payload["email"]) == ("contact.created", "new@example.fr")


def test_suppressed_addresses_and_phones_are_rejected_with_the_reason() -> None:
    suppression_add(reason=SuppressionReason.COMPLAINT, email="Gone@example.fr")
    suppression_add(reason=SuppressionReason.HARD_BOUNCE, phone="+33698765432")
    lines = [
        "email,phone",
        "gone@example.fr,",
        "fine@example.fr,",
        "phoned@example.fr,06 98 76 54 32",
    ]

    done = run_import(csv_bytes(lines))

    assert list(Contact.objects.values_list("email", flat=True)) == ["fine@example.fr"]
    reasons = dict(rejected(done))
    assert sorted(reasons) == [2, 4]
    assert reasons[2].startswith("email: This person is on the suppression list (Complaint)")
    assert reasons[4].startswith("phone: This person is on the suppression list (Hard bounce)")


def test_an_erased_person_is_never_re_created() -> None:
    person = ContactFactory(email="erased@example.fr")
    contact_erase(contact=person, reason="erasure")

    done = run_import(csv_bytes(["email,first_name", "erased@example.fr,Back"]))

    assert not Contact.objects.filter(email="erased@example.fr").exists()
    assert done.created == 0
    assert "suppression list (Erased)" in rejected(done)[0][1]


def test_bad_rows_are_reported_with_line_and_reason_and_valid_rows_are_kept() -> None:
    lines = [
        "email,first_name,country,language,interests",
        "one@example.fr,Un,FR,fr,",
        "not an email,Deux,FR,fr,",
        "three@example.fr,Trois,France,fr,",
        "four@example.fr,Quatre,FR,klingon,",
        "five@example.fr,Cinq,FR,fr,unknown-topic",
        "six@example.fr," + "x" * 151 + ",FR,fr,",
        "seven@example.fr,Sept,FR,en,",
    ]

    done = run_import(csv_bytes(lines))

    assert sorted(Contact.objects.values_list("email", flat=True)) == [
        "one@example.fr",
        "seven@example.fr",
    ]
    assert rejected(done) == [
        (3, "email: Enter a valid email address."),
        (4, "country: Use a two-letter ISO 3166 country code."),
        (5, "language: Not a valid choice."),
        (6, "interests: Unknown interest: unknown-topic"),
        (7, "first_name: Use 150 characters at most (it has 151)."),
    ]
    assert (done.processed, done.created, done.rejected) == (7, 2, 5)


def test_consents_are_recorded_with_their_evidence_from_the_declaration() -> None:
    purpose = PurposeFactory(channels=["email"])
    lines = ["email,consent_date", "a@example.fr,2025-03-01 10:30", "b@example.fr,15/02/2025"]

    done = run_import(csv_bytes(lines), consent=consent_for(purpose))

    assert done.consents_recorded == 2
    record = ConsentRecord.objects.get(contact__email="a@example.fr")
    assert (record.action, record.status, record.source_kind, record.wording) == (
        "grant",
        "granted",
        "import",
        WORDING,
    )
    assert record.given_at == datetime(2025, 3, 1, 9, 30, tzinfo=UTC)  # Paris time
    assert record.source_reference == f"{SOURCE} (import {done.public_id}, line 2)"
    # second-hand proof: the person consented elsewhere, where the declaration says
    assert (record.second_hand, record.collection_reference) == (True, SOURCE)
    assert ConsentState.objects.filter(purpose=purpose, status="granted").count() == 2


def test_wording_and_source_may_come_from_columns() -> None:
    purpose = PurposeFactory(channels=["email"])
    lines = [
        "email,consent_date,consent_wording,consent_source",
        "a@example.fr,2025-03-01,Oui aux nouvelles,https://example.fr/form-a",
        "b@example.fr,2025-03-02,,https://example.fr/form-b",
    ]

    done = run_import(
        csv_bytes(lines),
        consent={"purpose": purpose.slug, "channel": "email", "given_at_column": "consent_date"},
    )

    assert done.consents_recorded == 1
    assert ConsentRecord.objects.get().wording == "Oui aux nouvelles"
    assert rejected(done) == [(3, "consent_wording: The wording shown is required.")]
    assert Contact.objects.count() == 1  # a row granting consent without its proof is refused


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        ({"wording": ""}, "purchased lists without proof are refused"),
        ({"source_reference": ""}, "purchased lists without proof are refused"),
        ({"given_at_column": ""}, "date each person consented"),
        ({"channel": "sms"}, "not used on this channel"),
        ({"purpose": "nope"}, "Unknown purpose"),
    ],
)
def test_a_consent_declared_without_its_proof_is_refused_up_front(
    declaration: dict[str, str], message: str
) -> None:
    purpose = PurposeFactory(channels=["email"])
    content = csv_bytes(["email,signed_on", "a@example.fr,2025-03-01"])

    with pytest.raises(ValidationError) as caught:
        contacts_import(
            file=io.BytesIO(content),
            file_name="list.csv",
            consent=consent_for(purpose, **{"given_at_column": "signed_on", **declaration}),
            queue=False,
        )

    assert message in str(caught.value.message_dict["consent"])
    assert not ContactImport.objects.exists()


def test_rows_without_a_valid_consent_date_are_rejected() -> None:
    purpose = PurposeFactory(channels=["email"])
    lines = [
        "email,consent_date",
        "a@example.fr,",
        "b@example.fr,yesterday",
        "c@example.fr,2999-01-01",
        "d@example.fr,2025-01-01",
    ]

    done = run_import(csv_bytes(lines), consent=consent_for(purpose))

    assert list(Contact.objects.values_list("email", flat=True)) == ["d@example.fr"]
    assert rejected(done) == [
        (2, "given_at: Enter the date the person consented."),
        (
            3,
            "given_at: Not a date: “yesterday” (use YYYY-MM-DD or DD/MM/YYYY, with an "
            "optional time).",
        ),
        (4, "given_at: Consent cannot be given in the future."),
    ]


@LOADED_BY_WORKER
def test_double_opt_in_grants_are_pending_with_one_email_per_contact(
    mailbox, celery_worker, django_capture_on_commit_callbacks
) -> None:
    purpose = PurposeFactory(channels=["email"], double_opt_in=True)
    lines = ["email,consent_date"] + [f"p{n}@example.fr,2025-03-0{n + 1}" for n in range(3)]

    with loaded_by_worker(django_capture_on_commit_callbacks):
        done = run_import(csv_bytes(lines), consent=consent_for(purpose), batch_size=2)
    mailbox.wait(3)

    assert done.consents_recorded == 3
    assert set(ConsentState.objects.values_list("status", flat=True)) == {"pending"}
    recipients = sorted(message["To"] for message in mailbox.messages)
    assert recipients == [f"p{n}@example.fr" for n in range(3)]


def test_reimporting_the_same_file_creates_nothing_new() -> None:
    purpose = PurposeFactory(channels=["email"])
    content = csv_bytes(
        [
            "email,first_name,consent_date",
            "a@example.fr,Ana,2025-03-01",
            "b@example.fr,Bo,2025-03-02",
            "b@example.fr,Bo,2025-03-02",
        ]
    )
    first = run_import(content, consent=consent_for(purpose))
    counts = (
        Contact.objects.count(),
        ConsentRecord.objects.count(),
        TimelineEvent.objects.count(),
        OutboxEvent.objects.count(),
    )

    again = run_import(content, consent=consent_for(purpose))

    assert (first.created, first.consents_recorded) == (2, 2)
    assert (again.created, again.updated, again.consents_recorded, again.rejected) == (0, 0, 0, 0)
    assert again.file_sha256 == first.file_sha256
    assert counts == (
        Contact.objects.count(),
        ConsentRecord.objects.count(),
        TimelineEvent.objects.count(),
        OutboxEvent.objects.count(),
    )


class Interrupted(BaseException):
    """What a killed worker looks like to the code it was running: it never continues."""


def test_an_interrupted_run_resumes_where_it_stopped_without_losing_or_duplicating() -> None:
    purpose = PurposeFactory(channels=["email"])
    lines = ["email,consent_date"] + [f"p{n}@example.fr,2025-03-01" for n in range(10)]
    lines.insert(5, "broken,2025-03-01")
    contact_import = contacts_import(
        file=io.BytesIO(csv_bytes(lines)),
        file_name="list.csv",
        consent=consent_for(purpose),
        queue=False,
    )

    def stop_after_two_batches(progress: ContactImport) -> None:
        if progress.position >= 6:
            raise Interrupted

    with pytest.raises(Interrupted):
        contact_import_run(
            contact_import_id=contact_import.pk, batch_size=3, on_batch=stop_after_two_batches
        )
    halfway = ContactImport.objects.get(pk=contact_import.pk)
    assert (halfway.status, halfway.position, halfway.created) == ("running", 6, 5)

    done = contact_import_run(contact_import_id=contact_import.pk, batch_size=3)

    assert (done.status, done.processed, done.created, done.consents_recorded) == (
        "done",
        11,
        10,
        10,
    )
    assert rejected(done) == [(6, "email: Enter a valid email address.")]
    assert Contact.objects.count() == ConsentRecord.objects.count() == 10
    # a finished import is not run again
    assert contact_import_run(contact_import_id=contact_import.pk).processed == 11
    assert ConsentRecord.objects.count() == 10


def test_the_file_is_deleted_once_the_import_is_over(django_capture_on_commit_callbacks) -> None:
    contact_import = contacts_import(
        file=io.BytesIO(csv_bytes(["email", "a@example.fr"])), file_name="list.csv", queue=False
    )
    stored, storage = contact_import.file.name, contact_import.file.storage
    assert storage.exists(stored)

    with django_capture_on_commit_callbacks(execute=True):
        done = contact_import_run(contact_import_id=contact_import.pk)

    assert done.status == "done" and not done.file
    assert not storage.exists(stored)
    assert done.file_sha256  # kept: a re-import of the same file is recognisable


def test_a_list_may_give_the_birth_year_and_a_later_list_without_it_keeps_it() -> None:
    # the birth year decides who is a child (GDPR Art. 8): a list may carry it, checked
    lines = ["email,birth_year,country", "a@example.fr,2013,FR", "b@example.fr,1870,FR"]

    done = run_import(csv_bytes(lines))
    run_import(csv_bytes(["email,city", "a@example.fr,Rennes"]))

    a = Contact.objects.get(email="a@example.fr")
    assert (a.birth_year, a.country, a.city) == (2013, "FR", "Rennes")
    assert [line for line, _reason in rejected(done)] == [3]
    assert "birth_year" in rejected(done)[0][1]
