"""The admin and the suppression list: search by any spelling, phone changes checked."""

import pytest
from django.urls import reverse

from contacts.models import Contact, TimelineEvent
from contacts.services import suppression_add
from tests.admin.forms import submitted_form
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def test_the_suppression_list_finds_an_address_by_any_spelling(as_dpo):
    suppression_add(reason="complaint", email="camille.martin@example.fr")
    suppression_add(reason="complaint", email="someone.else@example.fr")

    response = as_dpo.get(
        reverse("admin:contacts_suppression_changelist"), {"q": '"Camille.Martin"@example.fr'}
    )

    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_changing_a_phone_to_a_suppressed_number_is_a_form_error_on_phone(as_marketer):
    contact = ContactFactory(email="ines.moreau@example.fr", phone="+33612345678")
    suppression_add(reason="erased", phone="+33698765432")
    url = reverse("admin:contacts_contact_change", args=[contact.pk])
    page = as_marketer.get(url)

    response = as_marketer.post(
        url, submitted_form(page, first_name="Changed", phone="06 98 76 54 32")
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["phone"]
    assert "suppression list" in errors["phone"][0]
    contact.refresh_from_db()
    assert (contact.phone, contact.first_name) == ("+33612345678", "Camille")
    assert not TimelineEvent.objects.filter(contact=contact, kind="updated").exists()


def test_a_contact_keeping_its_own_suppressed_phone_can_still_be_edited(as_marketer):
    # the number bounced (suppressed) but the person's other details may still be corrected
    contact = ContactFactory(email="ines.moreau@example.fr", phone="+33612345678")
    suppression_add(reason="hard_bounce", phone="+33612345678")
    url = reverse("admin:contacts_contact_change", args=[contact.pk])
    page = as_marketer.get(url)

    response = as_marketer.post(url, submitted_form(page, first_name="Inès"))

    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.first_name == "Inès"


def test_adding_a_contact_with_a_look_alike_email_is_a_form_error_on_email(as_marketer):
    suppression_add(reason="erased", email="camille.martin@example.fr")
    url = reverse("admin:contacts_contact_add")
    page = as_marketer.get(url)

    response = as_marketer.post(url, submitted_form(page, email="cam\u0131lle.martin@example.fr"))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "ASCII" in errors["email"][0]
    assert not Contact.objects.exists()


def test_suppression_list_is_searched_by_hashing_the_address(as_marketer):
    suppression_add(reason="complaint", email="gone@example.fr")
    url = reverse("admin:contacts_suppression_changelist")

    found = as_marketer.get(url, {"q": " Gone@Example.FR "})
    not_found = as_marketer.get(url, {"q": "other@example.fr"})

    assert [entry.reason for entry in found.context["cl"].result_list] == ["complaint"]
    assert list(not_found.context["cl"].result_list) == []
