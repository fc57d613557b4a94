import re
from datetime import timedelta
from email.message import Message
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from freezegun import freeze_time

from consent.models import ConsentRecord, ConsentState
from consent.services import (
    Evidence,
    confirmation_token,
    confirmation_token_read,
    consent_confirm,
    double_opt_in_send,
)
from consent.tasks import send_double_opt_in_confirmation
from contacts.models import TimelineEvent
from crmsync.services import push_after_commit
from tests.conftest import message_text
from tests.consent.concurrency import run_concurrently
from tests.factories import ContactFactory, PurposeFactory, grant
from tests.queued import held_back

EAGER = settings.CELERY_TASK_ALWAYS_EAGER


def confirmation_path(message: Message) -> str:
    """The path of the confirmation link in an email's plain-text body."""
    match = re.search(r"https?://\S+/confirm/\S+/", message_text(message))
    assert match, message_text(message)
    return urlsplit(match.group(0)).path


def html_lang(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/html":
            html = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
            return re.search(r'<html lang="([a-z]+)"', html).group(1)
    raise AssertionError("no HTML part")


@pytest.fixture
def newsletter(db):
    return PurposeFactory(slug="newsletter", double_opt_in=True)


@pytest.mark.django_db
def test_grant_on_a_double_opt_in_purpose_stays_pending(newsletter):
    contact = ContactFactory()

    record = grant(contact, newsletter)

    assert record.status == "pending"
    state = ConsentState.objects.get(contact=contact, purpose=newsletter)
    assert state.status == "pending"


@pytest.mark.django_db
def test_paper_form_grant_needs_no_email_confirmation(newsletter, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path
    contact = ContactFactory()
    scan = ContentFile(b"%PDF-1.4 signed form", name="form.pdf")

    record = grant(
        contact,
        newsletter,
        source_kind="paper_form",
        evidence=Evidence(wording="J'accepte.", unticked_by_default=True, document=scan),
    )

    assert record.status == "granted"


@pytest.mark.django_db
def test_confirmation_email_goes_to_the_contact_with_a_confirm_link(newsletter, mailbox):
    contact = ContactFactory(email="camille@example.fr")
    grant(contact, newsletter)

    assert double_opt_in_send(contact_id=contact.id) is True

    [message] = mailbox.messages
    assert message["To"] == "camille@example.fr"
    assert confirmation_path(message).startswith("/confirm/")
    assert TimelineEvent.objects.filter(contact=contact, kind="confirmation_sent").count() == 1


@pytest.mark.django_db
def test_confirmation_email_is_written_in_the_contacts_language(newsletter, mailbox):
    french, english = ContactFactory(language="fr"), ContactFactory(language="en")
    grant(french, newsletter)
    grant(english, newsletter)

    double_opt_in_send(contact_id=french.id)
    double_opt_in_send(contact_id=english.id)

    by_recipient = {message["To"]: message for message in mailbox.messages}
    assert html_lang(by_recipient[french.email]) == "fr"
    assert html_lang(by_recipient[english.email]) == "en"


@pytest.mark.django_db
def test_sending_twice_sends_one_email_for_the_same_pending_grants(newsletter, mailbox):
    contact = ContactFactory()
    grant(contact, newsletter)

    assert double_opt_in_send(contact_id=contact.id) is True
    assert double_opt_in_send(contact_id=contact.id) is False

    assert len(mailbox.messages) == 1


@pytest.mark.django_db
def test_a_new_pending_grant_gets_a_new_email(newsletter, mailbox):
    contact = ContactFactory()
    grant(contact, newsletter)
    double_opt_in_send(contact_id=contact.id)

    grant(contact, newsletter, channel="sms")

    assert double_opt_in_send(contact_id=contact.id) is True
    assert len(mailbox.messages) == 2


@pytest.mark.django_db
def test_nothing_is_sent_when_nothing_is_pending(newsletter, mailbox):
    contact = ContactFactory()
    grant(contact, PurposeFactory())

    assert double_opt_in_send(contact_id=contact.id) is False
    assert mailbox.messages == []


@pytest.mark.django_db
@pytest.mark.skipif(not EAGER, reason="reads mail sent by on_commit tasks: in-process only")
def test_one_email_per_contact_is_sent_after_commit(
    newsletter, mailbox, django_capture_on_commit_callbacks
):
    offers = PurposeFactory(slug="offers", double_opt_in=True)
    first, second = ContactFactory(), ContactFactory()

    with django_capture_on_commit_callbacks(execute=True):
        for contact in (first, second):
            grant(contact, newsletter)
            grant(contact, offers)
            grant(contact, offers, channel="sms")

    assert sorted(message["To"] for message in mailbox.messages) == sorted(
        [first.email, second.email]
    )


@pytest.mark.django_db
def test_a_rolled_back_grant_does_not_stop_later_confirmation_emails(
    newsletter, django_capture_on_commit_callbacks
):
    # given a transaction that queued a confirmation email, then was rolled back
    with pytest.raises(RuntimeError), transaction.atomic():
        grant(ContactFactory(), newsletter)
        raise RuntimeError("the form's other consent failed")

    # when a later transaction records a pending grant
    with django_capture_on_commit_callbacks() as callbacks:
        grant(ContactFactory(), newsletter)

    # then its confirmation email is queued (beside the CRM push)
    assert len([hook for hook in callbacks if hook is not push_after_commit]) == 1


@pytest.mark.django_db
def test_each_committed_transaction_queues_its_own_confirmation_emails(
    newsletter, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        grant(ContactFactory(), newsletter)

    with django_capture_on_commit_callbacks() as callbacks:
        grant(ContactFactory(), newsletter)

    assert len(callbacks) == 1


def test_confirmation_email_is_sent_once_the_grant_is_committed(
    transactional_db, celery_worker, mailbox
):
    # in-process without a broker, by the real worker with one: the same outcome
    newsletter = PurposeFactory(slug="newsletter", double_opt_in=True)
    contact = ContactFactory(email="committed@example.fr")

    grant(contact, newsletter)

    [message] = mailbox.wait(1)
    assert message["To"] == "committed@example.fr"


def test_a_transaction_of_several_pending_grants_sends_one_email_and_a_rolled_back_one_none(
    transactional_db, celery_worker, mailbox
):
    # in-process without a broker, by the real worker with one (in queue order): the same outcome
    newsletter = PurposeFactory(slug="newsletter", double_opt_in=True, channels=["email", "sms"])
    offers = PurposeFactory(slug="offers", double_opt_in=True)
    camille = ContactFactory(email="camille@example.fr")
    hugo = ContactFactory(email="hugo@example.fr")

    # given a grant to Hugo in a transaction that is rolled back
    with pytest.raises(RuntimeError), transaction.atomic():
        grant(hugo, offers)
        raise RuntimeError("the form's other box failed")
    # when one transaction records three pending grants for Camille
    with transaction.atomic():
        pending = [
            grant(camille, newsletter),
            grant(camille, newsletter, channel="sms"),
            grant(camille, offers),
        ]

    # then Camille gets one email announcing all three, and Hugo nothing
    [message] = mailbox.wait(1)
    assert message["To"] == "camille@example.fr"
    [sent] = TimelineEvent.objects.filter(contact=camille, kind="confirmation_sent")
    assert sorted(sent.data["records"]) == sorted(str(record.uuid) for record in pending)

    # and when Hugo's grant is recorded again, in a transaction that commits, he gets his email
    grant(hugo, offers)

    messages = mailbox.wait(2)
    assert [message["To"] for message in messages] == ["camille@example.fr", "hugo@example.fr"]
    assert TimelineEvent.objects.filter(kind="confirmation_sent").count() == 2


@pytest.mark.django_db
def test_following_the_link_shows_a_button_then_confirms_on_post(newsletter, mailbox, client):
    contact = ContactFactory()
    pending = grant(contact, newsletter)
    double_opt_in_send(contact_id=contact.id)
    path = confirmation_path(mailbox.messages[0])

    page = client.get(path)

    assert page.status_code == 200
    assert b'<button type="submit"' in page.content
    assert ConsentState.objects.get(contact=contact).status == "pending"

    confirmed = client.post(path, HTTP_USER_AGENT="Mozilla/5.0 (phone)")

    assert confirmed.status_code == 200
    state = ConsentState.objects.get(contact=contact)
    assert state.status == "granted"
    assert (state.record.action, state.record.source_kind) == ("confirm", "email_confirmation")
    assert state.record.resolves == pending
    assert state.record.personal_evidence.user_agent == "Mozilla/5.0 (phone)"


@pytest.mark.django_db
def test_following_the_link_twice_confirms_once(newsletter, mailbox, client):
    contact = ContactFactory()
    grant(contact, newsletter)
    double_opt_in_send(contact_id=contact.id)
    path = confirmation_path(mailbox.messages[0])

    client.post(path)
    again = client.post(path)

    assert again.status_code == 200
    assert ConsentRecord.objects.filter(contact=contact, action="confirm").count() == 1
    assert b'<button type="submit"' not in client.get(path).content


@pytest.mark.django_db
def test_tampered_link_gets_the_invalid_page(newsletter, mailbox, client):
    contact = ContactFactory()
    grant(contact, newsletter)
    double_opt_in_send(contact_id=contact.id)
    path = confirmation_path(mailbox.messages[0])
    token = path.split("/")[2]
    tampered = path.replace(token, token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))

    for response in (client.get(tampered), client.post(tampered)):
        assert response.status_code == 404
        assert b"<form" not in response.content
    assert ConsentState.objects.get(contact=contact).status == "pending"


@pytest.mark.django_db
def test_expired_link_gets_the_invalid_page(newsletter, mailbox, client):
    contact = ContactFactory()
    with freeze_time("2026-03-02 10:00:00") as frozen:
        grant(contact, newsletter)
        double_opt_in_send(contact_id=contact.id)
        path = confirmation_path(mailbox.messages[0])

        frozen.tick(settings.DOUBLE_OPT_IN_TTL - timedelta(minutes=1))
        assert client.get(path).status_code == 200
        frozen.tick(timedelta(minutes=2))
        response = client.post(path)

    assert response.status_code == 404
    assert ConsentState.objects.get(contact=contact).status == "pending"


@pytest.mark.postgres
def test_two_sends_at_the_same_time_send_one_email(transactional_db, mailbox):
    newsletter = PurposeFactory(slug="newsletter", double_opt_in=True)
    contact = ContactFactory()
    with held_back(send_double_opt_in_confirmation) as queued:
        grant(contact, newsletter)
    assert queued == [(contact.id,)]

    # the queued send run twice at once, as by a retry beside the first run
    sent = run_concurrently(lambda: send_double_opt_in_confirmation(*queued[0]), times=2)

    assert sorted(sent) == [False, True]
    assert len(mailbox.messages) == 1


@pytest.mark.django_db
def test_an_earlier_confirmation_link_confirms_a_newer_pending_grant_for_the_same_purpose():
    # given a person who subscribed twice before clicking the first email's link
    contact = ContactFactory()
    purpose = PurposeFactory(double_opt_in=True)
    first = grant(contact, purpose)
    grant(contact, purpose)
    token = confirmation_token(contact=contact, record_uuids=[str(first.uuid)])

    # when they follow the first link
    linked_contact, uuids = confirmation_token_read(token)
    confirmed = consent_confirm(contact=linked_contact, record_uuids=uuids)

    # then the purpose is granted
    state = ConsentState.objects.get(contact=contact, purpose=purpose, channel="email")
    assert [record.status for record in confirmed] == ["granted"]
    assert state.status == "granted"
