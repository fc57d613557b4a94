"""The DPO's deadline reminders (GDPR Art. 12(3)): once a day, late and soon-due requests.

The job must have the effect of one run when beat fires it twice, or when two workers run it
at the same time on PostgreSQL.
"""

from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from celery.schedules import crontab
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import translation
from django.utils.translation import gettext as _
from freezegun import freeze_time

from core.management.commands.setup_roles import DPO
from core.models import JobRun
from privacy.models import PrivacyRequest
from privacy.services import deadline_reminders_send, privacy_request_transition
from privacy.tasks import send_deadline_reminders
from tests.conftest import Mailbox, message_text
from tests.consent.concurrency import run_concurrently
from tests.factories import PrivacyRequestFactory, UserFactory

PARIS = ZoneInfo("Europe/Paris")
# 08:00 in Paris, when beat sends the reminders
NOW = datetime(2026, 3, 20, 8, 0, tzinfo=PARIS)


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
    late = PrivacyRequestFactory(at="2026-02-10T10:00:00+01:00", type="erasure")  # due 10 March
    soon = PrivacyRequestFactory(at="2026-02-24T10:00:00+01:00", type="portability")  # due 24 March
    later = PrivacyRequestFactory(at="2026-03-05T10:00:00+01:00", type="access")  # due 5 April
    closed = PrivacyRequestFactory(
        at="2026-02-01T10:00:00+01:00", type="rectification", verified=True
    )
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
    PrivacyRequestFactory(at="2026-03-05T10:00:00+01:00")  # due 5 April

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
    PrivacyRequestFactory(at="2026-02-10T10:00:00+01:00")  # late

    # when
    sent = run_concurrently(lambda: deadline_reminders_send(now=NOW), times=2)

    # then
    assert sorted(sent) == [False, True]
    assert len(mailbox.messages) == 1
    assert JobRun.objects.count() == 1


def test_the_reminders_go_out_once_a_day() -> None:
    schedule = settings.CELERY_BEAT_SCHEDULE["privacy-deadline-reminders"]["schedule"]

    assert isinstance(schedule, crontab)
    assert len(schedule.hour) == 1 and len(schedule.minute) == 1
    assert len(schedule.day_of_week) == 7


@pytest.mark.django_db
def test_the_reminder_task_emails_the_dpo(
    dpo_team: list[str], deadlines: dict[str, PrivacyRequest], mailbox: Mailbox
) -> None:
    with freeze_time(NOW):
        first = send_deadline_reminders.apply()
        second = send_deadline_reminders.apply()

    assert (first.get(), second.get()) == (True, False)
    assert len(mailbox.messages) == 1
