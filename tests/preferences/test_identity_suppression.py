"""The identity form of the preference center checks a new phone against the suppression list."""

import pytest
from django.test import Client

from contacts.models import Contact
from contacts.services import suppression_add
from preferences.forms import IdentityForm
from tests.preferences.conftest import field_error, post_form, snapshot

pytestmark = pytest.mark.django_db


def identity(contact: Contact, **changes: str) -> dict[str, str]:
    contact.refresh_from_db()
    return {**{name: getattr(contact, name) for name in IdentityForm.base_fields}, **changes}


def test_a_phone_on_the_suppression_list_is_refused_next_to_the_field(
    client: Client, camille: Contact, token: str
) -> None:
    suppression_add(reason="erased", phone="+33698765432")
    before = snapshot(camille)

    response = post_form(
        client,
        token,
        "identity",
        **identity(camille, last_name="Changed", phone="06 98 76 54 32", lang="en"),
    )

    assert response.status_code == 400
    assert "suppression list" in field_error(response, "phone")
    assert snapshot(camille) == before
