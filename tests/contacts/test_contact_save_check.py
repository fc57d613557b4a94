"""`contact_save_check`: every reason `contact_upsert` or `contact_update` would refuse a
contact, found before anything is written (the admin's form shows them all at once)."""

import pytest
from django.core.exceptions import ValidationError

from contacts.models import Contact
from contacts.services import contact_save_check, suppression_add
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db
SUPPRESSED = "This person asked not to be contacted (suppression list). Only their own new explicit consent can lift it."  # noqa: E501


def errors_of(**kwargs: object) -> dict[str, list[str]]:
    try:
        contact_save_check(**kwargs)
    except ValidationError as error:
        return error.message_dict
    return {}


def test_a_valid_new_contact_passes_and_nothing_is_written():
    assert errors_of(contact=None, email="ines@example.fr", fields={"country": "fr"}) == {}
    assert not Contact.objects.exists()


def test_every_problem_of_a_new_contact_is_named_at_once():
    suppression_add(reason="erased", email="gone@example.fr", phone="+33698765432")

    errors = errors_of(
        contact=None,
        email="gone@example.fr",
        fields={"phone": "+33698765432", "country": "France", "language": "de"},
    )

    assert errors == {
        "country": ["Use a two-letter ISO 3166 country code."],
        "language": ["Not a valid choice."],
        "email": [SUPPRESSED],
        "phone": [SUPPRESSED],
    }


def test_a_known_contact_keeps_its_own_suppressed_email_and_phone():
    contact = ContactFactory(email="ines@example.fr", phone="+33612345678")
    suppression_add(reason="hard_bounce", email="ines@example.fr", phone="+33612345678")

    errors = errors_of(contact=contact, email="ines@example.fr", fields={"phone": "+33612345678"})

    assert errors == {}


def test_a_known_contact_cannot_move_to_a_suppressed_email_or_phone():
    contact = ContactFactory(email="ines@example.fr", phone="+33612345678")
    suppression_add(reason="complaint", email="other@example.fr", phone="+33698765432")

    errors = errors_of(contact=contact, email="other@example.fr", fields={"phone": "0698765432"})

    assert errors == {"email": [SUPPRESSED], "phone": [SUPPRESSED]}


def test_a_malformed_phone_keeps_its_own_error_next_to_the_suppression_one():
    suppression_add(reason="erased", phone="+33698765432")

    # valid for France, not for the country given: both the field and the list speak
    errors = errors_of(
        contact=None,
        email="new@example.fr",
        fields={"phone": "06 98 76 54 32", "country": "US"},
    )

    assert errors == {"phone": ["Enter a valid phone number.", SUPPRESSED]}
