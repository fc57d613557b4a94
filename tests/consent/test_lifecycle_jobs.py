"""The beat jobs: end pauses, remind the DPO of deadlines, carry out and purge privacy requests.

Every job must have the effect of one run when beat fires it twice, or when two workers run
it at the same time on PostgreSQL.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from io import StringIO
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import translation
from django.utils.translation import gettext as _
from freezegun import freeze_time

from config.celery import app
from consent.tasks import end_pauses, expire_pending_grants
from contacts.models import Contact, TimelineEvent
from contacts.services import contact_pause, pauses_end
from core.management.commands.setup_roles import DPO
from core.models import JobRun
from privacy.models import PrivacyRequest
from privacy.services import (
    deadline_reminders_send,
    privacy_request_carry_out,
    privacy_request_file,
    privacy_request_transition,
)
from privacy.tasks import (
    carry_out_pending_privacy_requests,
    carry_out_privacy_request,
    purge_privacy_exports,
    send_deadline_reminders,
)
from tests.conftest import Mailbox, message_text
from tests.consent.concurrency import run_concurrently
from tests.factories import ContactFactory, PurposeFactory, UserFactory, grant

PARIS = ZoneInfo("Europe/Paris")
# 08:00 in Paris, when beat sends the reminders
NOW = datetime(2026, 3, 20, 8, 0, tzinfo=PARIS)


def paused_at(moment: str, months: int = 1, **fields: Any) -> Contact:
    with freeze_time(moment):
        return contact_pause(contact=ContactFactory(**fields), months=months, source="center")


def resumed_events(contact: Contact) -> int:
    return TimelineEvent.objects.filter(contact=contact, kind="resumed").count()


# --- end pauses -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_only_pauses_that_are_over_are_ended() -> None:
    # given
    over = paused_at("2026-01-10T09:00:00+01:00")  # until 10 February
    running = paused_at("2026-01-20T09:00:00+01:00")  # until 20 February
    active = ContactFactory()

    # when
    with freeze_time("2026-02-15T09:00:00+01:00"):
        resumed = pauses_end()

    # then
    assert resumed == 1
    over.refresh_from_db()
    running.refresh_from_db()
    active.refresh_from_db()
    assert (over.status, over.paused_until) == ("active", None)
    assert (running.status, running.paused_until) == (
        "paused",
        datetime(2026, 2, 20, 9, tzinfo=PARIS),
    )
    assert active.status == "active"
    event = TimelineEvent.objects.get(contact=over, kind="resumed")
    assert event.data["source"] == "end_pauses"
    assert (resumed_events(running), resumed_events(active)) == (0, 0)


@pytest.mark.django_db
def test_a_pause_ends_at_its_last_minute_not_before() -> None:
    contact = paused_at("2026-01-10T09:00:00+01:00")

    with freeze_time("2026-02-10T08:59:00+01:00"):
        before = pauses_end()
    with freeze_time("2026-02-10T09:00:00+01:00"):
        at_the_end = pauses_end()

    assert (before, at_the_end) == (0, 1)
    contact.refresh_from_db()
    assert contact.status == "active"


@pytest.mark.django_db
def test_ending_pauses_twice_ends_each_once() -> None:
    # given
    contacts = [paused_at("2026-01-10T09:00:00+01:00") for _ in range(3)]

    # when
    with freeze_time("2026-02-15T09:00:00+01:00"):
        first, second = pauses_end(), pauses_end()

    # then
    assert (first, second) == (3, 0)
    assert [resumed_events(contact) for contact in contacts] == [1, 1, 1]


@pytest.mark.django_db
def test_ending_pauses_goes_through_every_batch() -> None:
    contacts = [paused_at("2026-01-10T09:00:00+01:00") for _ in range(5)]

    with freeze_time("2026-02-15T09:00:00+01:00"):
        resumed = pauses_end(batch_size=2)

    assert resumed == 5
    assert set(Contact.objects.filter(pk__in=[c.pk for c in contacts]).values_list("status")) == {
        ("active",)
    }


@pytest.mark.postgres
def test_two_runs_at_the_same_time_end_each_pause_once(transactional_db: None) -> None:
    # given
    until = datetime(2026, 2, 10, 9, tzinfo=PARIS)
    contacts = [ContactFactory(status="paused", paused_until=until) for _ in range(8)]

    # when
    counts = run_concurrently(lambda: pauses_end(now=until + timedelta(days=1)), times=2)

    # then
    assert sum(counts) == 8
    assert [resumed_events(contact) for contact in contacts] == [1] * 8
    assert set(Contact.objects.values_list("status", flat=True)) == {"active"}


# --- deadline reminders -----------------------------------------------------------------------


def file_at(moment: str, contact: Contact | None = None, **kwargs: Any) -> PrivacyRequest:
    with freeze_time(moment):
        return privacy_request_file(
            contact=contact or ContactFactory(),
            type=kwargs.pop("type", "access"),
            source_kind="api",
            **kwargs,
        )


@pytest.fixture
def dpo_team(db: None) -> list[str]:
    """The DPO group with two reachable members, one without an email, one who left; and a
    marketer outside the group. Answers the addresses that must receive the reminders."""
    call_command("setup_roles", stdout=StringIO())
    group = Group.objects.get(name=DPO)
    for username, email, active in (
        ("dpo-anne", "anne@staff.example.fr", True),
        ("dpo-bruno", "bruno@staff.example.fr", True),
        ("dpo-noemail", "", True),
        ("dpo-left", "left@staff.example.fr", False),
    ):
        UserFactory(username=username, email=email, is_active=active).groups.add(group)
    UserFactory(username="marketer", email="marketer@staff.example.fr")
    return ["anne@staff.example.fr", "bruno@staff.example.fr"]


@pytest.fixture
def deadlines(db: None) -> dict[str, PrivacyRequest]:
    """Open requests late, due within 7 days, and due later; a late one already closed."""
    late = file_at("2026-02-10T10:00:00+01:00", type="erasure")  # due 10 March
    soon = file_at("2026-02-24T10:00:00+01:00", type="portability")  # due 24 March
    later = file_at("2026-03-05T10:00:00+01:00", type="access")  # due 5 April
    closed = file_at("2026-02-01T10:00:00+01:00", type="rectification", verified=True)
    privacy_request_transition(request=closed, status="completed", by="dpo", note="done")
    return {"late": late, "soon": soon, "later": later, "closed": closed}


@pytest.mark.django_db
def test_the_dpo_group_receives_the_late_and_soon_due_requests(
    dpo_team: list[str], deadlines: dict[str, PrivacyRequest], mailbox: Mailbox
) -> None:
    # when
    with freeze_time(NOW):
        sent = deadline_reminders_send()

    # then
    assert sent is True
    [message] = mailbox.messages
    assert sorted(address.strip() for address in message["To"].split(",")) == dpo_team
    # in the site's language, whoever triggered the job
    with translation.override(settings.LANGUAGE_CODE):
        subject = _("Privacy requests: %(late)s late, %(due)s due within 7 days")
        late_marker = _("LATE")
    assert str(make_header(decode_header(message["Subject"]))) == subject % {"late": 1, "due": 1}
    body = message_text(message)
    entries = {
        name: entry
        for entry in body.split("\n- ")[1:]
        for name, request in deadlines.items()
        if str(request.pk) in entry
    }
    assert set(entries) == {"late", "soon"}  # not the later one, nor the closed one
    assert entries["late"].startswith(f"{late_marker} ")
    assert not entries["soon"].startswith(late_marker)
    for name in ("late", "soon"):
        link = f"{settings.SITE_URL}/admin/privacy/privacyrequest/{deadlines[name].pk}/change/"
        assert link in entries[name]


@pytest.mark.django_db
def test_reminders_are_sent_once_a_day_and_again_the_next_day(
    dpo_team: list[str], deadlines: dict[str, PrivacyRequest], mailbox: Mailbox
) -> None:
    # when beat fires twice the same day
    with freeze_time(NOW):
        first = deadline_reminders_send()
    with freeze_time(NOW + timedelta(hours=6)):
        second = deadline_reminders_send()

    # then one email
    assert (first, second) == (True, False)
    assert len(mailbox.messages) == 1

    # when the next day comes
    with freeze_time(NOW + timedelta(days=1)):
        next_day = deadline_reminders_send()

    # then a new one
    assert next_day is True
    assert len(mailbox.messages) == 2
    assert JobRun.objects.filter(job="privacy-deadline-reminders").count() == 2


@pytest.mark.django_db
def test_the_day_of_a_reminder_is_the_day_in_paris(
    dpo_team: list[str], deadlines: dict[str, PrivacyRequest], mailbox: Mailbox
) -> None:
    # 23:30 UTC on 20 March is already 21 March in Paris: another day, another reminder
    deadline_reminders_send(now=datetime(2026, 3, 20, 8, 0, tzinfo=UTC))
    deadline_reminders_send(now=datetime(2026, 3, 20, 23, 30, tzinfo=UTC))

    assert len(mailbox.messages) == 2
    assert set(JobRun.objects.values_list("key", flat=True)) == {"2026-03-20", "2026-03-21"}


@pytest.mark.django_db
def test_no_email_when_nothing_is_late_or_due_soon(dpo_team: list[str], mailbox: Mailbox) -> None:
    file_at("2026-03-05T10:00:00+01:00")  # due 5 April

    with freeze_time(NOW):
        sent = deadline_reminders_send()

    assert sent is False
    assert mailbox.messages == []


@pytest.mark.postgres
def test_two_reminder_runs_at_the_same_time_send_one_email(
    transactional_db: None, mailbox: Mailbox
) -> None:
    # given (the fixtures are function-scoped on `db`; build the same state committed)
    call_command("setup_roles", stdout=StringIO())
    UserFactory(username="dpo-anne", email="anne@staff.example.fr").groups.add(
        Group.objects.get(name=DPO)
    )
    file_at("2026-02-10T10:00:00+01:00")  # late

    # when
    sent = run_concurrently(lambda: deadline_reminders_send(now=NOW), times=2)

    # then
    assert sorted(sent) == [False, True]
    assert len(mailbox.messages) == 1
    assert JobRun.objects.count() == 1


# --- the beat schedule and the tasks ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("end-pauses", "consent.tasks.end_pauses"),
        ("expire-pending-double-opt-ins", "consent.tasks.expire_pending_grants"),
        ("privacy-deadline-reminders", "consent.tasks.send_deadline_reminders"),
        ("carry-out-pending-privacy-requests", "consent.tasks.carry_out_pending_privacy_requests"),
        ("purge-privacy-exports", "consent.tasks.purge_privacy_exports"),
        ("purge-idempotency-keys", "core.tasks.purge_idempotency_keys"),
    ],
)
def test_beat_runs_each_lifecycle_job(name: str, task: str) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE[name]
    app.loader.import_default_modules()  # what a starting worker does: autodiscover the tasks

    assert entry["task"] == task
    assert task in app.tasks


def test_the_reminders_go_out_once_a_day() -> None:
    schedule = settings.CELERY_BEAT_SCHEDULE["privacy-deadline-reminders"]["schedule"]

    assert isinstance(schedule, crontab)
    assert len(schedule.hour) == 1 and len(schedule.minute) == 1
    assert len(schedule.day_of_week) == 7


@pytest.fixture
def no_export_left_behind(db: None) -> Iterator[None]:
    yield
    for request in PrivacyRequest.objects.all():
        for export in (request.export_json, request.export_archive):
            if export:
                export.delete(save=False)


@pytest.mark.django_db
@pytest.mark.usefixtures("no_export_left_behind")
def test_the_carry_out_task_carries_out_a_request_once() -> None:
    contact = ContactFactory()
    request = privacy_request_file(
        contact=contact, type="restriction", source_kind="api", verified=True
    )

    first = carry_out_privacy_request.apply(args=[str(request.id)])
    second = carry_out_privacy_request.apply(args=[str(request.id)])

    assert (first.get(), second.get()) == (True, False)
    request.refresh_from_db()
    assert request.status == "completed"
    contact.refresh_from_db()
    assert contact.processing_restricted_at is not None


@pytest.mark.django_db
@pytest.mark.usefixtures("no_export_left_behind")
def test_the_pending_task_and_the_purge_task_call_their_services() -> None:
    # given
    with freeze_time(NOW):
        for _ in range(2):
            privacy_request_file(
                contact=ContactFactory(), type="access", source_kind="api", verified=True
            )
        carried_out = carry_out_pending_privacy_requests.apply()

    # when the exports' availability is over
    with freeze_time(NOW + settings.PRIVACY_EXPORT_TTL + timedelta(minutes=1)):
        purged = purge_privacy_exports.apply()

    # then
    assert (carried_out.get(), purged.get()) == (2, 2)
    assert set(PrivacyRequest.objects.values_list("status", "export_json")) == {("completed", "")}


@pytest.mark.django_db
def test_the_end_pauses_task_resumes_contacts() -> None:
    contact = paused_at("2026-01-10T09:00:00+01:00")

    with freeze_time("2026-02-15T09:00:00+01:00"):
        result = end_pauses.apply()

    assert result.get() == 1
    contact.refresh_from_db()
    assert contact.status == "active"


@pytest.mark.django_db
def test_the_reminder_task_emails_the_dpo(
    dpo_team: list[str], deadlines: dict[str, PrivacyRequest], mailbox: Mailbox
) -> None:
    with freeze_time(NOW):
        first = send_deadline_reminders.apply()
        second = send_deadline_reminders.apply()

    assert (first.get(), second.get()) == (True, False)
    assert len(mailbox.messages) == 1


@pytest.mark.django_db
def test_the_expiry_task_expires_pending_double_opt_ins() -> None:
    purpose = PurposeFactory(double_opt_in=True)
    with freeze_time("2026-03-01T10:00:00+01:00"):
        grant(ContactFactory(), purpose)

    with freeze_time(datetime(2026, 3, 1, 10, tzinfo=PARIS) + settings.DOUBLE_OPT_IN_TTL * 2):
        result = expire_pending_grants.apply()

    assert result.get() == 1


@pytest.mark.django_db
def test_an_erased_contact_is_not_resumed_by_end_pauses() -> None:
    # given a paused person erased before the end of their pause
    contact = paused_at("2026-01-10T09:00:00+01:00")
    request = privacy_request_file(
        contact=contact, type="erasure", source_kind="api", verified=True
    )
    privacy_request_carry_out(request_id=str(request.id))

    # when
    with freeze_time("2026-02-15T09:00:00+01:00"):
        resumed = pauses_end()

    # then
    assert resumed == 0
    contact.refresh_from_db()
    assert (contact.status, contact.paused_until) == ("erased", None)
