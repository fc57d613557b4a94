"""A campaign's emails: one per person, in their language, personalised, with the links to
their choices that work, the one-click unsubscribe headers, the controller's identity, a
stable Message-ID, the ESP's metadata, and the proof on the recipient row; a refused address
fails its row alone, an unreachable server leaves the batch to its retry."""

import re
import smtplib

import pytest
from django.core import mail
from django.utils.html import escape

from campaigns.models import Recipient, RecipientStatus
from campaigns.sending import campaign_message_id, step_batch_send
from consent.models import LegalBasis, MessageSent
from core.tokens import token_hash
from preferences.models import PreferenceToken
from tests.campaigns.running import campaign_sent_now, campaign_started
from tests.campaigns.smtp_sink import (
    DEFERRED_ADDRESS,
    REFUSED_ADDRESS,
    REJECTED_CONTENT_ADDRESS,
    free_port,
)
from tests.factories import (
    ContactFactory,
    InterestFactory,
    PurposeFactory,
    campaign_make,
    email_step,
    grant,
)

pytestmark = pytest.mark.django_db

SITE = "https://consent.example.fr"


@pytest.fixture(autouse=True)
def public_site(settings) -> None:
    settings.SITE_URL = SITE
    settings.DEFAULT_FROM_EMAIL = "Vélos Martin <news@velos-martin.example>"


@pytest.fixture
def anymail_backend(settings) -> None:
    """anymail's test backend: each message in `mail.outbox` with the params an ESP gets."""
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"


def granted(purpose, **fields):
    contact = ContactFactory(**fields)
    grant(contact, purpose, "email")
    return contact


def html_part(message) -> str:
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return html


def by_address(messages) -> dict:
    return {message.to[0]: message for message in messages}


def token_in(message) -> str:
    return re.search(r"/u/([^/>]+)/", message.extra_headers["List-Unsubscribe"]).group(1)


def test_each_person_gets_one_message_in_their_language_english_falling_back_to_french():
    purpose = PurposeFactory()
    french = granted(purpose, language="fr")
    unknown = granted(purpose, language="")
    english = granted(purpose, language="en")
    translated = email_step(
        subject_fr="Nouveautés", body_text_fr="Bonjour", subject_en="News", body_text_en="Hello"
    )
    mail.outbox.clear()
    campaign_sent_now(campaign_make(purpose, steps=[translated]))

    messages = by_address(mail.outbox)
    assert len(mail.outbox) == 3 and len(messages) == 3
    assert (messages[english.email].subject, messages[english.email].body[:5]) == ("News", "Hello")
    for contact in (french, unknown):
        assert messages[contact.email].subject == "Nouveautés"
        assert messages[contact.email].body.startswith("Bonjour")


def test_english_readers_get_the_french_content_when_the_step_has_no_english():
    purpose = PurposeFactory()
    english = granted(purpose, language="en")
    mail.outbox.clear()
    campaign_sent_now(
        campaign_make(purpose, steps=[email_step(subject_fr="Soldes", body_text_fr="Bonjour")])
    )
    [message] = mail.outbox
    assert message.to == [english.email]
    assert (message.subject, message.body[:7]) == ("Soldes", "Bonjour")
    assert "Manage your preferences" in message.body  # the footer speaks the reader's language


def test_personalisation_is_escaped_in_the_html_and_left_as_written_in_the_text():
    purpose = PurposeFactory()
    contact = granted(purpose, first_name='Zoé <b>"Dupont" & fils</b>', language="en")
    contact.interests.add(
        InterestFactory(slug="velo", name_en="Bikes & <gear>"),
        InterestFactory(slug="rando", name_en="Alps"),
    )
    step = email_step(
        body_text_fr="Bonjour {{ first_name }}\n\nVos sujets : {{ interests }}",
        body_text_en="Hello {{ first_name }}\n\nYour topics: {{ interests }}",
        body_html_en="<html><body><p>Hi {{ first_name }}, {{ interests }}</p></body></html>",
        subject_en="For {{ first_name }}",
    )
    mail.outbox.clear()
    campaign_sent_now(campaign_make(purpose, steps=[step]))

    [message] = mail.outbox
    assert message.subject == 'For Zoé <b>"Dupont" & fils</b>'
    assert message.body.startswith(
        'Hello Zoé <b>"Dupont" & fils</b>\n\nYour topics: Alps, Bikes & <gear>'
    )
    html = html_part(message)
    assert f"<p>Hi {escape(contact.first_name)}, Alps, {escape('Bikes & <gear>')}</p>" in html
    assert "<b>" not in html and "<gear>" not in html


def test_without_html_content_the_html_part_is_the_text_escaped_in_paragraphs():
    purpose = PurposeFactory()
    granted(purpose, first_name="Léa & <Max>")
    step = email_step(body_text_fr="Bonjour {{ first_name }}\n\nPrix < 10 € & port offert")
    mail.outbox.clear()
    campaign_sent_now(campaign_make(purpose, steps=[step]))

    [message] = mail.outbox
    assert message.body.startswith("Bonjour Léa & <Max>\n\nPrix < 10 € & port offert")
    html = html_part(message)
    assert "<p>Bonjour Léa &amp; &lt;Max&gt;</p>" in html
    assert "<p>Prix &lt; 10 € &amp; port offert</p>" in html
    assert "<Max>" not in html


def test_the_one_click_unsubscribe_headers_carry_the_https_link_and_the_mailto(settings):
    settings.LIST_UNSUBSCRIBE_MAILTO = "unsubscribe@velos-martin.example"
    purpose = PurposeFactory()
    granted(purpose)
    mail.outbox.clear()
    campaign_sent_now(campaign_make(purpose))

    [message] = mail.outbox
    token = token_in(message)
    assert message.extra_headers["List-Unsubscribe"] == (
        f"<{SITE}/u/{token}/>, <mailto:unsubscribe@velos-martin.example>"
    )
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    parsed = message.message()
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_without_a_mailto_the_header_has_the_https_link_only():
    purpose = PurposeFactory()
    granted(purpose)
    mail.outbox.clear()
    campaign_sent_now(campaign_make(purpose))
    [message] = mail.outbox
    assert message.extra_headers["List-Unsubscribe"] == f"<{SITE}/u/{token_in(message)}/>"


def test_the_footer_links_to_the_persons_choices_and_names_the_controller(client):
    purpose = PurposeFactory()
    contact = granted(purpose, language="en")
    mail.outbox.clear()
    campaign_sent_now(campaign_make(purpose))

    [message] = mail.outbox
    token = token_in(message)
    for part in (message.body, html_part(message)):
        assert f"{SITE}/p/{token}/" in part
        assert f"{SITE}/u/{token}/" in part
        assert "Vélos Martin SAS" in part
        assert "12 rue des Cyclistes, 69002 Lyon" in part
        assert purpose.name_en in part  # why the person receives it
    row = Recipient.objects.get(contact=contact)
    assert row.preference_token.digest == token_hash(token)
    assert row.preference_token.contact_id == contact.pk
    # the links work for the person
    assert client.get(f"/p/{token}/").status_code == 200
    assert client.get(f"/u/{token}/").status_code == 200


def test_each_person_has_a_link_of_their_own():
    purpose = PurposeFactory()
    for _index in range(3):
        granted(purpose)
    mail.outbox.clear()
    campaign_sent_now(campaign_make(purpose))
    assert len({token_in(message) for message in mail.outbox}) == 3


def test_the_message_id_names_the_row():
    purpose = PurposeFactory()
    first, second = granted(purpose), granted(purpose)
    campaign = campaign_make(purpose)
    mail.outbox.clear()
    campaign_sent_now(campaign)

    rows = {row.contact_id: row for row in Recipient.objects.filter(campaign=campaign)}
    ids = {message.to[0]: message.extra_headers["Message-ID"] for message in mail.outbox}
    for contact in (first, second):
        row = rows[contact.pk]
        assert ids[contact.email] == row.message_id == campaign_message_id(campaign, row)
        assert ids[contact.email].endswith("@velos-martin.example>")
        assert str(campaign.public_id) in ids[contact.email]
    assert ids[first.email] != ids[second.email]


def test_a_message_sent_again_after_a_worker_died_is_the_same_message_with_links_that_work(
    client,
):
    purpose = PurposeFactory()
    contact = granted(purpose)
    campaign = campaign_make(purpose)
    mail.outbox.clear()
    campaign_sent_now(campaign)
    [first_copy] = mail.outbox
    row = Recipient.objects.get(campaign=campaign)

    # given: the row as a worker that died after sending leaves it: claimed, and the
    # transaction marking it sent (its link, its MessageSent) never committed
    Recipient.objects.filter(pk=row.pk).update(
        status=RecipientStatus.SENDING,
        batch="redelivered",
        sent_at=None,
        message_id="",
        preference_token=None,
    )
    PreferenceToken.objects.filter(pk=row.preference_token_id).delete()
    MessageSent.objects.filter(contact=contact).delete()
    mail.outbox.clear()

    # when: its batch task is delivered again
    step_batch_send(step_id=row.step_id, batch="redelivered")

    # then: the same message goes again: same Message-ID, same links
    [second_copy] = mail.outbox
    assert second_copy.to == [contact.email]
    for header in ("Message-ID", "List-Unsubscribe"):
        assert second_copy.extra_headers[header] == first_copy.extra_headers[header]
    # the copy the mailbox keeps, whichever it is, has links that work
    token = token_in(first_copy)
    assert f"/p/{token}/" in first_copy.body
    assert client.get(f"/p/{token}/").status_code == 200
    assert Recipient.objects.get(pk=row.pk).preference_token.digest == token_hash(token)


def test_the_esp_gets_the_campaign_and_the_row_as_metadata(anymail_backend):
    purpose = PurposeFactory()
    contact = granted(purpose)
    campaign = campaign_make(purpose)
    mail.outbox.clear()
    campaign_sent_now(campaign)

    [message] = mail.outbox
    row = Recipient.objects.get(contact=contact)
    expected = {"campaign": str(campaign.public_id), "recipient": str(row.pk)}
    assert message.anymail_test_params["metadata"] == expected
    assert message.metadata == expected


def test_the_row_keeps_the_record_and_basis_that_made_the_message_lawful():
    purpose = PurposeFactory()
    contact = ContactFactory()
    record = grant(contact, purpose, "email")
    campaign = campaign_make(purpose)
    mail.outbox.clear()
    campaign_sent_now(campaign)

    row = Recipient.objects.get(campaign=campaign, contact=contact)
    assert row.status == RecipientStatus.SENT
    assert row.consent_record_id == record.pk
    assert row.legal_basis == LegalBasis.CONSENT
    assert row.sent_at is not None and row.batch == ""
    sent = MessageSent.objects.get(contact=contact)
    assert (sent.purpose_id, sent.channel, sent.sent_at) == (purpose.pk, "email", row.sent_at)


def test_under_legitimate_interests_the_row_names_the_basis_without_a_record():
    purpose = PurposeFactory(legal_basis=LegalBasis.LEGITIMATE_INTERESTS)
    b2b = ContactFactory(b2b=True)
    campaign = campaign_make(purpose)
    mail.outbox.clear()
    campaign_sent_now(campaign)

    row = Recipient.objects.get(campaign=campaign, contact=b2b)
    assert row.status == RecipientStatus.SENT
    assert (row.consent_record_id, row.legal_basis) == (None, LegalBasis.LEGITIMATE_INTERESTS)
    assert [message.to for message in mail.outbox] == [[b2b.email]]


# --- through a real SMTP server ------------------------------------------------------------


def test_an_address_the_server_refuses_fails_its_row_alone_and_the_batch_goes_on(smtp_sink):
    purpose = PurposeFactory()
    before = granted(purpose, email="before@example.fr")
    refused = granted(purpose, email=REFUSED_ADDRESS.capitalize())
    after = granted(purpose, email="after@example.fr")
    campaign = campaign_make(purpose)

    [result] = campaign_sent_now(campaign)

    assert (result.sent, result.failed) == (2, 1)
    assert sorted(message["To"] for message in smtp_sink.received()) == [
        after.email,
        before.email,
    ]
    rows = {row.contact_id: row for row in Recipient.objects.filter(campaign=campaign)}
    assert rows[before.pk].status == rows[after.pk].status == RecipientStatus.SENT
    failed = rows[refused.pk]
    assert failed.status == RecipientStatus.FAILED
    assert "550" in failed.error
    assert REFUSED_ADDRESS not in failed.error.lower()
    assert failed.batch == "" and failed.sent_at is None
    assert not MessageSent.objects.filter(contact=refused).exists()


def test_a_message_the_server_rejects_for_good_after_reading_it_fails_its_row_alone(smtp_sink):
    purpose = PurposeFactory()
    filtered = granted(purpose, email=REJECTED_CONTENT_ADDRESS)
    after = granted(purpose, email="after@example.fr")
    campaign = campaign_make(purpose)

    [result] = campaign_sent_now(campaign)

    assert (result.sent, result.failed) == (1, 1)
    assert [message["To"] for message in smtp_sink.received()] == [after.email]
    row = Recipient.objects.get(campaign=campaign, contact=filtered)
    assert (row.status, row.batch) == (RecipientStatus.FAILED, "")
    assert "554" in row.error and REJECTED_CONTENT_ADDRESS not in row.error


def test_a_message_the_server_defers_leaves_the_batch_to_its_retry(smtp_sink):
    purpose = PurposeFactory()
    granted(purpose, email=DEFERRED_ADDRESS)
    campaign = campaign_make(purpose)
    campaign_started(campaign)

    with pytest.raises(smtplib.SMTPDataError):
        step_batch_send(step_id=campaign.steps.get().pk, batch="task-1")

    row = Recipient.objects.get(campaign=campaign)
    assert (row.status, row.batch, row.error) == (RecipientStatus.SENDING, "task-1", "")


def test_an_unreachable_server_leaves_the_rows_claimed_for_the_retry(settings, smtp_sink):
    purpose = PurposeFactory()
    contacts = [granted(purpose) for _index in range(2)]
    campaign = campaign_make(purpose)
    campaign_started(campaign)
    step = campaign.steps.get()
    working_port = settings.EMAIL_PORT
    settings.EMAIL_PORT = free_port()  # nobody listens there

    with pytest.raises(OSError):
        step_batch_send(step_id=step.pk, batch="task-1")

    rows = Recipient.objects.filter(campaign=campaign)
    assert {(row.status, row.batch) for row in rows} == {(RecipientStatus.SENDING, "task-1")}
    assert not MessageSent.objects.exists()

    # when: the task is retried (same id) once the server answers
    settings.EMAIL_PORT = working_port
    step_batch_send(step_id=step.pk, batch="task-1")
    assert {row.status for row in rows.all()} == {RecipientStatus.SENT}
    assert sorted(message["To"] for message in smtp_sink.received()) == sorted(
        contact.email for contact in contacts
    )
