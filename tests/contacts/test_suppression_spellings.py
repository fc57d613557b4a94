"""One mailbox, one suppression key: whoever unsubscribed stays suppressed however the address
is spelt, and entries written before quoted local parts were unquoted are still found."""

import importlib

import pytest
from django.apps import apps

from contacts.models import Contact, Suppression
from contacts.normalization import suppression_digest
from contacts.selectors import suppression_reason
from contacts.services import suppression_add, suppression_lift
from privacy.services import contact_erase
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

CONTACTS = "/api/v1/contacts/"


def test_who_unsubscribed_as_one_spelling_is_suppressed_under_a_quoted_one():
    suppression_add(reason="global_unsubscribe", email="Camille.Martin@example.fr")

    assert (
        suppression_reason(kind="email", value='"camille.martin"@EXAMPLE.fr')
        == "global_unsubscribe"
    )
    assert suppression_reason(kind="email", value='  "Camille.Martin"@example.FR') == (
        "global_unsubscribe"
    )


def test_the_api_refuses_a_quoted_spelling_of_a_suppressed_address_on_email(api):
    suppression_add(reason="global_unsubscribe", email="Camille.Martin@example.fr")

    response = api().post(CONTACTS, {"email": '"camille.martin"@EXAMPLE.fr'}, format="json")

    assert response.status_code == 400
    assert "suppression list" in response.json()["email"][0]
    assert not Contact.objects.exists()


@pytest.mark.parametrize(
    "email", ["cam\u0131lle.mart\u0131n@example.fr", "\u017famille@example.fr"]
)
def test_the_api_refuses_a_look_alike_spelling_with_a_clear_message(api, email):
    suppression_add(reason="global_unsubscribe", email="Camille.Martin@example.fr")

    response = api().post(CONTACTS, {"email": email}, format="json")

    assert response.status_code == 400
    assert "ASCII" in response.json()["email"][0]
    assert not Contact.objects.exists()


def test_an_entry_written_under_the_former_quoted_key_still_suppresses_the_address():
    # an erasure recorded when `"camille.martin"@example.fr` was kept as typed
    Suppression.objects.create(
        digest=suppression_digest("email", '"camille.martin"@example.fr'),
        kind="email",
        reason="erased",
    )

    assert suppression_reason(kind="email", value="Camille.Martin@example.fr") == "erased"
    assert suppression_lift(email="camille.martin@example.fr") == 1
    assert not Suppression.objects.exists()


def test_a_contact_stored_with_a_look_alike_before_the_change_can_still_be_erased():
    contact = ContactFactory(email="cam\u0131lle@example.fr")  # accepted by the former rule

    contact_erase(contact=contact, reason="request")

    assert suppression_reason(kind="email", value="cam\u0131lle@example.fr") == "erased"


def migrate_quoted_emails() -> None:
    migration = importlib.import_module("contacts.migrations.0006_unquote_email_local_parts")
    migration.unquote_email_local_parts(apps, None)


def test_the_migration_unquotes_stored_addresses_that_need_no_quotes(api):
    quoted = ContactFactory(email='"camille.martin"@example.fr')
    needs_quotes = ContactFactory(email='"a@b"@example.fr')
    both = ContactFactory(email='"taken"@example.fr')
    ContactFactory(email="taken@example.fr")

    migrate_quoted_emails()

    quoted.refresh_from_db()
    needs_quotes.refresh_from_db()
    both.refresh_from_db()
    assert quoted.email == "camille.martin@example.fr"
    assert needs_quotes.email == '"a@b"@example.fr'  # refused when typed again; left for staff
    assert both.email == '"taken"@example.fr'  # the same mailbox twice: staff merge them
    # the plain spelling now finds the contact instead of creating a second one
    response = api().post(CONTACTS, {"email": "Camille.Martin@example.fr"}, format="json")
    assert response.status_code == 200
    assert response.json()["id"] == str(quoted.public_id)
