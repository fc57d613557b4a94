"""PostgreSQL loads contacts with COPY into a staging table and set-based upserts; the
portable path uses bulk_create / bulk_update. Both leave exactly the same rows."""

import io
from typing import Any

import pytest

from contacts.imports import contact_import_run, contacts_import
from contacts.models import (
    Contact,
    ContactImport,
    Interest,
    Suppression,
    SuppressionReason,
    TimelineEvent,
)
from contacts.services import suppression_add
from crmsync.models import OutboxEvent
from tests.contacts.imports import csv_bytes, rejected
from tests.factories import ContactFactory, InterestFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

LINES = [
    "email;first_name;last_name;phone;city;country;interests;source",
    "new1@example.fr;Ana;Roux;06 12 34 56 78;Lyon;fr;velo,jardin;salon",
    "Known@Example.fr;Karim;;;Nantes;;jardin;",
    "bad-address;X;;;;;;",
    'new2@example.fr;Bo;"O""Neil";;;;;',
    "new1@example.fr;Anna;;;;;;",
    "blocked@example.fr;Z;;;;;;",
    "same@example.fr;Same;Person;;Paris;FR;;",
    "new3@example.fr;Cé;Dé;;;;velo;",
]


def _load(use_copy: bool) -> dict[str, Any]:
    InterestFactory(slug="velo")
    InterestFactory(slug="jardin")
    ContactFactory(email="known@example.fr", first_name="K", last_name="L", city="Paris")
    ContactFactory(
        email="same@example.fr", first_name="Same", last_name="Person", city="Paris", country="FR"
    )
    suppression_add(reason=SuppressionReason.GLOBAL_UNSUBSCRIBE, email="blocked@example.fr")
    contact_import = contacts_import(
        file=io.BytesIO(csv_bytes(LINES)), file_name="list.csv", queue=False
    )
    done = contact_import_run(contact_import_id=contact_import.pk, batch_size=4, use_copy=use_copy)
    return _snapshot(done)


def _snapshot(done: ContactImport) -> dict[str, Any]:
    volatile = {"id", "public_id", "created_at", "updated_at"}
    contacts = []
    for contact in Contact.objects.order_by("email"):
        values = {
            f.attname: getattr(contact, f.attname)
            for f in Contact._meta.concrete_fields
            if f.attname not in volatile
        }
        values["interests"] = sorted(contact.interests.values_list("slug", flat=True))
        assert contact.public_id and contact.created_at and contact.updated_at
        contacts.append(values)
    timeline = sorted(
        (event.contact.email, event.kind, event.summary, str(event.data))
        for event in TimelineEvent.objects.select_related("contact")
    )
    emails = dict(Contact.objects.values_list("public_id", "email"))
    for event in OutboxEvent.objects.all():
        assert event.payload["id"] == str(event.contact_public_id)
    outbox = sorted(
        (
            emails[event.contact_public_id],
            event.topic,
            str({k: v for k, v in event.payload.items() if k != "id"}),
        )
        for event in OutboxEvent.objects.all()
    )
    counters = (done.status, done.rows, done.processed, done.created, done.updated, done.rejected)
    return {
        "contacts": contacts,
        "timeline": timeline,
        "outbox": outbox,
        "counters": counters,
        "rejected": rejected(done),
    }


def _clear() -> None:
    Contact.objects.all().delete()
    OutboxEvent.objects.all().delete()
    ContactImport.objects.all().delete()
    Interest.objects.all().delete()
    Suppression.objects.all().delete()


def test_the_copy_path_and_the_orm_path_leave_the_same_rows() -> None:
    by_orm = _load(use_copy=False)
    _clear()

    by_copy = _load(use_copy=True)

    assert by_copy == by_orm
    # new1, new2, new3 created; known and new1 (its later line, in the second batch) updated
    assert by_copy["counters"] == ("done", 8, 8, 3, 2, 2)
    assert [line for line, _reason in by_copy["rejected"]] == [4, 7]
    new1 = next(c for c in by_copy["contacts"] if c["email"] == "new1@example.fr")
    assert (new1["first_name"], new1["phone"], new1["interests"]) == (
        "Anna",
        "+33612345678",
        ["jardin", "velo"],
    )
    assert new1["email_digest"] and new1["phone_digest"]
