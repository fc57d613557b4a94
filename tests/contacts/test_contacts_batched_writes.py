"""`contacts_create_many` and `contacts_update_many`: many contacts written with a few
statements, by the same rules as `contact_upsert` and `contact_update` write one (cleaned
fields, the suppression list, erased and merged contacts, digests, timeline, outbox), every
item checked before any is written so that a refused one leaves the others whole."""

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from contacts.models import Contact, TimelineEvent
from contacts.services import (
    contact_upsert,
    contacts_create_many,
    contacts_update_many,
    suppression_add,
)
from crmsync.models import OutboxEvent
from crmsync.services import ORIGIN_KEY, outbox_origin
from tests.factories import ContactFactory

SUPPRESSED = "This person asked not to be contacted"
DIGESTS = ("email_digest", "email_quoted_digest", "phone_digest")


def events_of(contact: Contact) -> tuple[list[str], list[tuple[str, Any]]]:
    """The timeline kinds and the outbox (topic, changed) a contact has left, oldest first."""
    timeline = list(
        TimelineEvent.objects.filter(contact=contact).order_by("id").values_list("kind", flat=True)
    )
    outbox = [
        (event.topic, event.payload.get("changed"))
        for event in OutboxEvent.objects.filter(contact_public_id=contact.public_id).order_by(
            "created_at", "id"
        )
    ]
    return timeline, outbox


def messages(error: Any) -> str:
    return " ".join(f"{name}: {' '.join(m)}" for name, m in error.message_dict.items())


@pytest.mark.django_db
def test_contacts_created_many_are_stored_as_contact_upsert_stores_one() -> None:
    alone, _created = contact_upsert(
        email=" Alone@Example.FR ", fields={"phone": "06 12 34 56 78", "source": "crm"}
    )

    written = contacts_create_many(
        people=[
            (" Many@Example.FR ", {"phone": "06 98 76 54 32", "source": "crm"}),
            ("other@example.fr", {"first_name": "Other", "country": "fr"}),
        ]
    )

    assert written.refused == {} and written.created == {0, 1}
    many = Contact.objects.get(email="many@example.fr")
    assert many.pk == written.contacts[0].pk
    assert (many.phone, many.source) == ("+33698765432", "crm")
    assert Contact.objects.get(email="other@example.fr").country == "FR"
    stored = Contact.objects.values(*DIGESTS).get(pk=many.pk)
    many.save()  # a save computes the digests of the email and phone
    assert Contact.objects.values(*DIGESTS).get(pk=many.pk) == stored
    assert all(stored.values())
    assert events_of(many) == (["created"], [("contact.created", None)])
    assert events_of(alone) == (["created"], [("contact.created", None)])
    payload = OutboxEvent.objects.get(contact_public_id=many.public_id).payload
    assert (payload["email"], payload["phone"]) == ("many@example.fr", "+33698765432")


@pytest.mark.django_db
def test_a_suppressed_email_or_phone_or_a_bad_field_is_refused_and_the_rest_created() -> None:
    suppression_add(reason="complaint", email="listed@example.fr")
    suppression_add(reason="complaint", phone="+33612345678")

    written = contacts_create_many(
        people=[
            ("LISTED@example.fr", {}),
            ("phone@example.fr", {"phone": "06 12 34 56 78"}),
            ("country@example.fr", {"country": "France"}),
            ("prospect@example.fr", {"customer_since": "2024-01-01"}),
            ("not an email", {}),
            ("kept@example.fr", {"first_name": "Kept"}),
        ]
    )

    assert set(written.refused) == {0, 1, 2, 3, 4}
    assert SUPPRESSED in messages(written.refused[0]) and "email" in written.refused[0].message_dict
    assert SUPPRESSED in messages(written.refused[1]) and "phone" in written.refused[1].message_dict
    assert "country" in written.refused[2].message_dict
    assert "customer_since" in written.refused[3].message_dict
    assert "email" in written.refused[4].message_dict
    assert list(Contact.objects.values_list("email", flat=True)) == ["kept@example.fr"]
    assert OutboxEvent.objects.count() == TimelineEvent.objects.count() == 1


@pytest.mark.django_db
def test_an_address_already_a_contacts_is_found_never_duplicated() -> None:
    existing = ContactFactory(email="taken@example.fr", company="")

    written = contacts_create_many(
        people=[
            ("new@example.fr", {"first_name": "New"}),
            ("Taken@example.fr", {"company": "Acme"}),
            ("new@example.fr", {"last_name": "Twice"}),
        ]
    )

    assert written.refused == {}
    assert written.created == {0}
    assert written.contacts[1].pk == existing.pk
    assert written.contacts[2].pk == written.contacts[0].pk
    assert Contact.objects.count() == 2
    existing.refresh_from_db()
    assert existing.company == "Acme"  # as `contact_upsert` does with a known address
    assert Contact.objects.get(email="new@example.fr").last_name == "Twice"


@pytest.mark.django_db
def test_contacts_are_created_with_the_same_few_statements_however_many() -> None:
    def statements(count: int, start: int) -> int:
        people = [
            (f"p{start + n}@example.fr", {"phone": f"+336123400{n:02d}"}) for n in range(count)
        ]
        with CaptureQueriesContext(connection) as queries:
            written = contacts_create_many(people=people)
        assert len(written.created) == count
        return len(queries)

    # (20: SQLite's INSERT is split at its parameter limit, some 999 values)
    assert statements(3, 0) == statements(20, 100)


@pytest.mark.django_db
def test_contacts_updated_many_change_each_as_contact_update_changes_one() -> None:
    first = ContactFactory(company="Old", city="Paris", postal_deliverability="returned")
    second = ContactFactory(company="Same")
    third = ContactFactory(phone="")

    with CaptureQueriesContext(connection) as queries:
        written = contacts_update_many(
            changes=[
                (first, {"company": "New", "city": "Lyon"}),
                (second, {"company": "Same"}),
                (third, {"phone": "06 12 34 56 78"}),
            ]
        )

    assert written.refused == {}
    assert written.changed == {0: ["company", "city"], 1: [], 2: ["phone"]}
    first.refresh_from_db()
    assert (first.company, first.city) == ("New", "Lyon")
    assert first.postal_deliverability == "deliverable"
    assert events_of(first) == (
        ["deliverability_reset", "updated"],
        [("contact.updated", ["company", "city"])],
    )
    assert events_of(second) == ([], [])
    third.refresh_from_db()
    stored = third.phone_digest
    third.save()
    assert third.phone == "+33612345678" and stored and third.phone_digest == stored
    # the lock, the update, the moments, the events (and the savepoint-free rest)
    assert len(queries) <= 6


@pytest.mark.django_db
def test_an_update_refused_leaves_the_others_applied() -> None:
    from privacy.services import contact_erase

    suppression_add(reason="complaint", phone="+33612345678")
    erased = ContactFactory()
    contact_erase(contact=erased, reason="Art. 17 request")
    listed_phone = ContactFactory(phone="")
    prospect = ContactFactory()
    kept = ContactFactory(company="Old")

    written = contacts_update_many(
        changes=[
            (erased, {"company": "X"}),
            (listed_phone, {"phone": "06 12 34 56 78"}),
            (prospect, {"customer_since": "2024-01-01"}),
            (kept, {"company": "New", "country": "France"}),
            (kept, {"company": "New"}),
        ]
    )

    assert set(written.refused) == {0, 1, 2, 3}
    assert "erased" in messages(written.refused[0])
    assert SUPPRESSED in messages(written.refused[1])
    assert "customer_since" in written.refused[2].message_dict
    assert "country" in written.refused[3].message_dict
    kept.refresh_from_db()
    listed_phone.refresh_from_db()
    assert (kept.company, listed_phone.phone) == ("New", "")
    assert events_of(kept)[1] == [("contact.updated", ["company"])]


@pytest.mark.django_db
def test_the_batched_writers_events_name_the_connection_a_pull_writes_for() -> None:
    contact = ContactFactory(company="Old")

    with outbox_origin(7):
        contacts_create_many(people=[("new@example.fr", {})])
        contacts_update_many(changes=[(contact, {"company": "New"})])

    assert [event.payload[ORIGIN_KEY] for event in OutboxEvent.objects.all()] == [7, 7]


@pytest.mark.django_db
def test_a_large_batch_with_an_address_taken_meanwhile_falls_back_and_duplicates_nothing() -> None:
    # given a batch large enough to be copied in (PostgreSQL's COPY), one address already ours
    ContactFactory(email="p50@example.fr", first_name="Ours")
    people = [(f"p{n}@example.fr", {"last_name": f"L{n}"}) for n in range(120)]

    written = contacts_create_many(people=people)

    assert written.refused == {}
    assert written.created == set(range(120)) - {50}
    assert Contact.objects.count() == 120
    assert Contact.objects.get(email="p50@example.fr").first_name == "Ours"
    assert OutboxEvent.objects.filter(topic="contact.created").count() == 119
