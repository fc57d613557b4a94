"""Notes in the admin: added on the contact's page through the screen, a held note's text kept
from marketers, released or discarded by the DPO, each decision in the audit log."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from contacts.models import Contact, Note, NoteStatus
from contacts.services import note_add
from core.models import AuditAction, AuditEvent
from tests.admin.forms import submitted_form
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

NOTES = reverse("admin:contacts_note_changelist")
HEALTH_AND_RELIGION = "En arrêt maladie jusqu'à fin mars, ne pas appeler pendant le ramadan."
INNOCENT = "Prefers to be called in the morning."


def contact_page(contact: Contact) -> str:
    return reverse("admin:contacts_contact_change", args=[contact.pk])


def add_note_from_contact_page(client: Client, contact: Contact, text: str):
    """Open the contact's page and save it with a new note typed in the notes' empty row."""
    page = client.get(contact_page(contact))
    (notes,) = [
        inline.formset
        for inline in page.context["inline_admin_formsets"]
        if inline.formset.model is Note
    ]
    new_row = notes.extra_forms[0].add_prefix("text")
    return client.post(contact_page(contact), submitted_form(page, **{new_row: text}), follow=True)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def held_note(contact: Contact | None = None) -> Note:
    return note_add(contact=contact or ContactFactory(), body=HEALTH_AND_RELIGION, author=None)


def test_a_flagged_note_added_from_the_contact_page_is_held_and_the_user_told_why(
    as_marketer: Client, marketer
) -> None:
    contact = ContactFactory()

    response = add_note_from_contact_page(as_marketer, contact, HEALTH_AND_RELIGION)

    assert response.status_code == 200
    (note,) = Note.objects.filter(contact=contact)
    assert (note.status, note.categories) == (NoteStatus.HELD, ["health", "religion"])
    assert (note.author, note.author_name) == (marketer, "marketer-persona")
    (warning,) = [m for m in messages_of(response) if "held" in m]
    assert "held for the DPO's review" in warning
    assert "health, religious beliefs" in warning


def test_an_innocent_note_added_from_the_contact_page_is_stored_without_a_warning(
    as_marketer: Client,
) -> None:
    contact = ContactFactory()

    response = add_note_from_contact_page(as_marketer, contact, INNOCENT)

    (note,) = Note.objects.filter(contact=contact)
    assert (note.status, note.body) == (NoteStatus.STORED, INNOCENT)
    assert not [m for m in messages_of(response) if "held" in m]
    assert INNOCENT in as_marketer.get(contact_page(contact)).content.decode()


def test_saving_the_contact_page_again_leaves_existing_notes_as_they_were(
    as_marketer: Client,
) -> None:
    contact = ContactFactory()
    stored = note_add(contact=contact, body=INNOCENT, author=None)
    page = as_marketer.get(contact_page(contact))

    response = as_marketer.post(contact_page(contact), submitted_form(page))

    assert response.status_code == 302
    assert list(Note.objects.filter(contact=contact)) == [stored]
    assert Note.objects.get(pk=stored.pk).body == INNOCENT


def test_a_marketer_never_sees_the_text_of_a_held_note(as_marketer: Client) -> None:
    contact = ContactFactory()
    held_note(contact)
    note_add(contact=contact, body=INNOCENT, author=None)

    contact_text = as_marketer.get(contact_page(contact)).content.decode()

    assert "maladie" not in contact_text and "ramadan" not in contact_text
    assert "Held for DPO review" in contact_text
    assert INNOCENT in contact_text
    # nor which special category the screen found: an Art. 9 inference about the person
    assert "health" not in contact_text and "religious" not in contact_text
    assert "A note was held for the DPO&#x27;s review." in contact_text  # the timeline's line
    assert "A note was added." in contact_text
    assert as_marketer.get(NOTES).status_code == 403


def test_the_dpo_reads_a_held_note_on_the_contact_page_and_in_the_list(as_dpo: Client) -> None:
    contact = ContactFactory()
    held_note(contact)

    contact_text = as_dpo.get(contact_page(contact)).content.decode()
    list_text = as_dpo.get(NOTES).content.decode()

    for text in (contact_text, list_text):
        assert "ramadan" in text
        assert "health, religious beliefs" in text


def test_the_notes_list_shows_the_held_notes_unless_another_status_is_chosen(
    as_dpo: Client,
) -> None:
    held = held_note()
    stored = note_add(contact=ContactFactory(), body=INNOCENT, author=None)

    by_default = as_dpo.get(NOTES).context["cl"].result_list
    everything = as_dpo.get(NOTES, {"status": "all"}).context["cl"].result_list
    only_stored = as_dpo.get(NOTES, {"status": "stored"}).context["cl"].result_list

    assert list(by_default) == [held]
    assert set(everything) == {held, stored}
    assert list(only_stored) == [stored]


def test_listing_and_opening_notes_is_audited(as_dpo: Client) -> None:
    note = held_note()

    as_dpo.get(NOTES, {"status": "all"})
    as_dpo.get(reverse("admin:contacts_note_change", args=[note.pk]))

    listed, opened = AuditEvent.objects.filter(action=AuditAction.VIEW_NOTES).order_by("id")
    assert (listed.username, listed.details) == ("dpo-persona", {"status": "all"})
    assert (opened.contact, opened.details) == (note.contact, {"note": note.pk, "status": "held"})


def review(client: Client, action: str, *notes: Note, **extra: str):
    data = {"action": action, "_selected_action": [note.pk for note in notes], **extra}
    return client.post(NOTES, data)


def test_a_marketer_cannot_release_or_discard_a_held_note(as_marketer: Client) -> None:
    note = held_note()

    assert as_marketer.get(NOTES).status_code == 403
    for action in ("release_notes", "discard_notes"):
        response = review(as_marketer, action, note, confirmed="yes", comment="Fine by me.")
        assert response.status_code == 403

    note.refresh_from_db()
    assert (note.status, note.body) == (NoteStatus.HELD, HEALTH_AND_RELIGION)
    assert not AuditEvent.objects.exists()


def test_the_dpo_releases_a_held_note_with_the_reason_and_it_is_audited(as_dpo: Client) -> None:
    note = held_note()

    page = review(as_dpo, "release_notes", note)
    assert page.status_code == 200 and "ramadan" in page.content.decode()
    assert Note.objects.get(pk=note.pk).status == NoteStatus.HELD  # not before confirming

    reason = "Explicit consent of the person, Art. 9(2)(a), form of 2026-11-20."
    response = review(as_dpo, "release_notes", note, confirmed="yes", comment=reason)

    assert response.status_code == 302
    note.refresh_from_db()
    assert (note.status, note.body) == (NoteStatus.RELEASED, HEALTH_AND_RELIGION)
    assert (note.reviewed_by_name, note.review_comment) == ("dpo-persona", reason)
    (event,) = AuditEvent.objects.filter(action=AuditAction.NOTE_RELEASED)
    assert (event.username, event.contact) == ("dpo-persona", note.contact)
    assert event.details == {
        "note": note.pk,
        "categories": ["health", "religion"],
        "comment": reason,
    }


def test_releasing_without_a_reason_is_refused_and_nothing_changes(as_dpo: Client) -> None:
    note = held_note()

    response = review(as_dpo, "release_notes", note, confirmed="yes", comment=" ")

    assert response.status_code == 200
    assert "explicit consent" in str(response.context["form"].errors["comment"])
    assert Note.objects.get(pk=note.pk).status == NoteStatus.HELD
    assert not AuditEvent.objects.filter(action=AuditAction.NOTE_RELEASED).exists()


def test_the_dpo_discards_held_notes_their_text_wiped_each_audited(as_dpo: Client) -> None:
    first, second = held_note(), held_note()
    stored = note_add(contact=ContactFactory(), body=INNOCENT, author=None)

    response = review(as_dpo, "discard_notes", first, second, stored, confirmed="yes")

    assert response.status_code == 302
    for note in (first, second):
        note.refresh_from_db()
        assert (note.status, note.body) == (NoteStatus.DISCARDED, "")
        assert note.categories == ["health", "religion"]
        assert note.reviewed_by_name == "dpo-persona"
    assert Note.objects.get(pk=stored.pk).status == NoteStatus.STORED  # only held ones
    events = AuditEvent.objects.filter(action=AuditAction.NOTE_DISCARDED)
    assert sorted(event.details["note"] for event in events) == [first.pk, second.pk]
    # discarded once: nothing left to discard
    listed = review(as_dpo, "discard_notes", first)
    assert "No note held for review" in listed.content.decode()


def test_a_discarded_note_shows_why_on_the_contact_page_to_the_dpo_alone(
    as_marketer: Client, as_dpo
) -> None:
    note = held_note()
    review(as_dpo, "discard_notes", note, confirmed="yes")

    text = as_marketer.get(contact_page(note.contact)).content.decode()
    dpo_text = as_dpo.get(contact_page(note.contact)).content.decode()

    assert "Discarded after review" in text
    assert re.search(r"ramadan|maladie|health|religious", text) is None
    assert "Discarded after review (health, religious beliefs)" in dpo_text


def test_a_note_typed_on_a_new_contact_s_page_is_screened_too(as_marketer: Client) -> None:
    url = reverse("admin:contacts_contact_add")
    page = as_marketer.get(url)

    response = as_marketer.post(
        url,
        submitted_form(page, email="nina.roux@example.fr", **{"notes-0-text": HEALTH_AND_RELIGION}),
        follow=True,
    )

    (note,) = Note.objects.filter(contact__email="nina.roux@example.fr")
    assert (note.status, note.author_name) == (NoteStatus.HELD, "marketer-persona")
    assert any("held for the DPO's review" in message for message in messages_of(response))


@pytest.mark.parametrize(
    "lookup",
    [
        "body__icontains",
        "body__startswith",
        "body__regex",
        "body",
        "visible_text__icontains",
        "contact__notes__body__icontains",
        "contact__notes__body__startswith",
    ],
)
def test_no_filter_in_the_address_reaches_a_notes_text(as_dpo: Client, lookup: str) -> None:
    held_note()
    note_add(contact=ContactFactory(), body="Asked for the cancer charity's brochure.", author=None)

    response = as_dpo.get(NOTES, {"status": "all", lookup: "cancer"})

    assert response.status_code == 400


def test_the_dpo_still_filters_the_notes_of_one_contact(as_dpo: Client) -> None:
    contact = ContactFactory()
    held, stored = held_note(contact), note_add(contact=contact, body=INNOCENT, author=None)
    held_note()

    response = as_dpo.get(NOTES, {"status": "all", "contact__id__exact": contact.pk})

    assert set(response.context["cl"].result_list) == {held, stored}


def test_the_notes_list_is_not_offered_to_marketers(as_marketer: Client, as_dpo: Client) -> None:
    note = held_note()

    index = as_marketer.get(reverse("admin:index")).content.decode()
    opened = as_marketer.get(reverse("admin:contacts_note_change", args=[note.pk]))

    assert NOTES not in index
    assert opened.status_code in (302, 403)
    assert NOTES in as_dpo.get(reverse("admin:index")).content.decode()


def test_the_contact_page_lists_the_latest_notes_and_counts_the_others(
    as_marketer: Client, as_dpo: Client
) -> None:
    contact = ContactFactory()
    oldest = note_add(contact=contact, body="The very first note.", author=None)
    for number in range(51):
        note_add(contact=contact, body=f"Call number {number:02d}.", author=None)

    marketer_page = as_marketer.get(contact_page(contact))
    dpo_text = as_dpo.get(contact_page(contact)).content.decode()

    (notes,) = [
        inline.formset
        for inline in marketer_page.context["inline_admin_formsets"]
        if inline.formset.model is Note
    ]
    assert len(notes.initial_forms) == 50
    text = marketer_page.content.decode()
    assert "Call number 50." in text and "Call number 01." in text
    assert "Call number 00." not in text and oldest.body not in text
    assert "2 older notes are not listed here." in text
    all_notes = f"{NOTES}?contact__id__exact={contact.pk}&amp;status=all"
    assert all_notes not in text  # the list is the reviewers'
    assert "2 older notes are not listed here." in dpo_text and all_notes in dpo_text


def test_adding_a_note_on_a_contact_with_many_notes_keeps_them_all(as_marketer: Client) -> None:
    contact = ContactFactory()
    for number in range(52):
        note_add(contact=contact, body=f"Call number {number:02d}.", author=None)

    response = add_note_from_contact_page(as_marketer, contact, INNOCENT)

    assert response.status_code == 200
    assert Note.objects.filter(contact=contact).count() == 53
    assert Note.objects.filter(contact=contact, body=INNOCENT).exists()


@pytest.mark.parametrize("lookup", ["notes__body__icontains", "notes__body__startswith"])
def test_the_contacts_list_cannot_be_filtered_on_a_notes_text(
    as_marketer: Client, lookup: str
) -> None:
    held_note()

    response = as_marketer.get(reverse("admin:contacts_contact_changelist"), {lookup: "maladie"})

    assert response.status_code == 400
