"""A consent change of ours held back by a CRM outage, then overtaken by a newer opt-out made
in the CRM (which a pull has applied here since): sending the older change afterwards must not
undo the person's opt-out in the CRM. The push leaves out consent changes overtaken since."""

import time
from typing import Any

import pytest

from consent.models import ConsentState, Purpose
from contacts.services import contact_upsert
from crmsync.connections import connection_create
from crmsync.pull import connection_pull
from crmsync.push import connection_push
from tests.emulators.salesforce import EXTERNAL_ID, SalesforceEmulator
from tests.factories import PurposeFactory, grant

pytestmark = pytest.mark.django_db

UNKNOWN_ERROR = [{"message": "An unexpected error occurred.", "errorCode": "UNKNOWN_EXCEPTION"}]


@pytest.fixture
def newsletter() -> Purpose:
    purpose = PurposeFactory(slug="newsletter", channels=["email"])
    assert isinstance(purpose, Purpose)
    return purpose


def test_a_grant_sent_late_does_not_undo_a_newer_opt_out_made_in_salesforce(
    salesforce: SalesforceEmulator, newsletter: Purpose, settings: Any
) -> None:
    settings.CRM_PUSH_BACKOFF_BASE = 0.05
    connection = connection_create(
        name="salesforce",
        kind="salesforce",
        base_url=salesforce.url,
        credentials={"token": salesforce.session_id},
        purpose_map={"newsletter": salesforce.insert("DataUsePurpose", {"Name": "Newsletter"})},
    )
    contact, _created = contact_upsert(email="lea@example.fr", fields={"last_name": "Girard"})
    connection_push(connection_id=connection.pk)
    [record] = salesforce.find("Contact", **{EXTERNAL_ID: str(contact.public_id)})

    # given: our grant, held back while Salesforce fails
    grant(contact, newsletter)
    salesforce.fail_next(1, status=500, body=UNKNOWN_ERROR)
    failed = connection_push(connection_id=connection.pk)
    assert failed.retry_in is not None
    # meanwhile, the person opts out in Salesforce, and a pull applies it here
    time.sleep(0.01)
    with salesforce.lock:
        salesforce._write("Contact", record["Id"], {"HasOptedOutOfEmail": True})
    assert connection_pull(connection_id=connection.pk).consents == 1
    state = ConsentState.objects.get(contact=contact, purpose=newsletter, channel="email")
    assert state.status == "withdrawn"

    # when: Salesforce is back and the held-back grant goes
    time.sleep(failed.retry_in)
    connection_push(connection_id=connection.pk)

    # then: the person stays opted out there, as here
    [record] = salesforce.find("Contact", **{EXTERNAL_ID: str(contact.public_id)})
    assert record["HasOptedOutOfEmail"] is True
