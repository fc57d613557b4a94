"""Reservations of a slice of messages (`campaigns.sending._Sender`): what a message that did
not leave gives back, whatever stopped it. Each test injects its event at the one seam where
it can happen (after a message was marked sent, or while marking it), which no clock can
time from outside."""

import pytest
from django.core import mail
from django.db import OperationalError

from campaigns import sending
from campaigns.models import Recipient, RecipientStatus
from campaigns.sending import step_batch_send
from campaigns.services import campaign_cancel
from consent.models import MessageSent
from tests.campaigns.test_sending_guards import HOOKED, HookedBackend, granted_contacts, started
from tests.factories import PurposeFactory, campaign_make

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def hooked(settings):
    settings.EMAIL_BACKEND = HOOKED
    HookedBackend.hooks, HookedBackend.refuse = [], {}
    yield HookedBackend
    HookedBackend.hooks, HookedBackend.refuse = [], {}


def test_a_cancel_before_the_rest_of_a_slice_is_checked_again_gives_its_reservations_back(
    settings, monkeypatch
):
    settings.CAMPAIGN_RESERVATION_SECONDS = 0  # the rest of the slice is checked again
    purpose = PurposeFactory()
    granted_contacts(purpose, 3)
    campaign = campaign_make(purpose)
    step_id = started(campaign)
    mail.outbox.clear()
    mark = sending._Sender._mark_sent

    def marked_then_cancelled(self, row, message_id, token_id):  # type: ignore[no-untyped-def]
        status = mark(self, row, message_id, token_id)
        if not Recipient.objects.filter(campaign=campaign, status="sent").count() > 1:
            campaign_cancel(campaign=campaign)  # commits between this mark and the next check
        return status

    monkeypatch.setattr(sending._Sender, "_mark_sent", marked_then_cancelled)
    step_batch_send(step_id=step_id, batch="b")

    assert len(mail.outbox) == 1
    assert MessageSent.objects.count() == 1  # the one that left, not the two reserved after it
    unsent = Recipient.objects.filter(campaign=campaign, status=RecipientStatus.SENDING)
    assert unsent.count() == 2 and not unsent.filter(sent_at__isnull=False).exists()


def test_a_database_error_marking_a_message_that_left_keeps_its_reservation(monkeypatch):
    purpose = PurposeFactory()
    (person,) = granted_contacts(purpose, 1)
    campaign = campaign_make(purpose)
    step_id = started(campaign)
    mail.outbox.clear()

    def mark_fails(self, row, message_id, token_id):  # type: ignore[no-untyped-def]
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(sending._Sender, "_mark_sent", mark_fails)
    with pytest.raises(OperationalError):
        step_batch_send(step_id=step_id, batch="b")

    assert len(mail.outbox) == 1  # it left: it counts towards the person's caps
    assert MessageSent.objects.filter(contact=person).count() == 1
    row = Recipient.objects.get(campaign=campaign)
    assert row.status == RecipientStatus.SENDING and row.sent_at is not None  # sent again later


def test_a_batch_whose_worker_died_gives_its_reservations_back_when_its_campaign_was_cancelled():
    purpose = PurposeFactory()
    granted_contacts(purpose, 3)
    campaign = campaign_make(purpose)
    step_id = started(campaign)
    mail.outbox.clear()

    def killed() -> None:
        raise SystemExit("worker killed")

    HookedBackend.hooks.append(killed)  # after the first message left, before it was marked
    with pytest.raises(SystemExit):
        step_batch_send(step_id=step_id, batch="b")
    assert MessageSent.objects.count() == 3  # the slice was reserved
    campaign_cancel(campaign=campaign)

    step_batch_send(step_id=step_id, batch="b")  # the task, delivered again

    assert len(mail.outbox) == 1
    # the one in flight at the kill cannot be told from one never sent: given back too
    assert MessageSent.objects.count() == 0
    assert not Recipient.objects.filter(campaign=campaign, sent_at__isnull=False).exists()
