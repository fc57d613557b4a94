"""Notes follow the person: gone with their erasure, moved by a merge to the contact that
stays, and in their data export (GDPR Art. 15, 17, 20) unless the DPO discarded them."""

import csv
import io
import json
import zipfile

import pytest

from contacts.models import Contact, ContactStatus, Note, NoteStatus, TimelineEvent
from contacts.services import note_add, note_review
from privacy.exports import personal_data, personal_data_csv_zip, personal_data_json
from privacy.merge import contact_merge
from privacy.services import contact_erase, contacts_erase_many
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

STORED = "Rappeler après le salon de Lyon."
HELD = "En arrêt maladie jusqu'en mars."
RELEASED = "Member of the CGT, asked us to note it for the union newsletter."
DISCARDED = "Sort de prison le mois dernier."


def noted(contact: Contact) -> Contact:
    """The person with four notes: stored, held, released and discarded after review."""
    note_add(contact=contact, body=STORED, author=None)
    note_add(contact=contact, body=HELD, author=None)
    released = note_add(contact=contact, body=RELEASED, author=None)
    note_review(note=released, release=True, by="dpo", comment="Explicit consent.")
    discarded = note_add(contact=contact, body=DISCARDED, author=None)
    note_review(note=discarded, release=False, by="dpo", comment="")
    return contact


def test_erasing_a_person_deletes_their_notes_and_leaves_the_others() -> None:
    person, other = noted(ContactFactory()), noted(ContactFactory())

    contact_erase(contact=person, reason="admin")

    assert not Note.objects.filter(contact=person).exists()
    assert Note.objects.filter(contact=other).count() == 4
    # the timeline's "note added" lines went with the rest of the timeline
    assert list(TimelineEvent.objects.filter(contact=person).values_list("kind", flat=True)) == [
        "erased"
    ]


def test_erasing_many_people_at_once_deletes_all_their_notes() -> None:
    people = [noted(ContactFactory()) for _ in range(3)]
    kept = noted(ContactFactory())

    outcome = contacts_erase_many(contact_ids=[c.pk for c in people], reason="retention")

    assert sorted(outcome.erased) == sorted(c.pk for c in people)
    assert not Note.objects.filter(contact__in=people).exists()
    assert Note.objects.filter(contact=kept).count() == 4


def test_erasing_a_person_deletes_the_notes_of_the_contacts_merged_into_them() -> None:
    survivor = ContactFactory(email="camille@example.fr")
    merged = ContactFactory(email="c.martin@work.example")
    contact_merge(survivor=survivor, merged=merged, actor="dpo")
    note_add(contact=survivor, body=STORED, author=None)

    contact_erase(contact=survivor, reason="admin")

    assert Contact.objects.get(pk=merged.pk).status == ContactStatus.ERASED
    assert not Note.objects.exists()


def test_a_merge_moves_the_notes_to_the_contact_that_stays() -> None:
    survivor = ContactFactory(email="camille@example.fr")
    note_add(contact=survivor, body="Met at the Paris fair.", author=None)
    merged = noted(ContactFactory(email="c.martin@work.example"))
    held = Note.objects.get(contact=merged, status=NoteStatus.HELD)

    contact_merge(survivor=survivor, merged=merged, actor="dpo")

    assert not Note.objects.filter(contact=merged).exists()
    assert Note.objects.filter(contact=survivor).count() == 5
    held.refresh_from_db()
    assert (held.contact, held.status, held.body) == (survivor, NoteStatus.HELD, HELD)
    merge_event = TimelineEvent.objects.filter(contact=survivor, kind="merged").get()
    assert merge_event.data["notes_moved"] == 4


def test_the_export_holds_the_notes_but_those_discarded() -> None:
    person = noted(ContactFactory())
    noted(ContactFactory())  # someone else's notes stay out

    exported = personal_data(person)

    assert [(row["status"], row["text"]) for row in exported["notes"]] == [
        ("stored", STORED),
        ("held", HELD),
        ("released", RELEASED),
    ]
    assert all(row["written_at"] is not None for row in exported["notes"])
    assert DISCARDED not in json.dumps(exported, default=str)


def test_the_json_and_csv_exports_carry_the_notes() -> None:
    person = noted(ContactFactory())

    data = json.loads(personal_data_json(person))
    archive = zipfile.ZipFile(io.BytesIO(personal_data_csv_zip(person)))
    rows = list(csv.DictReader(io.StringIO(archive.read("notes.csv").decode())))

    assert [row["text"] for row in data["notes"]] == [STORED, HELD, RELEASED]
    assert [(row["status"], row["text"]) for row in rows] == [
        ("stored", STORED),
        ("held", HELD),
        ("released", RELEASED),
    ]
    assert set(rows[0]) == {"written_at", "status", "text"}
