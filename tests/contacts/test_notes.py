"""Notes on a contact, screened for special categories of data (GDPR Art. 9, 10): a note that
looks like one is held for the DPO's review, never stored silently (SPEC §3)."""

from collections.abc import Iterator
from importlib import import_module

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError
from django.utils import timezone, translation
from freezegun import freeze_time

from contacts.admin import timeline_sentence
from contacts.models import ContactStatus, Note, NoteStatus, TimelineEvent, TimelineKind
from contacts.services import note_add, note_review
from privacy.services import contact_erase
from tests.factories import ContactFactory, UserFactory

pytestmark = pytest.mark.django_db

HEALTH_AND_RELIGION = "En arrêt maladie jusqu'à fin mars, ne pas appeler pendant le ramadan."


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    with translation.override("en"):
        yield


def test_an_innocent_note_is_stored_with_its_author() -> None:
    contact = ContactFactory()
    author = UserFactory(username="marketer-persona")

    note = note_add(contact=contact, body="  Prefers to be called in the morning.\n", author=author)

    note.refresh_from_db()
    assert note.status == NoteStatus.STORED
    assert note.categories == []
    assert note.body == "Prefers to be called in the morning."
    assert (note.author, note.author_name, note.contact) == (author, "marketer-persona", contact)


def test_a_flagged_note_is_held_for_review_with_the_categories_found() -> None:
    contact = ContactFactory()

    note = note_add(contact=contact, body=HEALTH_AND_RELIGION, author=None)

    note.refresh_from_db()
    assert note.status == NoteStatus.HELD
    assert note.categories == ["health", "religion"]
    assert note.categories_in_words() == "health, religious beliefs"
    assert note.body == HEALTH_AND_RELIGION  # kept for the DPO to judge, not shown to others
    assert note.author_name == ""


def test_adding_a_note_puts_a_line_on_the_timeline_without_its_text_nor_categories() -> None:
    contact = ContactFactory()

    stored = note_add(contact=contact, body="Met at the Lyon trade fair.", author=None)
    held = note_add(contact=contact, body="Sort de prison le mois dernier.", author=None)

    events = TimelineEvent.objects.filter(contact=contact, kind=TimelineKind.NOTE_ADDED)
    stored_as = {event.data["note"]: (event.summary, event.data) for event in events}
    assert stored_as == {
        stored.pk: ("", {"note": stored.pk, "status": "stored"}),
        held.pk: ("", {"note": held.pk, "status": "held"}),
    }


def test_the_note_timeline_line_is_worded_when_drawn() -> None:
    contact = ContactFactory()
    note_add(contact=contact, body="Met at the Lyon trade fair.", author=None)
    note_add(contact=contact, body="Sort de prison le mois dernier.", author=None)
    stored, held = TimelineEvent.objects.filter(
        contact=contact, kind=TimelineKind.NOTE_ADDED
    ).order_by("id")

    assert timeline_sentence(stored, {}) == "A note was added."
    assert timeline_sentence(held, {}) == "A note was held for the DPO's review."


def test_an_older_note_line_naming_its_categories_is_drawn_without_them() -> None:
    contact = ContactFactory()
    old = TimelineEvent.objects.create(
        contact=contact,
        kind=TimelineKind.NOTE_ADDED,
        summary="Note held for review: santé",
        data={"note": 1, "status": "held", "categories": ["health"]},
    )

    assert timeline_sentence(old, {}) == "A note was held for the DPO's review."


@pytest.mark.parametrize("body", ["", "   ", "\n\t"])
def test_an_empty_note_is_refused_with_a_clear_error(body: str) -> None:
    contact = ContactFactory()

    with pytest.raises(ValidationError) as error:
        note_add(contact=contact, body=body, author=None)

    assert error.value.message_dict == {"body": ["A note cannot be empty: write something."]}
    assert not Note.objects.exists()


def test_no_note_is_added_to_an_erased_contact() -> None:
    contact = ContactFactory()
    contact_erase(contact=contact, reason="admin")

    with pytest.raises(ValidationError, match="This contact was erased"):
        note_add(contact=contact, body="Called back.", author=None)

    assert not Note.objects.exists()


def test_no_note_is_added_to_a_merged_contact() -> None:
    contact = ContactFactory(status=ContactStatus.MERGED)

    with pytest.raises(ValidationError, match="add the note there"):
        note_add(contact=contact, body="Called back.", author=None)


@freeze_time("2026-11-26 10:00:00")
def test_releasing_a_held_note_keeps_its_text_and_records_the_decision() -> None:
    note = note_add(contact=ContactFactory(), body=HEALTH_AND_RELIGION, author=None)

    note_review(
        note=note, release=True, by="dpo-persona", comment="  Explicit consent, Art. 9(2)(a). "
    )

    note.refresh_from_db()
    assert note.status == NoteStatus.RELEASED
    assert note.body == HEALTH_AND_RELIGION
    assert (note.reviewed_by_name, note.reviewed_at, note.review_comment) == (
        "dpo-persona",
        timezone.now(),
        "Explicit consent, Art. 9(2)(a).",
    )


@freeze_time("2026-11-26 10:00:00")
def test_discarding_a_held_note_wipes_its_text_and_keeps_the_trail() -> None:
    note = note_add(contact=ContactFactory(), body=HEALTH_AND_RELIGION, author=None)

    note_review(note=note, release=False, by="dpo-persona", comment="No lawful basis.")

    note.refresh_from_db()
    assert note.status == NoteStatus.DISCARDED
    assert note.body == ""
    assert note.categories == ["health", "religion"]
    assert (note.reviewed_by_name, note.reviewed_at, note.review_comment) == (
        "dpo-persona",
        timezone.now(),
        "No lawful basis.",
    )


@pytest.mark.parametrize("release_first", [True, False])
def test_only_a_held_note_can_be_reviewed(release_first: bool) -> None:
    held = note_add(contact=ContactFactory(), body="Diabetic, hospitalised in May.", author=None)
    note_review(note=held, release=release_first, by="dpo-persona", comment="Asked in writing.")
    stored = note_add(contact=ContactFactory(), body="Wants the spring catalogue.", author=None)

    for note in (held, stored):
        with pytest.raises(ValidationError, match="Only a note held for review"):
            note_review(note=note, release=not release_first, by="someone-else")

    held.refresh_from_db()
    assert held.reviewed_by_name == "dpo-persona"
    assert held.status == (NoteStatus.RELEASED if release_first else NoteStatus.DISCARDED)
    assert Note.objects.get(pk=stored.pk).status == NoteStatus.STORED


def test_releasing_a_held_note_needs_the_reason_it_is_lawful() -> None:
    note = note_add(contact=ContactFactory(), body=HEALTH_AND_RELIGION, author=None)

    with pytest.raises(ValidationError) as error:
        note_review(note=note, release=True, by="dpo-persona", comment="   ")

    assert "explicit consent" in error.value.message_dict["comment"][0]
    note.refresh_from_db()
    assert (note.status, note.reviewed_by_name) == (NoteStatus.HELD, "")


def test_older_note_lines_lose_their_sentence_and_categories_on_migrating() -> None:
    scrub = import_module("contacts.migrations.0018_note_timeline_without_categories")
    contact = ContactFactory()
    old = TimelineEvent.objects.create(
        contact=contact,
        kind=TimelineKind.NOTE_ADDED,
        summary="Note held for review: santé",
        data={"note": 7, "status": "held", "categories": ["health"]},
    )
    other = TimelineEvent.objects.create(
        contact=contact, kind=TimelineKind.UPDATED, summary="phone", data={"categories": 1}
    )

    scrub.scrub_note_lines(django_apps, None)

    old.refresh_from_db()
    other.refresh_from_db()
    assert (old.summary, old.data) == ("", {"note": 7, "status": "held"})
    assert (other.summary, other.data) == ("phone", {"categories": 1})
