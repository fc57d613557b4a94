"""End to end through a real Celery worker: the double opt-in email and its link."""

import re

import pytest

from consent.models import ConsentState, ConsentStatus
from tests.conftest import message_text
from tests.factories import ContactFactory, PurposeFactory, grant

# The worker is another process: it only sees committed rows, hence a transactional test.
# (No serialized rollback: see tests/api/live.py.)
pytestmark = [
    pytest.mark.worker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

CONFIRMATION_LINK = re.compile(r"https?://[^\s/]+(/confirm/[^\s/]+/)")


def test_double_opt_in_email_sent_by_the_worker_confirms_the_grant(celery_worker, mailbox, client):
    # given a purpose that requires double opt-in
    contact = ContactFactory(email="camille@example.fr")
    purpose = PurposeFactory(double_opt_in=True)

    # when a grant is recorded, the worker sends the confirmation email
    record = grant(contact, purpose)
    assert record.status == ConsentStatus.PENDING
    [message] = mailbox.wait(1)
    assert message["To"] == "camille@example.fr"
    path = CONFIRMATION_LINK.search(message_text(message)).group(1)

    # and the person follows the link and confirms
    response = client.post(path)

    # then the grant is valid consent
    assert response.status_code == 200
    state = ConsentState.objects.get(contact=contact, purpose=purpose, channel="email")
    assert state.status == ConsentStatus.GRANTED
    assert state.record.action == "confirm"
