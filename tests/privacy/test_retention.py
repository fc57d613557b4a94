"""Retention (GDPR Art. 5(1)(e); CNIL: three years after the last contact).

People silent past their retention period get one email asking whether they want to stay;
those who answer "Keep me subscribed" stay, those who stay silent through the grace period
are erased through the one erasure path. Every run is idempotent, also concurrently.
"""

import re
from datetime import datetime, timedelta
from email.message import Message
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import transaction
from django.test import Client
from freezegun import freeze_time

from consent.ledger import ledger_seal, ledger_verify
from consent.models import ConsentRecord, Purpose
from contacts.models import Contact
from contacts.selectors import suppression_reason
from contacts.services import contact_touch, suppression_add
from crmsync.models import OutboxEvent
from preferences.services import preference_token_issue
from privacy.services import retention_apply
from privacy.tasks import apply_retention
from tests.conftest import Mailbox, message_text
from tests.consent.concurrency import run_concurrently
from tests.factories import ContactFactory, PurposeFactory, grant
from tests.preferences.conftest import (
    BROWSER,
    center_path,
    page_text,
    post_form,
    read_page,
    unsubscribe_path,
)

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2029, 6, 1, 3, 0, tzinfo=PARIS)  # the nightly run
SILENT_SINCE = NOW - relativedelta(years=3, days=1)


def contact_active_at(moment: datetime, **kwargs: object) -> Contact:
    """A contact whose last activity (and creation) was at `moment`."""
    with freeze_time(moment):
        contact = ContactFactory(language="en", **kwargs)
        contact_touch(contact=contact)
    return contact


def run_at(moment: datetime) -> tuple[int, int]:
    """One run of the nightly job at `moment`: (emails sent, contacts anonymised)."""
    with freeze_time(moment):
        return retention_apply()


def preference_path(message: Message) -> str:
    """The path of the preference link in the email's plain-text body."""
    found = re.search(re.escape(settings.SITE_URL) + r"/p/[^/\s]+/", message_text(message))
    assert found, message_text(message)
    return urlsplit(found.group(0)).path


def token_of(message: Message) -> str:
    return preference_path(message).strip("/").split("/")[-1]


def reload(contact: Contact) -> Contact:
    return Contact.objects.get(pk=contact.pk)


def asked(contact: Contact, mailbox: Mailbox) -> Message:
    """Run the job when the contact is past its period: the one email it received."""
    assert run_at(NOW) == (1, 0)
    [message] = [m for m in mailbox.messages if m["To"] == contact.email]
    return message


# --- asking ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_inactive_contact_gets_one_repermission_email_with_a_working_link(
    mailbox: Mailbox, client: Client
) -> None:
    # given someone silent for three years and a day
    ines = contact_active_at(SILENT_SINCE, email="ines.moreau@example.fr", first_name="Inès")

    # when the nightly job runs
    sent, erased = run_at(NOW)

    # then one email asks whether they want to stay, with the deadline to answer
    assert (sent, erased) == (1, 0)
    [message] = mailbox.messages
    assert message["To"] == "ines.moreau@example.fr"
    assert message["Subject"] == "Do you still want to hear from us?"
    text = message_text(message)
    assert "Hello Inès," in text
    assert "Keep me subscribed" in text
    assert "July 1, 2029" in text  # thirty days of grace
    token = token_of(message)
    unfolded = "".join(message["List-Unsubscribe"].split())  # a long header may be folded
    assert unfolded == f"<{settings.SITE_URL}{unsubscribe_path(token)}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    ines = reload(ines)
    assert ines.repermission_sent_at == NOW
    assert ines.status == "active"
    assert ines.timeline.filter(kind="repermission_sent").count() == 1

    # and its link opens the preference center with the "Keep me subscribed" button
    with freeze_time(NOW + timedelta(days=2)):
        page = client.get(preference_path(message) + "?lang=en", **BROWSER)
    assert page.status_code == 200
    assert "ines.moreau@example.fr" in page_text(page)
    assert "Keep me subscribed" in page_text(page)
    forms = [(tag.get("name"), tag.get("value")) for tag in read_page(page).inputs]
    assert ("form", "keep") in forms


@pytest.mark.django_db
def test_a_contact_never_active_counts_from_its_creation(mailbox: Mailbox) -> None:
    with freeze_time(SILENT_SINCE):
        contact = ContactFactory(language="en")
    assert contact.last_activity_at is None

    assert run_at(NOW) == (1, 0)
    assert [m["To"] for m in mailbox.messages] == [contact.email]


@pytest.mark.django_db
def test_a_paused_contact_is_asked_too_but_never_an_erased_one(mailbox: Mailbox) -> None:
    paused = contact_active_at(SILENT_SINCE, status="paused")
    contact_active_at(SILENT_SINCE, status="erased")

    assert run_at(NOW) == (1, 0)
    assert [m["To"] for m in mailbox.messages] == [paused.email]


@pytest.mark.django_db
def test_a_contact_consenting_to_a_purpose_kept_longer_is_not_asked_yet(mailbox: Mailbox) -> None:
    # given a consent to a purpose whose data is kept five years, given three years ago
    archives = PurposeFactory(slug="archives", retention_days=5 * 365)
    contact = ContactFactory(language="en")
    with freeze_time(SILENT_SINCE):
        grant(contact, archives)

    # when the job runs now, then five years after that consent
    now = run_at(NOW)
    later = run_at(SILENT_SINCE + timedelta(days=5 * 365 + 1))

    # then they are asked only once the longest retention period is over
    assert now == (0, 0)
    assert later == (1, 0)
    assert [m["To"] for m in mailbox.messages] == [contact.email]


@pytest.mark.django_db
def test_a_purpose_with_no_retention_of_its_own_keeps_the_default(mailbox: Mailbox) -> None:
    newsletter = PurposeFactory(slug="newsletter", retention_days=None)
    contact = ContactFactory(language="en")
    with freeze_time(SILENT_SINCE):
        grant(contact, newsletter)

    assert run_at(NOW) == (1, 0)


@pytest.mark.django_db
def test_recently_active_contacts_are_not_asked(mailbox: Mailbox) -> None:
    # given one active last year, one active just inside the period
    contact_active_at(NOW - relativedelta(years=1))
    contact_active_at(NOW - settings.RETENTION_DEFAULT + timedelta(hours=1))
    # and one created long ago but active since
    old = contact_active_at(NOW - relativedelta(years=6))
    with freeze_time(NOW - relativedelta(months=2)):
        contact_touch(contact=old)

    assert run_at(NOW) == (0, 0)
    assert mailbox.messages == []
    assert not Contact.objects.exclude(repermission_sent_at=None).exists()


@pytest.mark.django_db
def test_running_the_job_twice_sends_one_email(mailbox: Mailbox) -> None:
    contact = contact_active_at(SILENT_SINCE)

    first = run_at(NOW)
    second = run_at(NOW)
    next_night = run_at(NOW + timedelta(days=1))

    assert (first, second, next_night) == ((1, 0), (0, 0), (0, 0))
    assert [m["To"] for m in mailbox.messages] == [contact.email]
    assert reload(contact).timeline.filter(kind="repermission_sent").count() == 1


@pytest.mark.postgres
def test_two_runs_at_the_same_time_send_one_email_each(
    transactional_db: None, mailbox: Mailbox
) -> None:
    # given three silent people
    contacts = [contact_active_at(SILENT_SINCE) for _ in range(3)]

    # when two workers run the job at the same moment
    with freeze_time(NOW):
        results = run_concurrently(retention_apply, times=2)

    # then each person got exactly one email
    assert sum(sent for sent, _erased in results) == 3
    assert sorted(m["To"] for m in mailbox.messages) == sorted(c.email for c in contacts)
    for contact in contacts:
        assert reload(contact).timeline.filter(kind="repermission_sent").count() == 1


# --- the answer -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_keep_me_subscribed_prevents_the_anonymisation(mailbox: Mailbox, client: Client) -> None:
    # given someone asked whether they want to stay
    contact = contact_active_at(SILENT_SINCE)
    message = asked(contact, mailbox)
    answered_at = NOW + timedelta(days=5)

    # when they answer "Keep me subscribed" from the emailed link
    with freeze_time(answered_at):
        response = post_form(client, token_of(message), "keep", lang="en")
        after = client.get(center_path(token_of(message), lang="en"), **BROWSER)

    # then they are kept: the answer counts as activity, the banner is gone
    assert response.status_code == 303
    assert "done=keep" in response["Location"]
    contact = reload(contact)
    assert contact.last_activity_at == answered_at
    assert contact.timeline.filter(kind="kept").count() == 1
    assert "Keep me subscribed" not in page_text(after)

    # and past the grace period nothing happens to them
    assert run_at(NOW + settings.RETENTION_GRACE + timedelta(days=1)) == (0, 0)
    contact = reload(contact)
    assert contact.status == "active"
    assert contact.email != "" and not contact.email.endswith("@erased.invalid")

    # until their new period of silence is over: then they are asked again
    assert run_at(answered_at + settings.RETENTION_DEFAULT + timedelta(days=1)) == (1, 0)


@pytest.mark.django_db
def test_silence_past_the_grace_period_erases_the_contact_exactly_once(
    mailbox: Mailbox, client: Client
) -> None:
    # given someone asked, with a consent on record, who never answers
    newsletter = PurposeFactory(slug="newsletter")
    contact = ContactFactory(language="en", email="ines.moreau@example.fr")
    with freeze_time(SILENT_SINCE):
        grant(contact, newsletter)
    message = asked(contact, mailbox)

    # when the job runs during, then past, the grace period, and once more
    during = run_at(NOW + settings.RETENTION_GRACE - timedelta(days=1))
    past = run_at(NOW + settings.RETENTION_GRACE + timedelta(days=1))
    again = run_at(NOW + settings.RETENTION_GRACE + timedelta(days=2))

    # then they were erased once, through the one erasure path
    assert (during, past, again) == ((0, 0), (0, 1), (0, 0))
    contact = reload(contact)
    assert contact.status == "erased"
    assert contact.email == f"erased-{contact.public_id}@erased.invalid"
    assert suppression_reason(kind="email", value="ines.moreau@example.fr") == "erased"
    assert list(contact.timeline.values_list("kind", "summary")) == [("erased", "retention")]
    assert OutboxEvent.objects.filter(topic="contact.erased").count() == 1
    assert ConsentRecord.objects.filter(contact=contact, action="withdraw").count() == 1
    ledger_seal()  # as the beat job does every minute: these records are old
    assert ledger_verify() == []
    # and the emailed link is dead
    assert client.get(preference_path(message), **BROWSER).status_code == 404
    assert len(mailbox.messages) == 1


@pytest.mark.postgres
def test_two_runs_at_the_same_time_erase_a_silent_contact_once(
    transactional_db: None, mailbox: Mailbox
) -> None:
    # given a silent contact asked more than the grace period ago
    with transaction.atomic():
        newsletter: Purpose = PurposeFactory(slug="newsletter")
        contact = ContactFactory(language="en")
        with freeze_time(SILENT_SINCE):
            grant(contact, newsletter)
    assert run_at(NOW) == (1, 0)

    # when two workers run the job at the same moment
    with freeze_time(NOW + settings.RETENTION_GRACE + timedelta(days=1)):
        results = run_concurrently(retention_apply, times=2)

    # then the contact was erased once
    assert sorted(results) == [(0, 0), (0, 1)]
    assert reload(contact).status == "erased"
    assert OutboxEvent.objects.filter(topic="contact.erased").count() == 1
    assert ConsentRecord.objects.filter(contact=contact, action="withdraw").count() == 1
    ledger_seal()  # as the beat job does every minute: these records are old
    assert ledger_verify() == []


# --- the job --------------------------------------------------------------------------------


def test_retention_runs_every_night_on_beat() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["apply-retention"]

    assert entry["task"] == "preferences.tasks.apply_retention"
    assert apply_retention.name == "preferences.tasks.apply_retention"


@pytest.mark.django_db
def test_the_retention_task_runs_the_job(mailbox: Mailbox) -> None:
    contact_active_at(SILENT_SINCE)

    with freeze_time(NOW):
        result = apply_retention.apply()

    assert result.successful() and result.get() == [1, 0]
    assert len(mailbox.messages) == 1


# --- who is asked, and who is kept as is ------------------------------------------------------


@pytest.mark.django_db
def test_a_restricted_contact_is_neither_asked_nor_erased(mailbox: Mailbox) -> None:
    # given someone silent for years whose processing is restricted (GDPR Art. 18)
    restricted = contact_active_at(SILENT_SINCE, processing_restricted_at=SILENT_SINCE)

    # when the job runs, and again long after the grace period
    first = run_at(NOW)
    later = run_at(NOW + settings.RETENTION_GRACE + timedelta(days=1))

    # then their data is kept as it is until the restriction is lifted
    assert (first, later) == ((0, 0), (0, 0))
    assert mailbox.messages == []
    assert reload(restricted).status == "active"


@pytest.mark.django_db
@pytest.mark.parametrize("unreachable", ["unsubscribed", "bounced"])
def test_an_unreachable_contact_is_not_emailed_but_still_anonymised_after_the_grace_period(
    mailbox: Mailbox, unreachable: str
) -> None:
    # given someone silent for years who unsubscribed from everything, or whose address bounces
    contact = contact_active_at(SILENT_SINCE, email="gone@example.fr")
    if unreachable == "unsubscribed":
        suppression_add(reason="global_unsubscribe", email="gone@example.fr")
    else:
        Contact.objects.filter(pk=contact.pk).update(email_deliverability="hard_bounce")

    # when the job runs, then past the grace period
    first = run_at(NOW)
    later = run_at(NOW + settings.RETENTION_GRACE + timedelta(days=1))

    # then no email goes to them, and their data is not kept beyond the grace period
    assert (first, later) == ((1, 0), (0, 1))
    assert mailbox.messages == []
    assert reload(contact).status == "erased"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("form", "data"),
    [
        ("pause", {"months": "3"}),
        ("frequency", {"frequency": "monthly"}),
        ("identity", {"first_name": "Inès", "last_name": "Moreau", "language": "fr"}),
    ],
)
def test_any_change_the_person_makes_in_the_center_restarts_their_retention(
    mailbox: Mailbox, client: Client, form: str, data: dict[str, str]
) -> None:
    # given someone silent for three years who, the day before the run, uses the center
    contact = contact_active_at(SILENT_SINCE, email="ines.moreau@example.fr")
    with freeze_time(SILENT_SINCE):
        token = preference_token_issue(contact=contact)
    with freeze_time(NOW - timedelta(days=1)):
        assert post_form(client, token, form, **data).status_code == 303

    # when the nightly job runs
    # then they are not asked: they were active yesterday
    assert run_at(NOW) == (0, 0)
    assert mailbox.messages == []
