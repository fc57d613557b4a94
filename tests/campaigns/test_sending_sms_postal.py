"""A campaign's SMS and letters: each SMS through the `SMS_URL` backend in E.164 with the
STOP instruction, only within the recipient's local hours (later ones wait and leave when
the hours open); postal rows are marked sent for the mail house's file."""

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from campaigns.models import Recipient, RecipientStatus
from campaigns.sending import campaigns_advance
from consent.eligibility import contact_time_zone
from consent.models import MessageSent
from tests.campaigns.running import advanced, campaign_started, queued_after_commit, step_run
from tests.factories import ContactFactory, PurposeFactory, campaign_make, grant

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
# A Tuesday evening in winter, 22:00 in Paris (21:00 UTC): SMS hours are over there.
EVENING = datetime(2026, 12, 1, 22, 0, tzinfo=PARIS)
NEXT_MORNING = datetime(2026, 12, 2, 8, 0, tzinfo=PARIS)


@pytest.fixture
def sms_folder(settings, tmp_path: Path) -> Path:
    settings.SMS_URL = f"file://{tmp_path}"
    settings.SMS_STOP_NUMBER = "36111"
    settings.SMS_STOP_INSTRUCTION = ""
    return tmp_path


def sms_sent(folder: Path) -> list[dict]:
    return [json.loads(path.read_text("utf-8")) for path in sorted(folder.glob("*.json"))]


def sms_step(**content: object) -> dict[str, object]:
    return {
        "channel": "sms",
        "sms_text_fr": "Bonjour {{ first_name }}, -20 % ce week-end",
        **content,
    }


def granted_by_sms(purpose, **fields):
    contact = ContactFactory(**fields)
    grant(contact, purpose, "sms")
    return contact


def test_each_sms_is_one_json_file_in_e164_with_the_stop_instruction(sms_folder):
    with freeze_time("2026-12-01T10:00:00+01:00"):
        purpose = PurposeFactory()
        french = granted_by_sms(purpose, first_name="Léa", phone="06 12 34 56 78", country="FR")
        english = granted_by_sms(purpose, first_name="Tom", phone="+33698765432", language="en")
        no_phone = granted_by_sms(purpose, phone="")
        campaign = campaign_make(
            purpose, steps=[sms_step(sms_text_en="Hi {{ first_name }}, 20% off this weekend")]
        )
        campaign_started(campaign)
        [result] = step_run(campaign.steps.get())

    assert result.sent == 2
    messages = {message["to"]: message for message in sms_sent(sms_folder)}
    assert set(messages) == {"+33612345678", "+33698765432"}
    assert messages["+33612345678"] == {
        "to": "+33612345678",
        "body": "Bonjour Léa, -20 % ce week-end\nSTOP au 36111",
        "campaign": str(campaign.public_id),
        "contact": str(french.public_id),
    }
    assert messages["+33698765432"]["body"] == "Hi Tom, 20% off this weekend\nSTOP to 36111"
    assert messages["+33698765432"]["contact"] == str(english.public_id)
    rows = {row.contact_id: row for row in Recipient.objects.filter(campaign=campaign)}
    assert rows[french.pk].status == RecipientStatus.SENT
    assert rows[french.pk].message_id  # the provider's id for the message
    assert rows[french.pk].preference_token_id is None
    assert (rows[no_phone.pk].status, rows[no_phone.pk].exclusion_reason) == (
        RecipientStatus.SKIPPED,
        "undeliverable",
    )
    assert MessageSent.objects.filter(channel="sms").count() == 2


def test_without_a_stop_number_the_sms_says_to_reply_stop(sms_folder, settings):
    settings.SMS_STOP_NUMBER = ""
    with freeze_time("2026-12-01T10:00:00+01:00"):
        purpose = PurposeFactory()
        granted_by_sms(purpose, phone="0612345678")
        campaign = campaign_make(purpose, steps=[sms_step()])
        campaign_started(campaign)
        step_run(campaign.steps.get())
    [message] = sms_sent(sms_folder)
    assert message["body"].endswith("\nRépondez STOP pour vous désinscrire")


def test_an_invalid_number_fails_its_row_without_the_number_and_the_batch_goes_on(sms_folder):
    with freeze_time("2026-12-01T10:00:00+01:00"):
        purpose = PurposeFactory()
        wrong = granted_by_sms(purpose, phone="0100")
        right = granted_by_sms(purpose, phone="0612345678")
        campaign = campaign_make(purpose, steps=[sms_step()])
        campaign_started(campaign)
        [result] = step_run(campaign.steps.get())

    assert (result.sent, result.failed) == (1, 1)
    assert [message["to"] for message in sms_sent(sms_folder)] == ["+33612345678"]
    row = Recipient.objects.get(contact=wrong)
    assert row.status == RecipientStatus.FAILED
    assert row.error and "0100" not in row.error
    assert Recipient.objects.get(contact=right).status == RecipientStatus.SENT


def test_at_ten_in_the_evening_the_sms_waits_for_eight_the_next_morning(sms_folder):
    with freeze_time(EVENING) as clock:
        purpose = PurposeFactory()
        contact = granted_by_sms(purpose, phone="0612345678", country="FR")
        campaign = campaign_make(purpose, steps=[sms_step()])
        campaign_started(campaign)
        step = campaign.steps.get()

        [result] = step_run(step)
        assert (result.sent, result.waiting, result.more) == (0, 1, False)
        assert sms_sent(sms_folder) == []
        row = Recipient.objects.get(contact=contact)
        assert (row.status, row.batch, row.claimed_at) == (RecipientStatus.QUEUED, "", None)
        assert row.send_after == NEXT_MORNING

        # beat through the night: nothing is queued, the step is not over
        clock.move_to(datetime(2026, 12, 2, 7, 59, tzinfo=PARIS))
        assert advanced(campaign) == []
        step.refresh_from_db()
        assert step.finished_at is None

        # when: beat runs after 08:00
        clock.move_to(datetime(2026, 12, 2, 8, 1, tzinfo=PARIS))
        with queued_after_commit() as batches:
            assert campaigns_advance() == 1
        assert batches == [(step.pk,)]
        [result] = step_run(step, prefix="morning")

    assert result.sent == 1
    [message] = sms_sent(sms_folder)
    assert message["to"] == "+33612345678"
    row.refresh_from_db()
    assert row.status == RecipientStatus.SENT
    assert row.sent_at == datetime(2026, 12, 2, 8, 1, tzinfo=PARIS)


def test_the_hours_are_those_of_the_recipients_country(sms_folder):
    with freeze_time(EVENING):  # 21:00 UTC
        purpose = PurposeFactory()
        paris = granted_by_sms(purpose, phone="0612345678", country="FR")
        guadeloupe = granted_by_sms(purpose, phone="+590690001122", country="GP")  # 17:00
        reunion = granted_by_sms(purpose, phone="+262692123456", country="RE")  # 01:00
        campaign = campaign_make(purpose, steps=[sms_step()])
        campaign_started(campaign)
        [result] = step_run(campaign.steps.get())

    assert (result.sent, result.waiting) == (1, 2)
    assert [message["to"] for message in sms_sent(sms_folder)] == ["+590690001122"]
    rows = {row.contact_id: row for row in Recipient.objects.filter(campaign=campaign)}
    assert rows[guadeloupe.pk].status == RecipientStatus.SENT
    assert rows[paris.pk].send_after == NEXT_MORNING
    assert contact_time_zone(reunion) == ZoneInfo("Indian/Reunion")
    assert rows[reunion.pk].send_after == datetime(
        2026, 12, 2, 8, 0, tzinfo=ZoneInfo("Indian/Reunion")
    )
    assert rows[reunion.pk].send_after < rows[paris.pk].send_after  # 04:00 UTC, before 07:00


def test_a_waiting_sms_is_not_sent_by_a_batch_that_runs_before_its_time(sms_folder):
    with freeze_time(EVENING) as clock:
        purpose = PurposeFactory()
        granted_by_sms(purpose, phone="0612345678")
        campaign = campaign_make(purpose, steps=[sms_step()])
        campaign_started(campaign)
        step = campaign.steps.get()
        step_run(step)
        clock.move_to(datetime(2026, 12, 2, 3, 0, tzinfo=PARIS))
        [result] = step_run(step, prefix="night")
    assert (result.sent, result.waiting) == (0, 0)
    assert sms_sent(sms_folder) == []


def test_postal_rows_are_marked_sent_with_their_proof_and_no_message():
    purpose = PurposeFactory(channels=["email", "postal"])
    address = {"address_line1": "3 rue Mercière", "postal_code": "69002", "city": "Lyon"}
    writer = ContactFactory(**address)
    record = grant(writer, purpose, "postal")
    no_address = ContactFactory()
    grant(no_address, purpose, "postal")
    campaign = campaign_make(
        purpose, steps=[{"channel": "postal", "body_text_fr": "Madame, Monsieur,"}]
    )

    campaign_started(campaign)
    [result] = step_run(campaign.steps.get())

    assert result.sent == 1
    rows = {row.contact_id: row for row in Recipient.objects.filter(campaign=campaign)}
    letter = rows[writer.pk]
    assert (letter.status, letter.consent_record_id, letter.message_id) == (
        RecipientStatus.SENT,
        record.pk,
        "",
    )
    assert letter.sent_at is not None and letter.preference_token_id is None
    assert (rows[no_address.pk].status, rows[no_address.pk].exclusion_reason) == (
        RecipientStatus.SKIPPED,
        "undeliverable",
    )
    assert MessageSent.objects.filter(contact=writer, channel="postal").count() == 1
