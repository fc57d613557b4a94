"""Feedback lands on the campaign row it is about (SPEC §3 campaigns, "Feedback" and "Stats";
issue 13 points 5 and 8): deliveries, bounces, returned mail, complaints and STOPs from the API
and the ESP's webhook, and unsubscribes through the links a campaign message carried, counted
in the campaign's statistics and attributed to it.

The rows are made by the sending path (`campaign_send`, `campaign_advance`, `step_batch_send`
with the tasks held back), and the links are read from the messages sent.
"""

import re
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from freezegun import freeze_time

from campaigns.models import Campaign, Recipient, RecipientStatus
from campaigns.selectors import campaign_stats
from campaigns.sending import campaign_advance, campaign_send, step_batch_send
from consent.models import ConsentState
from contacts.models import Contact, EmailDeliverability
from core.tokens import token_hash
from tests.contacts.test_deliverability_webhooks import (
    SECRET,
    SIGNING_KEY,
    mailgun_body,
    post_mailgun,
)
from tests.factories import ContactFactory, PurposeFactory, campaign_make, email_step, grant
from tests.preferences.conftest import BROWSER, center_path, post_form, save_consents
from tests.queued import held_back

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/deliverability-events/"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
ADDRESS = {"address_line1": "1 rue de la Paix", "postal_code": "75002", "city": "Paris"}
MAIL_PROVIDER = {"REMOTE_ADDR": "192.0.2.9", "HTTP_USER_AGENT": "Mail provider one-click"}


def advanced(campaign: Campaign) -> None:
    """Advance the campaign here, as the beat job would (its batches held back)."""
    from campaigns.tasks import advance_campaign, send_step_batch

    with held_back(advance_campaign), held_back(send_step_batch):
        campaign_advance(campaign_id=campaign.pk)


def sent(campaign: Campaign, position: int = 1) -> None:
    """Start the campaign (first step) and send the step's batches here, as workers would."""
    from campaigns.tasks import advance_campaign, send_step_batch

    if position == 1:
        with held_back(advance_campaign), held_back(send_step_batch):
            campaign_send(campaign=campaign)
    advanced(campaign)
    step = campaign.steps.get(position=position)
    batch = 0
    while step_batch_send(step_id=step.pk, batch=f"b{position}-{batch}").more:
        batch += 1


def row(campaign: Campaign, contact: Contact, position: int = 1) -> Recipient:
    return Recipient.objects.get(campaign=campaign, contact=contact, step__position=position)


def unsubscribe_token(contact: Contact) -> str:
    """The token of the one-click link the campaign message to `contact` carried."""
    message = next(m for m in mail.outbox if m.to == [contact.email])
    header = message.extra_headers["List-Unsubscribe"]
    found = re.search(r"/u/([A-Za-z0-9_-]+)/", header)
    assert found, header
    return found.group(1)


@pytest.fixture
def mailgun(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": SIGNING_KEY}


@pytest.fixture
def offers():
    return PurposeFactory(slug="offers", channels=["email", "sms", "postal"])


@pytest.fixture
def two_sent(offers):
    """An email campaign sent to Anne and Bruno, who both agreed."""
    anne, bruno = ContactFactory(first_name="Anne"), ContactFactory(first_name="Bruno")
    for contact in (anne, bruno):
        grant(contact, offers, "email")
    campaign = campaign_make(offers, steps=[email_step()])
    mail.outbox.clear()
    sent(campaign)
    return campaign, anne, bruno


# --- the API --------------------------------------------------------------------------------


def test_a_delivery_reported_through_the_api_is_counted_on_the_campaign_row(api, two_sent):
    campaign, anne, bruno = two_sent

    response = api().post(
        EVENTS,
        {"email": anne.email, "type": "delivered", "campaign": str(campaign.public_id)},
        format="json",
    )

    assert response.status_code == 201
    assert row(campaign, anne).delivered_at is not None
    assert row(campaign, bruno).delivered_at is None
    stats = campaign_stats(campaign)
    assert (stats["sent"], stats["delivered"]) == (2, 1)
    assert stats["steps"][0]["delivered"] == 1


def test_a_bounced_email_is_targeted_by_the_next_step_for_those_not_reached(api, offers):
    # given a campaign: an email, then a letter to those the email did not reach
    anne, bruno = ContactFactory(), ContactFactory()
    for contact in (anne, bruno):
        grant(contact, offers, "email")
    letter = {"channel": "postal", "body_text_fr": "Lettre", "condition": "previous_not_delivered"}
    campaign = campaign_make(offers, steps=[email_step(), letter])
    sent(campaign)

    # when Anne's email bounces
    api().post(
        EVENTS,
        {"email": anne.email, "type": "hard_bounce", "campaign": str(campaign.public_id)},
        format="json",
    )

    # then her row is bounced, and the second step considers her alone
    assert row(campaign, anne).status == RecipientStatus.BOUNCED
    assert row(campaign, bruno).status == RecipientStatus.SENT
    advanced(campaign)
    assert set(campaign.steps.get(position=2).recipients.values_list("contact", flat=True)) == {
        anne.pk
    }
    assert campaign_stats(campaign)["steps"][0]["bounced"] == 1


def test_a_delivery_after_a_deferral_means_the_message_reached_the_person(api, two_sent):
    campaign, anne, _bruno = two_sent
    event = {"email": anne.email, "campaign": str(campaign.public_id)}

    api().post(EVENTS, {**event, "type": "soft_bounce"}, format="json")
    assert row(campaign, anne).status == RecipientStatus.BOUNCED
    api().post(EVENTS, {**event, "type": "delivered"}, format="json")

    anne_row = row(campaign, anne)
    assert anne_row.status == RecipientStatus.SENT
    assert anne_row.delivered_at is not None


def test_a_returned_letter_marks_the_postal_row_not_delivered(api, offers):
    contact = ContactFactory(**ADDRESS)
    grant(contact, offers, "postal")
    campaign = campaign_make(offers, steps=[{"channel": "postal", "body_text_fr": "Lettre"}])
    sent(campaign)
    assert row(campaign, contact).status == RecipientStatus.SENT

    response = api().post(
        EVENTS,
        {
            "email": contact.email,
            "type": "returned_mail",
            "reason": "refused",
            "campaign": str(campaign.public_id),
        },
        format="json",
    )

    assert response.status_code == 201
    assert row(campaign, contact).status == RecipientStatus.BOUNCED
    contact.refresh_from_db()
    assert contact.postal_deliverability == "returned"


def test_the_mail_house_s_returned_mail_file_marks_the_campaign_s_letters(tmp_path, offers):
    letters = [ContactFactory(**ADDRESS), ContactFactory(**ADDRESS)]
    for contact in letters:
        grant(contact, offers, "postal")
    campaign = campaign_make(offers, steps=[{"channel": "postal", "body_text_fr": "Lettre"}])
    sent(campaign)
    returned = tmp_path / "retours.csv"
    returned.write_text(f"public_id;reason\n{letters[0].public_id};Refusé\n", encoding="utf-8")
    output = StringIO()

    call_command("returned_mail", str(returned), campaign=str(campaign.public_id), stdout=output)

    assert output.getvalue().splitlines()[-1] == "applied 1, unknown 0, rejected 0"
    assert row(campaign, letters[0]).status == RecipientStatus.BOUNCED
    assert row(campaign, letters[1]).status == RecipientStatus.SENT
    assert campaign_stats(campaign)["bounced"] == 1


def test_a_complaint_is_an_unsubscribe_attributed_to_the_campaign(api, offers, two_sent):
    campaign, anne, _bruno = two_sent

    api().post(
        EVENTS,
        {"email": anne.email, "type": "complaint", "campaign": str(campaign.public_id)},
        format="json",
    )

    anne_row = row(campaign, anne)
    assert anne_row.status == RecipientStatus.COMPLAINED
    assert anne_row.unsubscribed_at is not None
    state = ConsentState.objects.get(contact=anne, purpose=offers, channel="email")
    assert state.status == "withdrawn"
    stats = campaign_stats(campaign)
    assert (stats["complained"], stats["unsubscribed"]) == (1, 1)


def test_an_unknown_campaign_changes_no_row_and_the_contact_all_the_same(api, two_sent):
    campaign, anne, _bruno = two_sent

    for name in ("cmp-42", "8a1c5f7e-0000-4000-8000-000000000000"):
        response = api().post(
            EVENTS, {"email": anne.email, "type": "hard_bounce", "campaign": name}, format="json"
        )
        assert response.status_code == 201

    assert row(campaign, anne).status == RecipientStatus.SENT
    anne.refresh_from_db()
    assert anne.email_deliverability == EmailDeliverability.HARD_BOUNCE


def test_an_sms_stop_is_an_unsubscribe_attributed_to_the_sms_campaign(api, offers, settings):
    settings.SMS_URL = "console://"
    with freeze_time("2026-06-10 10:00:00+00:00"):  # noon in Paris: within the sending hours
        contact = ContactFactory(phone="+33612345678", country="FR")
        grant(contact, offers, "sms")
        campaign = campaign_make(offers, steps=[{"channel": "sms", "sms_text_fr": "Offres"}])
        sent(campaign)
        assert row(campaign, contact).status == RecipientStatus.SENT

        api().post(
            EVENTS,
            {"phone": "06 12 34 56 78", "type": "sms_stop", "campaign": str(campaign.public_id)},
            format="json",
        )

    assert row(campaign, contact).unsubscribed_at is not None
    assert campaign_stats(campaign)["unsubscribed"] == 1


# --- the ESP's webhook ------------------------------------------------------------------------


def test_the_esp_webhook_finds_the_row_by_the_metadata_the_message_carried(
    client: Client, mailgun, two_sent
):
    campaign, anne, _bruno = two_sent
    anne_row = row(campaign, anne)
    body = mailgun_body(
        {
            "event": "complained",
            "recipient": anne.email,
            "user-variables": {"campaign": str(campaign.public_id), "recipient": str(anne_row.pk)},
        },
        token="tok-row",
    )

    assert post_mailgun(client, body).status_code == 200

    anne_row.refresh_from_db()
    assert anne_row.status == RecipientStatus.COMPLAINED
    assert anne_row.unsubscribed_at is not None


def test_the_row_id_alone_in_the_metadata_is_enough(client: Client, mailgun, two_sent):
    campaign, anne, _bruno = two_sent
    anne_row = row(campaign, anne)
    body = mailgun_body(
        {
            "event": "delivered",
            "recipient": anne.email,
            "user-variables": {"recipient": str(anne_row.pk)},
        },
        token="tok-alone",
    )

    assert post_mailgun(client, body).status_code == 200

    anne_row.refresh_from_db()
    assert anne_row.delivered_at is not None


def test_a_row_id_of_someone_else_is_not_taken_from_the_metadata(client: Client, mailgun, two_sent):
    campaign, anne, bruno = two_sent
    body = mailgun_body(
        {
            "event": "delivered",
            "recipient": anne.email,
            "user-variables": {
                "campaign": str(campaign.public_id),
                "recipient": str(row(campaign, bruno).pk),
            },
        },
        token="tok-other",
    )

    assert post_mailgun(client, body).status_code == 200

    assert row(campaign, bruno).delivered_at is None
    assert row(campaign, anne).delivered_at is not None  # hers, found by the campaign


# --- unsubscribes through the campaign message's links ------------------------------------------


def test_a_one_click_unsubscribe_from_the_message_is_attributed_to_its_campaign(
    client: Client, two_sent
):
    campaign, anne, bruno = two_sent
    token = unsubscribe_token(anne)
    assert row(campaign, anne).preference_token.digest == token_hash(token)

    response = client.post(f"/u/{token}/", ONE_CLICK, **MAIL_PROVIDER)

    assert response.status_code == 200
    first = row(campaign, anne).unsubscribed_at
    assert first is not None
    assert row(campaign, bruno).unsubscribed_at is None
    assert campaign_stats(campaign)["unsubscribed"] == 1
    # a second click changes nothing, the first time stays
    client.post(f"/u/{token}/", ONE_CLICK, **MAIL_PROVIDER)
    assert row(campaign, anne).unsubscribed_at == first


def test_an_unsubscribe_through_another_link_is_not_attributed(client: Client, two_sent):
    from preferences.services import preference_token_issue

    campaign, anne, _bruno = two_sent
    token = preference_token_issue(contact=anne)  # the link of the admin's "send the link"

    assert client.post(f"/u/{token}/", ONE_CLICK, **MAIL_PROVIDER).status_code == 200

    assert row(campaign, anne).unsubscribed_at is None


def test_withdrawing_the_campaign_s_purpose_in_the_center_is_attributed(client: Client, two_sent):
    campaign, anne, _bruno = two_sent
    token = unsubscribe_token(anne)  # the message's links share their token

    response = save_consents(client, token, untick=["offers:email"])

    assert response.status_code == 303
    assert row(campaign, anne).unsubscribed_at is not None


def test_a_change_in_the_center_that_withdraws_nothing_is_not_attributed(client: Client, two_sent):
    campaign, anne, _bruno = two_sent
    other = PurposeFactory(slug="events", channels=["email"])
    grant(anne, other, "email")
    token = unsubscribe_token(anne)

    assert post_form(client, token, "frequency", frequency="monthly").status_code == 303
    assert save_consents(client, token, untick=["events:email"]).status_code == 303

    assert row(campaign, anne).unsubscribed_at is None  # another purpose withdrawn


def test_unsubscribing_from_everything_in_the_center_is_attributed(client: Client, two_sent):
    campaign, anne, _bruno = two_sent
    token = unsubscribe_token(anne)

    response = client.post(center_path(token), {"form": "unsubscribe"}, **BROWSER)

    assert response.status_code == 303
    assert row(campaign, anne).unsubscribed_at is not None
