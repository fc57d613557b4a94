"""The lawful basis in the admin (issue 12): a contact's B2B flag and customer relationship on
its change page, and purposes that may send messages only on a basis that allows it."""

from datetime import date

import pytest
from django.urls import reverse

from consent.models import LegalBasis, Purpose
from contacts.models import Contact
from tests.admin.forms import submitted_form
from tests.factories import ContactFactory, PurposeFactory

pytestmark = pytest.mark.django_db


def contact_url(contact: Contact) -> str:
    return reverse("admin:contacts_contact_change", args=[contact.pk])


def purpose_url(purpose: Purpose) -> str:
    return reverse("admin:consent_purpose_change", args=[purpose.pk])


def test_a_marketer_marks_a_contact_as_a_b2b_customer_on_its_page(as_marketer):
    contact = ContactFactory(email="jordan@northwind.example")
    page = as_marketer.get(contact_url(contact))
    assert "Lawful basis" in page.content.decode()

    response = as_marketer.post(
        contact_url(contact),
        submitted_form(page, b2b="on", relationship="customer", customer_since="2024-03-01"),
    )

    assert response.status_code == 302
    contact.refresh_from_db()
    assert (contact.b2b, contact.relationship, contact.customer_since) == (
        True,
        "customer",
        date(2024, 3, 1),
    )


def test_the_contact_page_refuses_a_contract_ending_before_it_began(as_marketer):
    contact = ContactFactory(email="jordan@northwind.example")
    page = as_marketer.get(contact_url(contact))

    response = as_marketer.post(
        contact_url(contact),
        submitted_form(
            page,
            relationship="customer",
            customer_since="2024-03-01",
            customer_until="2024-01-01",
        ),
    )

    assert response.status_code == 200
    assert "cannot be before its start" in response.content.decode()
    contact.refresh_from_db()
    assert contact.relationship == "prospect"


def test_a_purpose_marked_similar_products_must_rest_on_legitimate_interests(as_dpo):
    purpose = PurposeFactory(slug="offers", channels=["email"])
    page = as_dpo.get(purpose_url(purpose))

    refused = as_dpo.post(purpose_url(purpose), submitted_form(page, similar_products="on"))
    assert refused.status_code == 200
    assert "Soft opt-in for similar products" in refused.content.decode()

    accepted = as_dpo.post(
        purpose_url(purpose),
        submitted_form(
            page,
            similar_products="on",
            legal_basis=LegalBasis.LEGITIMATE_INTERESTS,
            legitimate_interest_fr="Proposer à nos clients des produits proches de leurs achats.",
            legitimate_interest_en="Offering our customers products close to what they bought.",
        ),
    )
    assert accepted.status_code == 302
    purpose.refresh_from_db()
    assert purpose.similar_products is True


def test_a_purpose_sends_messages_only_on_a_basis_that_allows_it(as_dpo):
    purpose = PurposeFactory(slug="recall", channels=["email"])
    page = as_dpo.get(purpose_url(purpose))

    response = as_dpo.post(
        purpose_url(purpose), submitted_form(page, legal_basis=LegalBasis.LEGAL_OBLIGATION)
    )

    assert response.status_code == 200
    assert "Messages are sent only on consent or legitimate interests" in (
        response.content.decode()
    )
    purpose.refresh_from_db()
    assert purpose.legal_basis == LegalBasis.CONSENT
