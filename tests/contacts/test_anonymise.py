"""Erasure empties every personal column of a contact (GDPR Art. 17): all of them but an
explicit keep-list, so that a column added to Contact is erased unless someone says why not."""

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import models, transaction

from contacts.models import Contact
from contacts.normalization import suppression_digests
from contacts.services import ERASURE_KEPT_FIELDS, PERSONAL_FIELDS, contact_anonymise

pytestmark = pytest.mark.django_db

BEFORE = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
# What erasure leaves in each personal column (the email is a placeholder, set apart). A new
# Contact column fails the first test until it is added here, or to ERASURE_KEPT_FIELDS.
ERASED_VALUES: dict[str, Any] = {
    "email": None,
    "email_changed_at": None,
    "previous_email": "",
    "first_name": "",
    "last_name": "",
    "phone": "",
    "company": "",
    "job_title": "",
    "address_line1": "",
    "address_line2": "",
    "postal_code": "",
    "city": "",
    "country": "",
    "hubspot_id": "",
    "salesforce_id": "",
    "source": "",
    "paused_until": None,
    "email_undeliverable_reason": "",
    "postal_undeliverable_reason": "",
    "is_minor": False,
    "birth_year": None,
    "guardian_consent_evidence": "",
    "last_activity_at": None,
    # whether the person is a professional or a customer, and since when: about them
    "b2b": False,
    "relationship": "prospect",
    "customer_since": None,
    "customer_until": None,
    # the suppression keys follow the email and phone: the placeholder's, or none
    "email_digest": None,
    "email_quoted_digest": None,
    "phone_digest": None,
}
# Set apart: replaced by the placeholder address and its suppression key, not emptied.
PLACEHOLDER_COLUMNS = {"email", "email_digest", "email_quoted_digest"}
# Set by the erasure itself, though not personal.
CHANGED_BY_ERASURE = {"status", "updated_at"}


def test_every_contact_column_is_either_kept_for_a_stated_reason_or_erased() -> None:
    columns = {field.name for field in Contact._meta.concrete_fields}

    assert set(PERSONAL_FIELDS) == set(ERASED_VALUES), (
        "a Contact column was added or removed: decide whether erasure empties it "
        "(ERASED_VALUES here) or keeps it (ERASURE_KEPT_FIELDS, with why it is not personal)"
    )
    assert set(ERASURE_KEPT_FIELDS) <= columns, "the keep-list names a column that is gone"
    assert set(ERASURE_KEPT_FIELDS) | set(PERSONAL_FIELDS) == columns
    assert all(reason.strip() for reason in ERASURE_KEPT_FIELDS.values())


def test_erasure_empties_every_personal_column_and_leaves_the_kept_ones() -> None:
    # given a contact with a value in every column
    contact = Contact.objects.create(
        **{
            field.name: filled(field)
            for field in Contact._meta.concrete_fields
            if not field.primary_key
        }
    )
    before = {field.name: getattr(contact, field.attname) for field in columns()}

    # when
    with transaction.atomic():
        contact_anonymise(contact=contact, reason="request")

    # then
    contact.refresh_from_db()
    after = {field.name: getattr(contact, field.attname) for field in columns()}
    assert contact.email == f"erased-{contact.public_id}@erased.invalid"
    assert contact.status == "erased"
    placeholder_keys = suppression_digests(kind="email", value=contact.email)
    assert [contact.email_digest, contact.email_quoted_digest] == (placeholder_keys + [None])[:2]
    assert {name: after[name] for name in ERASED_VALUES if name not in PLACEHOLDER_COLUMNS} == {
        name: value for name, value in ERASED_VALUES.items() if name not in PLACEHOLDER_COLUMNS
    }
    kept = set(ERASURE_KEPT_FIELDS) - CHANGED_BY_ERASURE
    assert {name: after[name] for name in kept} == {name: before[name] for name in kept}
    assert all(before[name] != after[name] for name in ERASED_VALUES)


def columns() -> list[models.Field]:
    return list(Contact._meta.concrete_fields)


def filled(field: models.Field) -> Any:
    """A value for the column unlike both its default and its erased value."""
    special = {
        "email": "lea.dupont@example.fr",
        "previous_email": "lea@example.org",
        "phone": "+33612345678",
        "country": "FR",
        "status": "paused",
        "ledger_seq": 3,
        "ledger_hash": "a" * 64,
        "birth_year": 2011,
        "email_soft_bounces": 2,
    }
    if field.name in special:
        return special[field.name]
    if isinstance(field, models.ForeignKey):  # the contact a merge joined this one to
        return Contact.objects.create(email=f"{field.name}@example.fr")
    if field.choices:
        return next(value for value, _label in field.choices if value != field.get_default())
    if isinstance(field, models.DateTimeField):
        return BEFORE
    if isinstance(field, models.DateField):
        return BEFORE.date()
    if isinstance(field, models.BooleanField):
        return not field.get_default()
    if isinstance(field, models.UUIDField):
        return uuid.uuid4()
    if isinstance(field, models.CharField | models.TextField):
        return f"{field.name} of Léa"[: field.max_length]
    raise AssertionError(f"give the test a value for the new column {field.name}")
