"""A worker killed in the middle of a campaign batch: the next one finishes the campaign, and
each person gets the message once, but for the one in flight at the kill, which goes again
under the same Message-ID (the mailbox shows it once; see `campaigns.sending`).

Real Celery workers (tests/consent/workers.py) send over SMTP to an aiosmtpd server in this
process that takes 50 ms per message, so that the kill lands in the middle of a batch. Beat
is played by this test: it queues `advance_campaigns` for the workers every few seconds.
"""

import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from campaigns.models import Campaign, CampaignStatus, Recipient, RecipientStatus
from campaigns.sending import campaign_send
from campaigns.tasks import advance_campaign, advance_campaigns
from consent.models import MessageSent, Purpose
from contacts.models import Contact
from preferences.selectors import contact_for_token
from tests.campaigns.smtp_sink import SmtpSink, sink_started
from tests.conftest import wait_for
from tests.consent.workers import Workers
from tests.factories import ContactFactory, PurposeFactory, campaign_make, grant
from tests.queued import held_back

pytestmark = [pytest.mark.slow, pytest.mark.worker, pytest.mark.postgres]

PEOPLE = 60
BATCH_SIZE = 5
# Short, so that the replacement worker may take the dead worker's message within the test.
VISIBILITY_TIMEOUT = 5
# A Redis database for these workers alone (see tests/consent/workers.py).
REDIS_DATABASE = 7
# The SMTP server's time per message: long enough for the kill to land mid-batch.
SMTP_DELAY = 0.05
# How often this test plays beat (the real one runs every minute).
BEAT_INTERVAL = 2.0


@pytest.fixture
def smtp() -> Iterator[tuple[SmtpSink, int]]:
    sink = SmtpSink(delay=SMTP_DELAY)
    controller = sink_started(sink)
    try:
        yield sink, controller.port
    finally:
        controller.stop()


@pytest.fixture
def workers(transactional_db: None, smtp: tuple[SmtpSink, int]) -> Iterator[Workers]:
    """Workers on a queue of this test, sending over SMTP to the sink in small batches."""
    _sink, port = smtp
    pool = Workers(
        queue=f"send-crash-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        redis_database=REDIS_DATABASE,
        visibility_timeout=VISIBILITY_TIMEOUT,
        environment={
            "DJANGO_SETTINGS_MODULE": "tests.campaigns.worker_settings",
            "EMAIL_URL": f"smtp://127.0.0.1:{port}",
            "CAMPAIGN_BATCH_SIZE": str(BATCH_SIZE),
            "CAMPAIGN_PARALLEL_BATCHES": "2",
        },
    )
    try:
        yield pool
    finally:
        pool.close()


def test_a_campaign_batch_killed_midway_is_finished_by_the_next_worker_each_message_once(
    workers: Workers, smtp: tuple[SmtpSink, int]
) -> None:
    sink, _port = smtp
    # given: a campaign to people who agreed, started (its first advance held for the workers)
    people = _people_who_agreed()
    campaign = campaign_make(_purpose(people))
    with held_back(advance_campaign):
        campaign_send(campaign=campaign)

    # when: the worker sending it is killed in the middle of a batch
    first = workers.start()
    workers.send(advance_campaigns)
    wait_for(lambda: len(sink.received()) >= 2 * BATCH_SIZE + 2, timeout=60, interval=0.01)
    workers.kill(first)

    # then: some people have it, the dead batch's rows are still claimed, none is lost
    received_before = len(sink.received())
    assert 0 < received_before < PEOPLE
    claimed = Recipient.objects.filter(campaign=campaign, status=RecipientStatus.SENDING)
    dead_batches = set(claimed.values_list("batch", flat=True))
    assert len(dead_batches) == 1, "the dead worker had one batch claimed"
    [dead_batch] = dead_batches
    handed_out_at = workers.unacknowledged_since(dead_batch)
    assert handed_out_at is not None, "the broker forgot the dead worker's message"

    # when: another worker starts once the message's visibility timeout is over (see
    # tests/consent/test_worker_crash.py for why not sooner), and beat goes on
    time.sleep(max(handed_out_at + VISIBILITY_TIMEOUT + 0.5 - time.time(), 0))
    workers.start()
    _beat_until_sent(workers, campaign)

    # then: everyone has the message, each row sent once, each message counted once
    rows = Recipient.objects.filter(campaign=campaign)
    assert rows.count() == PEOPLE
    assert set(rows.values_list("status", flat=True)) == {RecipientStatus.SENT}
    assert MessageSent.objects.filter(purpose=campaign.purpose).count() == PEOPLE
    _assert_each_person_got_it_once_but_the_one_in_flight(sink, people, campaign)


def _people_who_agreed() -> list[Contact]:
    return ContactFactory.create_batch(PEOPLE)


def _purpose(people: list[Contact]) -> Purpose:
    purpose = PurposeFactory()
    for person in people:
        grant(person, purpose, "email")
    return purpose


def _beat_until_sent(workers: Workers, campaign: Campaign, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        campaign.refresh_from_db()
        if campaign.status == CampaignStatus.SENT:
            return
        assert time.monotonic() < deadline, f"the campaign is still {campaign.status}"
        workers.send(advance_campaigns)
        time.sleep(BEAT_INTERVAL)


def _assert_each_person_got_it_once_but_the_one_in_flight(
    sink: SmtpSink, people: list[Contact], campaign: Campaign
) -> None:
    messages = sink.received()
    copies = Counter(message["To"] for message in messages)
    assert set(copies) == {person.email for person in people}
    twice = [address for address, count in copies.items() if count > 1]
    assert len(twice) <= 1 and max(copies.values()) <= 2, copies.most_common(3)
    message_ids = {
        row.contact.email: row.message_id for row in campaign.recipients.select_related("contact")
    }
    for message in messages:
        assert message["Message-ID"] == message_ids[message["To"]]
    for message in messages:  # whichever copy the mailbox keeps, its links work
        token = re.search(r"/u/([^/>]+)/", message["List-Unsubscribe"]).group(1)
        holder = contact_for_token(token)
        assert holder is not None and holder.email == message["To"]
    if twice:
        [address] = twice
        copies_of_it = [message for message in messages if message["To"] == address]
        for header in ("Message-ID", "List-Unsubscribe"):
            assert len({message[header] for message in copies_of_it}) == 1, (
                f"sent again under another {header}"
            )
