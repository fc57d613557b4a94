"""The suppression keys stored on each contact follow its email and phone through every write,
so that the audience query joins the suppression list in SQL and agrees with the lookup."""

import importlib

import pytest
from django.apps import apps

from contacts.models import SUPPRESSION_DIGEST_FIELDS, Contact, Suppression
from contacts.normalization import suppression_digest, suppression_digests
from contacts.selectors import contact_is_suppressed, suppressed_condition, suppression_reason
from contacts.services import contact_update, contact_upsert, suppression_add
from privacy.services import contact_erase

pytestmark = pytest.mark.django_db


def stored(contact: Contact) -> tuple[str, ...]:
    return tuple(
        Contact.objects.filter(pk=contact.pk).values_list(*SUPPRESSION_DIGEST_FIELDS).get()
    )


def expected(contact: Contact) -> tuple[str, ...]:
    contact = Contact.objects.get(pk=contact.pk)
    email = suppression_digests(kind="email", value=contact.email)
    phone = suppression_digests(kind="phone", value=contact.phone) if contact.phone else []
    return (*email, *(phone or [None]))


def suppressed_in_sql(contact: Contact) -> bool:
    """The list joined on the stored digests, as the audience query does (no HMAC per row)."""
    return Contact.objects.filter(suppressed_condition(), pk=contact.pk).exists()


def test_the_digests_follow_every_write_of_the_email_and_the_phone():
    # created
    contact, _created = contact_upsert(email=" Camille@Example.FR", fields={"phone": "0612345678"})
    assert stored(contact) == expected(contact)
    assert stored(contact)[0] == suppression_digest("email", "camille@example.fr")
    assert stored(contact)[2] == suppression_digest("phone", "+33612345678")

    # phone changed, then removed
    contact_upsert(email="camille@example.fr", fields={"phone": "0698765432"})
    assert stored(contact)[2] == suppression_digest("phone", "+33698765432")
    contact_update(contact=contact, fields={"phone": ""})
    assert stored(contact)[2] is None

    # email changed
    contact_update(contact=contact, email="camille.new@example.fr")
    assert stored(contact) == expected(contact)
    assert stored(contact)[0] == suppression_digest("email", "camille.new@example.fr")

    # erased: the address is gone from the contact, and so is its key
    contact_erase(contact=contact, reason="test")
    assert stored(contact) == expected(contact)
    assert suppression_digest("email", "camille.new@example.fr") not in stored(contact)


def test_a_suppression_reaches_the_contact_by_lookup_and_in_sql():
    by_email, _ = contact_upsert(email="lea@example.fr")
    by_phone, _ = contact_upsert(email="sam@example.fr", fields={"phone": "0612345678"})
    neither, _ = contact_upsert(email="noa@example.fr", fields={"phone": "0698765432"})

    suppression_add(reason="hard_bounce", email="LEA@example.fr")
    suppression_add(reason="complaint", phone="+33612345678")

    for contact in (by_email, by_phone):
        assert contact_is_suppressed(contact)
        assert suppressed_in_sql(contact)
    assert not contact_is_suppressed(neither)
    assert not suppressed_in_sql(neither)


def test_an_entry_kept_under_the_quoted_spelling_still_suppresses_the_contact():
    # an entry written before quoted local parts were normalised keeps that spelling's key
    contact, _ = contact_upsert(email="camille.martin@example.fr")
    Suppression.objects.create(
        digest=suppression_digest("email", '"camille.martin"@example.fr'),
        kind="email",
        reason="erased",
    )

    assert suppression_reason(kind="email", value=contact.email) == "erased"
    assert contact_is_suppressed(contact)
    assert suppressed_in_sql(contact)


def test_the_migration_fills_the_digests_of_existing_contacts():
    migration = importlib.import_module("contacts.migrations.0008_contact_suppression_digests")
    first, _ = contact_upsert(email="lea@example.fr", fields={"phone": "0612345678"})
    second, _ = contact_upsert(email="sam@example.fr")
    Contact.objects.update(email_digest=None, email_quoted_digest=None, phone_digest=None)

    migration.fill_suppression_digests(apps, None)

    assert stored(first) == expected(first)
    assert stored(second) == expected(second)
    assert all(stored(first))
