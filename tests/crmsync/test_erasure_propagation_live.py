"""The whole journey as it runs: a verified erasure request is carried out by the worker after
its commit, which queues the CRM erasures after the erasure's commit; HubSpot erases the
person and the request completes (on the real worker when a broker is configured)."""

from collections.abc import Iterator
from typing import Any

import pytest

from crmsync.connections import connection_create
from privacy.models import PrivacyRequest, PrivacyRequestStatus
from tests.conftest import wait_for
from tests.emulators.hubspot import HubSpotEmulator
from tests.factories import ContactFactory, PrivacyRequestFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TOKEN = "hubspot-test-token"


@pytest.fixture
def hubspot() -> Iterator[HubSpotEmulator]:
    with HubSpotEmulator(token=TOKEN) as emulator:
        assert isinstance(emulator, HubSpotEmulator)
        yield emulator


def test_a_verified_erasure_reaches_hubspot_after_commit_and_then_completes(
    hubspot: HubSpotEmulator, celery_worker: Any
) -> None:
    connection_create(
        name="hubspot", kind="hubspot", base_url=hubspot.url, credentials={"token": TOKEN}
    )
    contact = ContactFactory(email="lea@example.fr")
    hubspot.put_contact({"email": "lea@example.fr"})

    request = PrivacyRequestFactory(contact=contact, type="erasure", verified=True)

    wait_for(lambda: hubspot.contact("lea@example.fr") is None)
    wait_for(
        lambda: PrivacyRequest.objects.get(pk=request.pk).status == PrivacyRequestStatus.COMPLETED
    )
    assert "lea@example.fr" in hubspot.gdpr_deleted
