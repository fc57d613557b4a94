"""Erasing a person erases the contacts merged into them too, by every path: they still hold
the person's old addresses and names."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from contacts.models import Contact, ContactStatus
from privacy.merge import contact_merge
from privacy.models import PrivacyRequest, PrivacyRequestStatus, PrivacyRequestType
from privacy.services import privacy_requests_carry_out_pending, retention_apply
from tests.factories import ContactFactory, PrivacyRequestFactory

pytestmark = pytest.mark.django_db


def _merged_pair() -> tuple[Contact, Contact]:
    survivor = ContactFactory(email="camille@example.fr")
    merged = ContactFactory(email="c.martin@work.example", first_name="Cam")
    contact_merge(survivor=survivor, merged=merged, actor="dpo")
    return survivor, merged


def test_erasure_requests_carried_out_as_a_batch_erase_the_contacts_merged_into_the_person():
    survivor, merged = _merged_pair()
    other = ContactFactory(email="dominique@example.fr")
    for contact in (survivor, other):
        request = PrivacyRequestFactory(
            contact=contact, type=PrivacyRequestType.ERASURE, source_kind="api"
        )
        PrivacyRequest.objects.filter(pk=request.pk).update(status=PrivacyRequestStatus.VERIFIED)

    privacy_requests_carry_out_pending()

    merged.refresh_from_db()
    assert Contact.objects.get(pk=survivor.pk).status == ContactStatus.ERASED
    assert merged.status == ContactStatus.ERASED
    assert "c.martin" not in merged.email
    assert merged.first_name == ""


def test_retention_erases_the_contacts_merged_into_a_silent_person():
    survivor, merged = _merged_pair()
    asked = timezone.now() - settings.RETENTION_GRACE - timedelta(days=1)
    Contact.objects.filter(pk=survivor.pk).update(
        repermission_sent_at=asked, last_activity_at=asked - timedelta(days=1)
    )

    retention_apply()

    merged.refresh_from_db()
    assert Contact.objects.get(pk=survivor.pk).status == ContactStatus.ERASED
    assert merged.status == ContactStatus.ERASED
    assert "c.martin" not in merged.email
