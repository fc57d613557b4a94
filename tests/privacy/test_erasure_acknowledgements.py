"""An erasure request waits for every connected CRM's acknowledgement (GDPR Art. 17(2), 19),
through the single and the set-based carry-out alike; with no CRM it completes at once."""

import pytest

from crmsync.connections import connection_create
from privacy.merge import contact_merge
from privacy.models import (
    AcknowledgementStatus,
    ErasureAcknowledgement,
    PrivacyRequest,
    PrivacyRequestStatus,
)
from privacy.services import privacy_requests_carry_out_pending
from tests.factories import ContactFactory, PrivacyRequestFactory

pytestmark = pytest.mark.django_db


def _verified_erasure() -> PrivacyRequest:
    return PrivacyRequestFactory(contact=ContactFactory(), type="erasure", verified=True)


def _connected(name: str = "hubspot") -> None:
    connection_create(
        name=name, kind="hubspot", base_url="http://127.0.0.1:9", credentials={"token": "t"}
    )


def test_with_no_crm_connected_an_erasure_completes_at_once() -> None:
    requests = [_verified_erasure() for _ in range(3)]

    assert privacy_requests_carry_out_pending() == 3

    for request in requests:
        request.refresh_from_db()
        assert request.status == PrivacyRequestStatus.COMPLETED
    assert not ErasureAcknowledgement.objects.exists()


def test_erasures_carried_out_together_each_wait_for_every_crm() -> None:
    _connected("hubspot")
    _connected("hubspot-us")
    requests = [_verified_erasure() for _ in range(3)]

    assert privacy_requests_carry_out_pending() == 3

    for request in requests:
        request.refresh_from_db()
        assert request.status == PrivacyRequestStatus.AWAITING_CRMS
        assert request.completed_at is None
        assert (
            sorted(request.acknowledgements.values_list("status", flat=True))
            == [AcknowledgementStatus.PENDING] * 2
        )


def test_the_contacts_merged_into_the_person_are_acknowledged_on_the_same_request() -> None:
    _connected()
    request = _verified_erasure()
    assert request.contact is not None
    duplicate = ContactFactory()
    contact_merge(survivor=request.contact, merged=duplicate, actor="dpo")

    privacy_requests_carry_out_pending()

    assert ErasureAcknowledgement.objects.filter(request=request).count() == 2
