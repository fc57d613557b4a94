"""Admin forms refuse what the services would, with the services' own words, every problem at
once and next to its field, before anything is written."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from contacts.models import Contact, ContactStatus
from contacts.services import suppression_add
from privacy.models import PrivacyRequest
from tests.admin.forms import submitted_form
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def test_adding_a_contact_names_every_problem_next_to_its_field(as_marketer):
    suppression_add(reason="erased", email="gone@example.fr", phone="+33698765432")
    url = reverse("admin:contacts_contact_add")
    page = as_marketer.get(url)

    response = as_marketer.post(
        url,
        submitted_form(page, email="gone@example.fr", phone="+33 6 98 76 54 32", country="F1"),
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"email", "phone", "country"}
    assert "suppression list" in errors["email"][0]
    assert "suppression list" in errors["phone"][0]
    assert errors["country"] == ["Use a two-letter ISO 3166 country code."]
    assert not Contact.objects.exists()


def test_filing_a_request_names_an_erased_contact_and_a_future_date_together(as_dpo):
    contact = ContactFactory(status=ContactStatus.ERASED)
    url = reverse("admin:privacy_privacyrequest_add")
    page = as_dpo.get(url)
    tomorrow = timezone.localtime() + timedelta(days=1)

    response = as_dpo.post(
        url,
        submitted_form(
            page,
            contact=contact.pk,
            type="access",
            received_at_0=tomorrow.date().isoformat(),
            received_at_1="10:00:00",
        ),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {
        "contact": ["This contact was erased."],
        "received_at": ["A request cannot be received in the future."],
    }
    assert not PrivacyRequest.objects.exists()
