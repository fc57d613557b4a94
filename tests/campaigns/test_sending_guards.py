"""What a batch at work must still honour (a cancel, an unsubscribe, another batch, the caps),
what the mail house's file must leave out, and who may send a notice.

The email backend below is Django's locmem backend with a hook run once after the first
message left: it plays what happens elsewhere while a batch is still sending (a marketer
cancels, a person unsubscribes, another batch runs), without stubbing any of our code."""

from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from freezegun import freeze_time

from campaigns.models import Campaign, Recipient, RecipientStatus
from campaigns.sending import campaign_advance, campaign_send, step_batch_send
from campaigns.services import campaign_cancel
from campaigns.tasks import advance_campaign, send_step_batch
from consent.models import MessageSent
from contacts.models import Interest
from contacts.services import suppression_add
from core.models import AuditAction, AuditEvent
from tests.admin.conftest import otp_verified_login
from tests.factories import (
    ContactFactory,
    PurposeFactory,
    UserFactory,
    campaign_make,
    email_step,
    grant,
)
from tests.queued import held_back

pytestmark = pytest.mark.django_db

HOOKED = "tests.campaigns.test_sending_guards.HookedBackend"


class HookedBackend(LocmemBackend):
    """locmem, running each hook of `hooks` once, after the message that was being sent left;
    `refuse` maps an address to the SMTP error the server answers for it."""

    hooks: list[Callable[[], None]] = []
    refuse: dict[str, Exception] = {}

    def send_messages(self, messages):  # type: ignore[no-untyped-def]
        for message in messages:
            for address in message.to:
                if address in HookedBackend.refuse:
                    raise HookedBackend.refuse[address]
        sent = super().send_messages(messages)
        while HookedBackend.hooks:
            HookedBackend.hooks.pop(0)()
        return sent


@pytest.fixture(autouse=True)
def hooked(settings):
    settings.EMAIL_BACKEND = HOOKED
    HookedBackend.hooks, HookedBackend.refuse = [], {}
    yield HookedBackend
    HookedBackend.hooks, HookedBackend.refuse = [], {}


def started(campaign: Campaign) -> int:
    """Send the campaign and write its first step's rows, the batches held back; answers the
    step's id."""
    with held_back(advance_campaign), held_back(send_step_batch):
        campaign_send(campaign=campaign)
        campaign_advance(campaign_id=campaign.pk)
    return campaign.steps.get(position=1).pk


def granted_contacts(purpose, count: int, **fields):
    contacts = [ContactFactory(**fields) for _ in range(count)]
    for contact in contacts:
        grant(contact, purpose, "email")
    return contacts


# --- 1. cancel and the eligibility re-check hold only at the start of a batch ------------------


def test_cancelling_stops_the_messages_of_a_batch_already_at_work(hooked):
    purpose = PurposeFactory()
    granted_contacts(purpose, 3)
    campaign = campaign_make(purpose)
    step_id = started(campaign)
    mail.outbox.clear()
    hooked.hooks.append(lambda: campaign_cancel(campaign=campaign))

    step_batch_send(step_id=step_id, batch="b")

    # the first message left before the cancel; nothing after it may
    assert len(mail.outbox) == 1
    assert Recipient.objects.filter(campaign=campaign, status=RecipientStatus.SENT).count() == 1


def test_someone_who_unsubscribed_a_second_before_their_message_left_gets_nothing(hooked):
    """Messages are checked and reserved a slice at a time; one that would leave more than
    `CAMPAIGN_RESERVATION_SECONDS` (1 s) after its check is checked again first."""
    purpose = PurposeFactory()
    contacts = granted_contacts(purpose, 3)
    campaign = campaign_make(purpose)
    step_id = started(campaign)
    mail.outbox.clear()
    last = max(contacts, key=lambda contact: contact.pk)  # the batch sends in row order

    with freeze_time(timezone.now()) as clock:

        def unsubscribe_then_a_second_passes() -> None:
            suppression_add(reason="unsubscribed", email=last.email)
            clock.tick(1.1)

        hooked.hooks.append(unsubscribe_then_a_second_passes)
        result = step_batch_send(step_id=step_id, batch="b")

    assert last.email not in [message.to[0] for message in mail.outbox]
    assert len(mail.outbox) == result.sent == 2
    row = Recipient.objects.get(campaign=campaign, contact=last)
    assert (row.status, row.exclusion_reason) == (RecipientStatus.SKIPPED, "suppressed")
    assert MessageSent.objects.filter(contact=last).count() == 0  # its reservation given back


# --- 2. a batch that lost its lease still sends and marks its rows ------------------------------


def test_a_batch_past_its_lease_stops_and_only_its_message_in_flight_goes_twice(hooked):
    """One send that hangs past `CLAIM_LEASE` (which `EMAIL_TIMEOUT` prevents for SMTP): beat
    puts the batch's rows back in the queue and another batch sends them. The message that
    was in flight cannot be told from one a dead worker never sent: it goes again, with the
    same Message-ID and links; the stalled batch sends nothing more."""
    purpose = PurposeFactory()
    granted_contacts(purpose, 3)
    campaign = campaign_make(purpose)
    step_id = started(campaign)
    mail.outbox.clear()
    later = timezone.now() + timedelta(minutes=16)

    def beat_and_another_batch() -> None:
        with held_back(advance_campaign), held_back(send_step_batch):
            campaign_advance(campaign_id=campaign.pk, now=later)  # releases the expired claim
            step_batch_send(step_id=step_id, batch="other", now=later)

    hooked.hooks.append(beat_and_another_batch)
    result = step_batch_send(step_id=step_id, batch="stalled")

    assert result.sent == 0  # its one message was marked by the other batch
    received = Counter(message.to[0] for message in mail.outbox)
    assert sorted(received.values()) == [1, 1, 2], received
    twice = [message for message in mail.outbox if received[message.to[0]] == 2]
    assert len({message.extra_headers["Message-ID"] for message in twice}) == 1
    assert {row.status for row in Recipient.objects.filter(campaign=campaign)} == {"sent"}


# --- 3. the frequency caps between two batches at work ------------------------------------------


def test_the_daily_cap_holds_when_two_campaigns_send_to_the_same_person_at_once(hooked, settings):
    settings.MARKETING_CAPS = {"day": 1, "week": 3}
    first, second = PurposeFactory(), PurposeFactory()
    person = ContactFactory()
    grant(person, first, "email")
    grant(person, second, "email")
    one = campaign_make(first, name="one")
    other = campaign_make(second, name="other")
    one_step, other_step = started(one), started(other)
    mail.outbox.clear()
    # the other campaign's batch runs on the other worker while this one sends
    hooked.hooks.append(lambda: step_batch_send(step_id=other_step, batch="w2"))

    step_batch_send(step_id=one_step, batch="w1")

    assert len(mail.outbox) == 1  # a cap of 1 a day
    assert Recipient.objects.filter(contact=person, status=RecipientStatus.SENT).count() == 1


# --- 5. statements per row ---------------------------------------------------------------------


def test_a_batch_reads_its_peoples_interests_in_one_query_whatever_its_size():
    """Commit b673215 says "a batch reads its people's interests once"; `personalisation`
    reads `contact.interests.all()` for each message (no prefetch)."""
    interest_table = Interest.contacts.through._meta.db_table

    def interest_queries(count: int) -> int:
        purpose = PurposeFactory()
        granted_contacts(purpose, count)
        campaign = campaign_make(
            purpose, steps=[email_step(body_text_fr="Bonjour {{ first_name }} {{ interests }}")]
        )
        step_id = started(campaign)
        with CaptureQueriesContext(connection) as queries:
            step_batch_send(step_id=step_id, batch=f"b{count}")
        assert Recipient.objects.filter(campaign=campaign, status="sent").count() == count
        return sum(interest_table in query["sql"] for query in queries.captured_queries)

    assert interest_queries(6) == interest_queries(2)


# --- 6. the mail house's file --------------------------------------------------------------------


def postal_campaign_sent(purpose, contact) -> Campaign:
    campaign = campaign_make(purpose, steps=[{"channel": "postal", "body_text_fr": "Lettre"}])
    step_id = started(campaign)
    step_batch_send(step_id=step_id, batch="postal")
    return campaign


def test_downloading_the_mail_house_file_from_the_admin_is_in_the_audit_log(client):
    """SPEC security: every staff export of personal data is in the audit log; the file holds
    names and postal addresses."""
    purpose = PurposeFactory(channels=["postal"])
    person = ContactFactory(address_line1="3 rue de Rivoli", city="Paris", postal_code="75004")
    grant(person, purpose, "postal")
    campaign = postal_campaign_sent(purpose, person)
    otp_verified_login(client, UserFactory(is_superuser=True))

    response = client.get(f"/admin/campaigns/campaign/{campaign.pk}/postal-file/")

    assert response.status_code == 200
    assert "RIVOLI" in b"".join(response.streaming_content).decode()
    assert AuditEvent.objects.filter(action=AuditAction.EXPORT).exists()


def test_a_person_who_objects_before_the_file_is_downloaded_gets_no_letter(api):
    """A postal row is marked `sent` when its batch runs, but the letter leaves when the mail
    house prints the file: someone who withdrew in between is still in it."""
    purpose = PurposeFactory(channels=["postal"])
    person = ContactFactory(address_line1="3 rue de Rivoli", city="Paris", postal_code="75004")
    grant(person, purpose, "postal")
    campaign = postal_campaign_sent(purpose, person)
    grant(person, purpose, "postal", action="withdraw", evidence=None)

    response = api(["campaigns:read"]).get(f"/api/v1/campaigns/{campaign.public_id}/postal-file/")

    assert response.status_code == 200
    assert str(person.public_id) not in b"".join(response.streaming_content).decode()


# --- 7. a notice reaches everyone, whatever their choices: who may send one ---------------------


def test_a_marketer_cannot_send_a_notice_that_reaches_those_who_refused_marketing(settings):
    """A notice kind (policy update, breach) skips consent, objection, the suppression list and
    the caps, carries no unsubscribe link, and its content is editable by whoever may change
    campaigns; the `kind` field of the campaign form offers it too. A Marketer (add, change,
    send) can thus mail anything to the whole base, those who unsubscribed included."""
    from io import StringIO

    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.test import Client

    from tests.factories import PrivacyNoticeFactory

    call_command("setup_roles", stdout=StringIO())
    marketer = UserFactory(username="marketer-persona")
    marketer.groups.add(Group.objects.get(name="Marketers"))
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    otp_verified_login(client, marketer)
    PrivacyNoticeFactory()
    unsubscribed = ContactFactory()
    suppression_add(reason="unsubscribed", email=unsubscribed.email)

    client.post(
        "/admin/campaigns/builtincampaign/add/",
        {"kind": "policy_update", "summary_fr": "Soldes : -50 % sur tout !"},
    )
    notice = Campaign.objects.filter(kind="policy_update").first()
    if notice is not None:  # created: it must at least not be the marketer who sends it
        mail.outbox.clear()
        with held_back(advance_campaign), held_back(send_step_batch):
            client.post(f"/admin/campaigns/campaign/{notice.pk}/send/", {"at_0": "", "at_1": ""})
            campaign_advance(campaign_id=notice.pk)
        for step in notice.steps.all():
            step_batch_send(step_id=step.pk, batch="b")
        assert unsubscribed.email not in [message.to[0] for message in mail.outbox]


def test_a_reserved_row_skipped_on_resume_gives_its_reservation_back(hooked):
    """A worker died after reserving a message (its row `sending` with `sent_at`, its
    MessageSent written) and before sending it; the person unsubscribed meanwhile: the batch
    delivered again skips the row, which then counts neither as sent nor towards the caps."""
    from campaigns.selectors import campaign_stats
    from consent.models import MessageSent

    purpose = PurposeFactory()
    (person,) = granted_contacts(purpose, 1)
    campaign = campaign_make(purpose)
    step_id = started(campaign)
    now = timezone.now()
    Recipient.objects.filter(campaign=campaign).update(
        status=RecipientStatus.SENDING, batch="dead", claimed_at=now, sent_at=now
    )
    MessageSent.objects.create(contact=person, purpose=purpose, channel="email", sent_at=now)
    suppression_add(reason="unsubscribed", email=person.email)
    mail.outbox.clear()

    step_batch_send(step_id=step_id, batch="dead")

    row = Recipient.objects.get(campaign=campaign)
    assert (row.status, row.exclusion_reason, row.sent_at) == ("skipped", "suppressed", None)
    assert not MessageSent.objects.exists()
    assert campaign_stats(campaign)["sent"] == 0
    assert mail.outbox == []
