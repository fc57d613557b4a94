"""The erasure request's page shows each CRM's acknowledgement; only the DPO closes it before
every CRM acknowledged, with a note, and the close is audited (GDPR Art. 17(2), 19)."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from core.models import AuditEvent
from crmsync.connections import connection_create
from privacy.models import AcknowledgementStatus, PrivacyRequest, PrivacyRequestStatus
from privacy.services import privacy_request_carry_out
from tests.admin.conftest import _client_for
from tests.admin.forms import submitted_form
from tests.factories import ContactFactory, PrivacyRequestFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting() -> PrivacyRequest:
    """An erasure carried out here, HubSpot not told yet."""
    connection_create(
        name="hubspot-eu",
        kind="hubspot",
        base_url="http://127.0.0.1:9",
        credentials={"token": "t"},
    )
    request = PrivacyRequestFactory(contact=ContactFactory(), type="erasure", verified=True)
    privacy_request_carry_out(request_id=str(request.pk))
    request.refresh_from_db()
    assert request.status == PrivacyRequestStatus.AWAITING_CRMS
    return request


def close(client: Client, request: PrivacyRequest, note: str) -> None:
    url = reverse("admin:privacy_privacyrequest_change", args=[request.pk])
    page = client.get(url)
    client.post(url, submitted_form(page, next_status="completed", note=note))


def test_the_request_page_shows_each_crms_acknowledgement(
    as_dpo: Client, waiting: PrivacyRequest
) -> None:
    page = as_dpo.get(reverse("admin:privacy_privacyrequest_change", args=[waiting.pk]))

    assert b"hubspot-eu" in page.content
    assert str(AcknowledgementStatus.PENDING.label).encode() in page.content


def test_the_dpo_closes_a_waiting_erasure_with_a_note_audited(
    as_dpo: Client, waiting: PrivacyRequest
) -> None:
    close(as_dpo, waiting, "The HubSpot portal was closed down.")

    waiting.refresh_from_db()
    assert waiting.status == PrivacyRequestStatus.COMPLETED
    assert waiting.acknowledgements.get().status == AcknowledgementStatus.CLOSED
    assert AuditEvent.objects.filter(details__request=str(waiting.pk)).exists()


def test_without_a_note_the_erasure_stays_open(as_dpo: Client, waiting: PrivacyRequest) -> None:
    close(as_dpo, waiting, "")

    waiting.refresh_from_db()
    assert waiting.status == PrivacyRequestStatus.AWAITING_CRMS


def test_staff_who_may_change_requests_but_are_not_the_dpo_cannot_close_it(
    roles: None, waiting: PrivacyRequest
) -> None:
    clerk = UserFactory(username="clerk-persona", is_staff=True)
    clerk.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_privacyrequest", "change_privacyrequest"])
    )

    close(_client_for(clerk), waiting, "Closing it anyway.")

    waiting.refresh_from_db()
    assert waiting.status == PrivacyRequestStatus.AWAITING_CRMS
