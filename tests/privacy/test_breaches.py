"""The breach register (GDPR Art. 33/34): recording, the 72-hour deadline, the checks on the
decisions, the DPO's reminders at +24 h and +48 h, and the notification of the persons."""

from datetime import datetime, timedelta
from email.header import decode_header, make_header
from io import StringIO
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.mail.backends.base import BaseEmailBackend
from django.core.management import call_command
from django.db import connection
from django.utils import translation
from django.utils.translation import gettext as _
from freezegun import freeze_time

import privacy.breaches as breaches_module
from campaigns.models import Campaign, CampaignKind, CampaignStatus, Recipient, RecipientStatus
from core.emails import email_send
from core.errors import StructuredValidationError
from core.management.commands.setup_roles import DPO
from privacy.breaches import (
    breach_notify_persons,
    breach_record,
    breach_reminders_send,
    breach_update,
)
from privacy.models import Breach, BreachStatus
from privacy.selectors import (
    breach_deadline_in_words,
    breach_persons_told_at,
    breaches_within_deadline,
)
from privacy.tasks import send_breach_reminders
from tests.conftest import Mailbox, message_text
from tests.consent.concurrency import run_concurrently
from tests.factories import BreachFactory, ContactFactory, UserFactory

PARIS = ZoneInfo("Europe/Paris")
# when the DPO became aware of the breach
AWARE = datetime(2026, 3, 20, 10, 0, tzinfo=PARIS)


def details(**changes: Any) -> dict[str, Any]:
    """A complete breach as `breach_record` takes it."""
    return {
        "reference": "Fichier clients envoyé au mauvais prestataire",
        "aware_at": AWARE,
        "nature": "Un export du fichier clients a été envoyé par erreur.",
        "risk": "risk",
        "risk_reasoning": "Emails et achats: hameçonnage crédible.",
        **changes,
    }


def field_errors(error: pytest.ExceptionInfo[ValidationError]) -> dict[str, list[str]]:
    return error.value.message_dict


@pytest.fixture
def dpo_team(db: None) -> list[str]:
    """The DPO group with a reachable member, one without an email, one who left; a marketer.
    Answers who must receive the reminders (with DPO_CONTACT)."""
    call_command("setup_roles", stdout=StringIO())
    group = Group.objects.get(name=DPO)
    for username, email, active in (
        ("dpo-anne", "anne@staff.example.fr", True),
        ("dpo-noemail", "", True),
        ("dpo-left", "left@staff.example.fr", False),
    ):
        UserFactory(username=username, email=email, is_active=active).groups.add(group)
    UserFactory(username="marketer", email="marketer@staff.example.fr")
    return sorted(["anne@staff.example.fr", settings.DPO_CONTACT])


# Recording.


@pytest.mark.django_db
def test_a_breach_is_recorded_with_its_authority_deadline_72_hours_after_awareness() -> None:
    with freeze_time(AWARE + timedelta(hours=2)):
        breach = breach_record(by="dpo-persona", **details(persons_count=1200))

    breach.refresh_from_db()
    assert breach.authority_deadline == datetime(2026, 3, 23, 10, 0, tzinfo=PARIS)
    assert breach.recorded_by == "dpo-persona"
    assert breach.persons_count == 1200
    assert breach.status_at(AWARE + timedelta(hours=2)) == BreachStatus.OPEN


@pytest.mark.django_db
def test_a_new_time_of_awareness_moves_the_deadline() -> None:
    with freeze_time(AWARE + timedelta(hours=2)):
        breach = breach_record(by="dpo-persona", **details())
        breach_update(breach=breach, by="dpo-anne", aware_at=AWARE - timedelta(hours=5))

    breach.refresh_from_db()
    assert breach.authority_deadline == datetime(2026, 3, 23, 5, 0, tzinfo=PARIS)


@pytest.mark.django_db
def test_a_breach_needs_its_reference_nature_risk_and_the_reasoning_behind_it() -> None:
    with pytest.raises(ValidationError) as error:
        breach_record(
            by="dpo-persona", **details(reference=" ", nature="", risk="", risk_reasoning="")
        )

    assert set(field_errors(error)) == {"reference", "nature", "risk", "risk_reasoning"}
    assert not Breach.objects.exists()


@pytest.mark.django_db
def test_the_time_of_awareness_cannot_be_in_the_future() -> None:
    with freeze_time(AWARE - timedelta(hours=1)), pytest.raises(ValidationError) as error:
        breach_record(by="dpo-persona", **details())

    assert set(field_errors(error)) == {"aware_at"}


@pytest.mark.django_db
def test_a_notification_after_the_deadline_needs_the_reasons_for_the_delay() -> None:
    late = AWARE + timedelta(hours=80)

    with freeze_time(late + timedelta(hours=1)):
        with pytest.raises(ValidationError) as error:
            breach_record(by="dpo-persona", **details(authority_notified_at=late))
        breach = breach_record(
            by="dpo-persona",
            **details(
                authority_notified_at=late,
                authority_reference="CNIL-2026-0042",
                delay_reasons="Le prestataire ne nous a prévenus que le 23 mars.",
            ),
        )

    assert list(field_errors(error)) == ["delay_reasons"]
    assert "72-hour" in field_errors(error)["delay_reasons"][0]
    assert breach.status_at(late) == BreachStatus.NOTIFIED


@pytest.mark.django_db
def test_a_notification_within_the_deadline_needs_no_reasons() -> None:
    in_time = AWARE + timedelta(hours=71)

    with freeze_time(in_time):
        breach = breach_record(by="dpo-persona", **details(authority_notified_at=in_time))

    assert breach.status_at(in_time) == BreachStatus.NOTIFIED


@pytest.mark.django_db
def test_only_a_breach_unlikely_to_result_in_a_risk_may_be_left_unnotified() -> None:
    decision = {"not_notified": True, "not_notified_reason": "Données chiffrées, clé intacte."}

    with freeze_time(AWARE + timedelta(hours=3)):
        with pytest.raises(ValidationError) as error:
            breach_record(by="dpo-persona", **details(risk="high", **decision))
        breach = breach_record(by="dpo-persona", **details(risk="none", **decision))

    assert list(field_errors(error)) == ["not_notified"]
    assert breach.status_at(AWARE + timedelta(hours=3)) == BreachStatus.NOT_NOTIFIED


@pytest.mark.django_db
def test_a_decision_not_to_notify_says_why() -> None:
    with freeze_time(AWARE + timedelta(hours=3)), pytest.raises(ValidationError) as error:
        breach_record(by="dpo-persona", **details(risk="none", not_notified=True))

    assert list(field_errors(error)) == ["not_notified_reason"]


@pytest.mark.django_db
def test_a_breach_is_closed_only_once_the_authority_decision_is_taken() -> None:
    with freeze_time(AWARE + timedelta(hours=30)):
        breach = breach_record(by="dpo-persona", **details())
        with pytest.raises(ValidationError) as error:
            breach_update(breach=breach, by="dpo-anne", closed_at=AWARE + timedelta(hours=29))
        breach.refresh_from_db()
        breach_update(
            breach=breach,
            by="dpo-anne",
            authority_notified_at=AWARE + timedelta(hours=20),
            closed_at=AWARE + timedelta(hours=29),
        )

    assert list(field_errors(error)) == ["closed_at"]
    assert breach.status_at(AWARE + timedelta(hours=30)) == BreachStatus.CLOSED


@pytest.mark.django_db
def test_telling_the_persons_needs_the_time_they_were_told() -> None:
    with freeze_time(AWARE + timedelta(hours=3)), pytest.raises(ValidationError) as error:
        breach_record(by="dpo-persona", **details(persons_told=True))

    assert list(field_errors(error)) == ["persons_told_at"]


# The deadline.


@pytest.mark.django_db
def test_the_status_is_late_past_the_deadline_without_a_decision() -> None:
    breach = BreachFactory(aware_at=AWARE - timedelta(hours=80))

    assert breach.status_at(AWARE) == BreachStatus.LATE
    assert breach.status_at(AWARE - timedelta(hours=9)) == BreachStatus.OPEN


@pytest.mark.django_db
def test_the_deadline_reads_in_hours_left_or_hours_late() -> None:
    breach = BreachFactory(aware_at=AWARE - timedelta(hours=58, minutes=30))
    notified = BreachFactory(
        aware_at=AWARE - timedelta(hours=5), authority_notified_at=AWARE - timedelta(hours=1)
    )

    with translation.override("en"):
        assert breach_deadline_in_words(breach=breach, now=AWARE) == "in 13 h"
        assert breach_deadline_in_words(breach=breach, now=AWARE + timedelta(hours=17)) == (
            "late by 3 h"
        )
        assert breach_deadline_in_words(breach=breach, now=AWARE + timedelta(hours=13)) == (
            "in 30 min"
        )
        assert breach_deadline_in_words(breach=notified, now=AWARE) == ""


@pytest.mark.django_db
def test_the_breaches_within_deadline_are_the_pending_ones_earliest_deadline_first() -> None:
    late = BreachFactory(aware_at=AWARE - timedelta(hours=75))
    fresh = BreachFactory(aware_at=AWARE - timedelta(hours=2))
    older = BreachFactory(aware_at=AWARE - timedelta(hours=60))
    BreachFactory(aware_at=AWARE - timedelta(hours=5), authority_notified_at=AWARE)
    BreachFactory(
        aware_at=AWARE - timedelta(hours=5),
        risk="none",
        not_notified=True,
        not_notified_reason="Aucun risque.",
    )

    rows = breaches_within_deadline(AWARE)

    assert [row.breach for row in rows] == [late, older, fresh]
    assert [(row.hours_left, row.late) for row in rows] == [(-3, True), (12, False), (70, False)]


# Reminders to the DPO.


def reminders(at: datetime) -> int:
    with freeze_time(at):
        return breach_reminders_send()


@pytest.mark.django_db
def test_the_dpo_is_reminded_at_24_and_48_hours_each_time_once(
    dpo_team: list[str], mailbox: Mailbox
) -> None:
    with freeze_time(AWARE + timedelta(minutes=20)):
        breach = BreachFactory(aware_at=AWARE)

    sent = [
        reminders(AWARE + timedelta(hours=23, minutes=45)),  # not yet
        reminders(AWARE + timedelta(hours=24)),
        reminders(AWARE + timedelta(hours=24, minutes=15)),
        reminders(AWARE + timedelta(hours=36)),
        reminders(AWARE + timedelta(hours=48, minutes=10)),
        reminders(AWARE + timedelta(hours=48, minutes=25)),
        reminders(AWARE + timedelta(hours=60)),
    ]

    assert sent == [0, 1, 0, 0, 1, 0, 0]
    assert len(mailbox.messages) == 2
    for message in mailbox.messages:
        assert sorted(address.strip() for address in message["To"].split(",")) == dpo_team
    breach.refresh_from_db()
    assert breach.reminded_24h_at == AWARE + timedelta(hours=24)
    assert breach.reminded_48h_at == AWARE + timedelta(hours=48, minutes=10)


@pytest.mark.django_db
def test_the_reminder_is_in_french_with_the_deadline_in_words(
    dpo_team: list[str], mailbox: Mailbox
) -> None:
    with freeze_time(AWARE + timedelta(minutes=20)):
        breach = BreachFactory(aware_at=AWARE, reference="Fuite Dupont & fils")

    reminders(AWARE + timedelta(hours=24))

    [message] = mailbox.messages
    with translation.override("fr"):
        subject = _("Breach “%(reference)s”: the CNIL must be notified (%(remaining)s)") % {
            "reference": "Fuite Dupont & fils",
            "remaining": _("in %(hours)s h") % {"hours": 48},
        }
    assert settings.LANGUAGE_CODE == "fr"
    assert str(make_header(decode_header(message["Subject"]))) == subject
    body = message_text(message)
    assert "23 mars 2026 10:00" in body  # the deadline: the French month, in Paris time
    assert f"{settings.SITE_URL}/admin/privacy/breach/{breach.pk}/change/" in body
    assert "&amp;" not in body


@pytest.mark.django_db
def test_no_reminder_once_the_authority_decision_is_taken(
    dpo_team: list[str], mailbox: Mailbox
) -> None:
    with freeze_time(AWARE + timedelta(minutes=20)):
        notified = BreachFactory(aware_at=AWARE)
        unnotified = BreachFactory(aware_at=AWARE)
    with freeze_time(AWARE + timedelta(hours=20)):
        breach_update(
            breach=notified, by="dpo-anne", authority_notified_at=AWARE + timedelta(hours=19)
        )
        breach_update(
            breach=unnotified,
            by="dpo-anne",
            reason="Les données étaient chiffrées.",
            risk="none",
            not_notified=True,
            not_notified_reason="Données chiffrées.",
        )

    sent = [reminders(AWARE + timedelta(hours=24)), reminders(AWARE + timedelta(hours=48))]

    assert sent == [0, 0]
    assert mailbox.messages == []


@pytest.mark.django_db
def test_a_breach_recorded_past_48_hours_gets_only_the_48_hour_reminder(
    dpo_team: list[str], mailbox: Mailbox
) -> None:
    with freeze_time(AWARE + timedelta(hours=50)):
        breach = BreachFactory(aware_at=AWARE)

    sent = [
        reminders(AWARE + timedelta(hours=50, minutes=15)),
        reminders(AWARE + timedelta(hours=51)),
    ]

    assert sent == [1, 0]
    breach.refresh_from_db()
    assert breach.reminded_24h_at is None and breach.reminded_48h_at is not None


@pytest.mark.django_db
def test_without_anyone_to_tell_the_reminder_waits_for_someone(
    settings: Any, mailbox: Mailbox
) -> None:
    # given a DPO reached by post only, and no DPO group yet
    settings.DPO_CONTACT = "Délégué à la protection des données, 12 rue des Cyclistes, Lyon"
    with freeze_time(AWARE + timedelta(minutes=20)):
        breach = BreachFactory(aware_at=AWARE)

    nobody = reminders(AWARE + timedelta(hours=24))
    call_command("setup_roles", stdout=StringIO())
    UserFactory(username="dpo-anne", email="anne@staff.example.fr").groups.add(
        Group.objects.get(name=DPO)
    )
    anne = reminders(AWARE + timedelta(hours=24, minutes=15))

    assert (nobody, anne) == (0, 1)
    [message] = mailbox.messages
    assert message["To"] == "anne@staff.example.fr"
    breach.refresh_from_db()
    assert breach.reminded_24h_at == AWARE + timedelta(hours=24, minutes=15)


@pytest.mark.django_db
def test_a_failed_send_leaves_the_reminder_to_the_next_run(
    dpo_team: list[str], mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    with freeze_time(AWARE + timedelta(minutes=20)):
        breach = BreachFactory(aware_at=AWARE)

    def refused(*args: Any, **kwargs: Any) -> None:
        raise OSError("SMTP server unreachable")

    monkeypatch.setattr("privacy.breaches.email_send", refused)
    with pytest.raises(OSError):
        reminders(AWARE + timedelta(hours=24))
    monkeypatch.undo()

    breach.refresh_from_db()
    assert breach.reminded_24h_at is None
    assert reminders(AWARE + timedelta(hours=24, minutes=15)) == 1


@pytest.mark.django_db
def test_updating_a_breach_keeps_the_reminder_marks_claimed_meanwhile(
    dpo_team: list[str], mailbox: Mailbox
) -> None:
    with freeze_time(AWARE + timedelta(minutes=20)):
        breach = BreachFactory(aware_at=AWARE)
    stale = Breach.objects.get(pk=breach.pk)  # opened in the admin before the reminder

    reminders(AWARE + timedelta(hours=24))
    with freeze_time(AWARE + timedelta(hours=25)):
        breach_update(breach=stale, by="dpo-anne", measures="Mots de passe réinitialisés.")

    breach.refresh_from_db()
    assert breach.reminded_24h_at == AWARE + timedelta(hours=24)
    assert breach.measures == "Mots de passe réinitialisés."


@pytest.mark.django_db
def test_the_reminder_task_is_safe_to_run_twice(dpo_team: list[str], mailbox: Mailbox) -> None:
    with freeze_time(AWARE + timedelta(minutes=20)):
        BreachFactory(aware_at=AWARE)

    with freeze_time(AWARE + timedelta(hours=24, minutes=5)):
        first = send_breach_reminders.apply()
        second = send_breach_reminders.apply()

    assert (first.get(), second.get()) == (1, 0)
    assert len(mailbox.messages) == 1


def test_beat_runs_the_reminders_every_15_minutes() -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["send-breach-reminders"]

    assert entry["task"] == send_breach_reminders.name
    assert entry["schedule"] == timedelta(minutes=15)


@pytest.mark.postgres
def test_two_reminder_runs_at_the_same_time_send_one_email(
    transactional_db: None, mailbox: Mailbox
) -> None:
    # given (committed, for the threads to see it)
    call_command("setup_roles", stdout=StringIO())
    UserFactory(username="dpo-anne", email="anne@staff.example.fr").groups.add(
        Group.objects.get(name=DPO)
    )
    with freeze_time(AWARE + timedelta(minutes=20)):
        BreachFactory(aware_at=AWARE)

    # when
    sent = run_concurrently(lambda: breach_reminders_send(now=AWARE + timedelta(hours=24)), times=2)

    # then
    assert sorted(sent) == [0, 1]
    assert len(mailbox.messages) == 1


# Telling the persons concerned (Art. 34).


@pytest.mark.django_db
def test_notifying_the_persons_creates_the_breach_notice_and_links_it() -> None:
    camille, paul = ContactFactory(), ContactFactory()
    ContactFactory()  # not concerned
    breach = BreachFactory(risk="high")

    campaign = breach_notify_persons(breach=breach, contacts=[camille.pk, paul.pk])

    breach.refresh_from_db()
    assert breach.notification_campaign == campaign
    assert campaign.kind == CampaignKind.BREACH_NOTICE
    assert campaign.status == CampaignStatus.DRAFT
    assert set(campaign.concerned.all()) == {camille, paul}
    assert breach.reference in campaign.name
    step = campaign.steps.get()
    assert breach.nature in step.body_text_fr and breach.measures in step.body_text_fr


@pytest.mark.django_db
def test_a_breach_has_one_notification_campaign_unless_it_was_cancelled() -> None:
    contact = ContactFactory()
    breach = BreachFactory(risk="high")
    first = breach_notify_persons(breach=breach, contacts=[contact.pk])

    with pytest.raises(StructuredValidationError) as error:
        breach_notify_persons(breach=breach, contacts=[contact.pk])
    first.status = CampaignStatus.CANCELLED
    first.save(update_fields=["status"])
    second = breach_notify_persons(breach=breach, contacts=[contact.pk])

    assert "notification_campaign" in error.value.detail
    breach.refresh_from_db()
    assert breach.notification_campaign == second != first


# The register's history cannot be rewritten (Art. 33(5)).


@pytest.mark.django_db
def test_moving_the_time_of_awareness_after_a_reminder_needs_a_reason(
    dpo_team: list[str], mailbox: Mailbox
) -> None:
    with freeze_time(AWARE + timedelta(minutes=20)):
        breach = BreachFactory(aware_at=AWARE)
    reminders(AWARE + timedelta(hours=24))

    with freeze_time(AWARE + timedelta(hours=30)), pytest.raises(ValidationError) as error:
        breach_update(breach=breach, by="dpo-anne", aware_at=AWARE + timedelta(hours=20))

    assert list(field_errors(error)) == ["reason"]
    breach.refresh_from_db()
    assert breach.aware_at == AWARE
    assert not breach.changes.exists()


@pytest.mark.django_db
def test_a_late_notification_is_not_made_on_time_without_a_trace() -> None:
    with freeze_time(AWARE + timedelta(hours=91)):
        breach = breach_record(
            by="dpo-persona",
            **details(
                authority_notified_at=AWARE + timedelta(hours=90),
                delay_reasons="Enquête du prestataire.",
            ),
        )
        with pytest.raises(ValidationError) as error:
            breach_update(breach=breach, by="dpo-anne", aware_at=AWARE + timedelta(hours=24))
        breach.refresh_from_db()
        breach_update(
            breach=breach,
            by="dpo-anne",
            reason="Le prestataire nous a prévenus le lendemain.",
            aware_at=AWARE + timedelta(hours=24),
        )

    assert list(field_errors(error)) == ["reason"]
    change = breach.changes.get()
    assert change.field == "aware_at"
    assert change.changed_by == "dpo-anne"
    assert change.changed_at == AWARE + timedelta(hours=91)
    assert datetime.fromisoformat(change.old_value) == AWARE  # the original stays visible
    assert datetime.fromisoformat(change.new_value) == AWARE + timedelta(hours=24)
    assert change.reason == "Le prestataire nous a prévenus le lendemain."


@pytest.mark.django_db
def test_moving_awareness_later_frees_the_reminders_not_yet_due_for_the_new_deadline(
    dpo_team: list[str], mailbox: Mailbox
) -> None:
    with freeze_time(AWARE + timedelta(minutes=20)):
        breach = BreachFactory(aware_at=AWARE)
    reminders(AWARE + timedelta(hours=24))
    reminders(AWARE + timedelta(hours=48))
    mailbox.clear()

    with freeze_time(AWARE + timedelta(hours=50)):
        breach_update(
            breach=breach,
            by="dpo-anne",
            reason="Le fichier n'a été ouvert que la veille.",
            aware_at=AWARE + timedelta(hours=20),
        )

    breach.refresh_from_db()
    assert breach.reminded_24h_at == AWARE + timedelta(hours=24)  # due again at +44 h: past
    assert breach.reminded_48h_at is None  # due at +68 h now
    assert breach.authority_deadline == AWARE + timedelta(hours=92)
    assert reminders(AWARE + timedelta(hours=60)) == 0
    assert reminders(AWARE + timedelta(hours=68)) == 1
    assert len(mailbox.messages) == 1


@pytest.mark.django_db
def test_reopening_a_breach_needs_a_reason_and_is_recorded() -> None:
    with freeze_time(AWARE + timedelta(hours=30)):
        breach = breach_record(
            by="dpo-persona",
            **details(
                authority_notified_at=AWARE + timedelta(hours=20),
                closed_at=AWARE + timedelta(hours=29),
            ),
        )
        with pytest.raises(ValidationError) as error:
            breach_update(breach=breach, by="dpo-anne", closed_at=None)
        breach.refresh_from_db()
        breach_update(
            breach=breach, by="dpo-anne", reason="D'autres fichiers exposés.", closed_at=None
        )

    assert field_errors(error) == {"reason": [_("Say why the breach is reopened.")]}
    breach.refresh_from_db()
    assert breach.closed_at is None
    change = breach.changes.get()
    assert (change.field, change.new_value) == ("closed_at", "")
    assert datetime.fromisoformat(change.old_value) == AWARE + timedelta(hours=29)


@pytest.mark.django_db
def test_a_first_decision_needs_no_reason_and_is_kept_in_the_history_other_fields_not() -> None:
    with freeze_time(AWARE + timedelta(hours=30)):
        breach = breach_record(by="dpo-persona", **details())
        breach_update(
            breach=breach,
            by="dpo-anne",
            authority_notified_at=AWARE + timedelta(hours=20),
            authority_reference="CNIL-2026-0042",
            measures="Mots de passe réinitialisés.",
        )
        with pytest.raises(ValidationError) as error:
            breach_update(
                breach=breach, by="dpo-anne", authority_notified_at=AWARE + timedelta(hours=25)
            )

    assert sorted(breach.changes.values_list("field", "new_value")) == [
        ("authority_notified_at", (AWARE + timedelta(hours=20)).isoformat()),
        ("authority_reference", "CNIL-2026-0042"),
    ]
    assert list(field_errors(error)) == ["reason"]


def listed_then_moved(monkeypatch: pytest.MonkeyPatch, aware_at: datetime) -> None:
    """Each reminder run lists a breach as due, then the DPO moves its time of awareness to
    `aware_at` before the run claims it."""
    real_send = breaches_module._reminder_send

    def moved_meanwhile(listed: Breach, *args: Any, **kwargs: Any) -> int:
        breach_update(breach=Breach.objects.get(pk=listed.pk), by="dpo-anne", aware_at=aware_at)
        return real_send(listed, *args, **kwargs)

    monkeypatch.setattr("privacy.breaches._reminder_send", moved_meanwhile)


def said_hours_ago(reference: str, hours: int) -> str:
    """The reminder's first sentence, in French: how long ago we became aware."""
    with translation.override("fr"):
        return _(
            "We became aware of the breach “%(reference)s” %(hours)s hours ago, and the "
            "authority has not been notified yet."
        ) % {"reference": reference, "hours": hours}


@pytest.mark.django_db
def test_a_reminder_listed_before_awareness_moved_later_goes_at_the_new_time(
    dpo_team: list[str], mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    with freeze_time(AWARE + timedelta(minutes=20)):
        breach = BreachFactory(aware_at=AWARE, reference="Fuite Martin")
    listed_then_moved(monkeypatch, AWARE + timedelta(hours=19))

    early = reminders(AWARE + timedelta(hours=24))
    monkeypatch.undo()

    breach.refresh_from_db()
    assert early == 0
    assert breach.reminded_24h_at is None
    assert mailbox.messages == []
    assert reminders(AWARE + timedelta(hours=42)) == 0
    assert reminders(AWARE + timedelta(hours=43)) == 1
    assert said_hours_ago("Fuite Martin", 24) in " ".join(message_text(mailbox.messages[0]).split())


@pytest.mark.django_db
def test_a_reminder_still_due_after_awareness_moved_says_the_new_deadline(
    dpo_team: list[str], mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    with freeze_time(AWARE + timedelta(minutes=20)):
        BreachFactory(aware_at=AWARE, reference="Fuite Martin")
    listed_then_moved(monkeypatch, AWARE + timedelta(hours=1))

    sent = reminders(AWARE + timedelta(hours=26))

    assert sent == 1
    [message] = mailbox.messages
    with translation.override("fr"):
        subject = _("Breach “%(reference)s”: the CNIL must be notified (%(remaining)s)") % {
            "reference": "Fuite Martin",
            "remaining": _("in %(hours)s h") % {"hours": 47},
        }
    assert str(make_header(decode_header(message["Subject"]))) == subject
    body = " ".join(message_text(message).split())
    assert said_hours_ago("Fuite Martin", 25) in body
    assert "23 mars 2026 11:00" in body  # 72 hours after the new time of awareness


@pytest.mark.parametrize(
    ("recorded", "rewritten"),
    [
        ({"risk": "none"}, {"risk": "high"}),
        (
            {"risk": "none", "not_notified": True, "not_notified_reason": "Clé chiffrée."},
            {"not_notified_reason": "Clé chiffrée, mot de passe robuste."},
        ),
        (
            {"authority_notified_at": AWARE + timedelta(hours=20), "authority_reference": "A-1"},
            {"authority_reference": "A-2"},
        ),
        (
            {
                "authority_notified_at": AWARE + timedelta(hours=80),
                "delay_reasons": "Le prestataire a tardé.",
            },
            {"delay_reasons": "Week-end."},
        ),
    ],
)
@pytest.mark.django_db
def test_the_risk_and_the_decision_s_reasons_are_rewritten_only_with_a_reason(
    recorded: dict[str, Any], rewritten: dict[str, Any]
) -> None:
    with freeze_time(AWARE + timedelta(hours=90)):
        breach = breach_record(by="dpo-persona", **details(**recorded))
        with pytest.raises(ValidationError) as error:
            breach_update(breach=breach, by="dpo-anne", **rewritten)
        breach = Breach.objects.get(pk=breach.pk)
        breach_update(breach=breach, by="dpo-anne", reason="Revu avec le RSSI.", **rewritten)

    [(name, value)] = rewritten.items()
    assert list(field_errors(error)) == ["reason"]
    change = Breach.objects.get(pk=breach.pk).changes.get()
    assert (change.field, change.old_value, change.new_value) == (name, recorded[name], value)
    assert change.reason == "Revu avec le RSSI."


@pytest.mark.django_db
def test_a_risk_is_not_lowered_to_leave_the_breach_unnotified_without_a_reason() -> None:
    lowered = {
        "risk": "none",
        "not_notified": True,
        "not_notified_reason": "Données chiffrées.",
    }
    with freeze_time(AWARE + timedelta(hours=30)):
        breach = breach_record(by="dpo-persona", **details(risk="high"))
        with pytest.raises(ValidationError) as error:
            breach_update(breach=breach, by="dpo-anne", **lowered)
        breach = Breach.objects.get(pk=breach.pk)
        breach_update(breach=breach, by="dpo-anne", reason="Clé chiffrée (AES-256).", **lowered)

    assert list(field_errors(error)) == ["reason"]
    breach.refresh_from_db()
    assert breach.risk == "none" and breach.not_notified
    assert breach.changes.get(field="risk").old_value == "high"


# Reminders are sent once their claim is committed.


class RefusingBackend(BaseEmailBackend):
    """An SMTP server that cannot be reached."""

    def send_messages(self, email_messages: Any) -> int:
        raise OSError("SMTP server unreachable")


class WatchingBackend(BaseEmailBackend):
    """Notes, at each send, whether a transaction is open and what the database holds."""

    seen: list[tuple[bool, Any]] = []

    def send_messages(self, email_messages: Any) -> int:
        marks = list(Breach.objects.values_list("reminded_24h_at", flat=True))
        WatchingBackend.seen.append((connection.in_atomic_block, marks))
        return len(email_messages)


@pytest.mark.django_db(transaction=True)
def test_a_failing_email_backend_frees_the_reminder_for_the_next_run(
    dpo_team: list[str], mailbox: Mailbox, settings: Any
) -> None:
    with freeze_time(AWARE + timedelta(minutes=20)):
        breach = BreachFactory(aware_at=AWARE)
    settings.EMAIL_BACKEND = "tests.privacy.test_breaches.RefusingBackend"

    with pytest.raises(OSError):
        reminders(AWARE + timedelta(hours=24))

    breach.refresh_from_db()
    assert breach.reminded_24h_at is None
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    assert reminders(AWARE + timedelta(hours=24, minutes=15)) == 1
    assert len(mailbox.messages) == 1


@pytest.mark.django_db(transaction=True)
def test_the_reminder_is_claimed_and_committed_before_it_is_sent(
    dpo_team: list[str], settings: Any
) -> None:
    with freeze_time(AWARE + timedelta(minutes=20)):
        BreachFactory(aware_at=AWARE)
    settings.EMAIL_BACKEND = "tests.privacy.test_breaches.WatchingBackend"
    WatchingBackend.seen = []

    reminders(AWARE + timedelta(hours=24))

    assert WatchingBackend.seen == [(False, [AWARE + timedelta(hours=24)])]


@pytest.mark.django_db(transaction=True)
def test_a_sent_reminder_is_not_sent_again_when_a_later_one_fails(
    dpo_team: list[str], mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    with freeze_time(AWARE + timedelta(minutes=20)):
        first = BreachFactory(aware_at=AWARE)
        second = BreachFactory(aware_at=AWARE + timedelta(minutes=10))
    real_send = email_send

    def second_fails(**kwargs: Any) -> None:
        if kwargs["context"]["breach"].pk == second.pk:
            raise OSError("SMTP timeout")
        real_send(**kwargs)

    monkeypatch.setattr("privacy.breaches.email_send", second_fails)
    with pytest.raises(OSError):
        reminders(AWARE + timedelta(hours=24, minutes=10))
    monkeypatch.undo()
    sent = reminders(AWARE + timedelta(hours=24, minutes=15))

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.reminded_24h_at == AWARE + timedelta(hours=24, minutes=10)
    assert second.reminded_24h_at == AWARE + timedelta(hours=24, minutes=15)
    assert sent == 1
    assert len(mailbox.messages) == 2


# Persons told follows the notification campaign (Art. 34).


def campaign_started(
    campaign: Campaign, at: datetime, status: str = CampaignStatus.SENDING
) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(status=status, started_at=at)


@pytest.mark.django_db
def test_persons_are_not_told_through_their_notification_campaign_while_it_is_a_draft() -> None:
    with freeze_time(AWARE + timedelta(hours=2)):
        breach = BreachFactory(aware_at=AWARE, risk="high")
        breach_notify_persons(breach=breach, contacts=[ContactFactory().pk])

    with freeze_time(AWARE + timedelta(hours=4)), pytest.raises(ValidationError) as error:
        breach_update(breach=breach, by="dpo-anne", persons_told=True)

    assert list(field_errors(error)) == ["persons_told"]
    assert "has not started sending" in field_errors(error)["persons_told"][0]


@pytest.mark.django_db
def test_persons_told_by_letter_are_recorded_while_the_campaign_is_a_draft() -> None:
    with freeze_time(AWARE + timedelta(hours=2)):
        breach = BreachFactory(aware_at=AWARE, risk="high")
        breach_notify_persons(breach=breach, contacts=[ContactFactory().pk])
    told = AWARE + timedelta(hours=3)

    with freeze_time(AWARE + timedelta(hours=4)):
        breach_update(breach=breach, by="dpo-anne", persons_told=True, persons_told_at=told)

    breach.refresh_from_db()
    assert (breach.persons_told, breach.persons_told_at) == (True, told)
    assert breach_persons_told_at(breach=breach) == told


@pytest.mark.django_db
def test_a_breach_told_before_its_new_campaign_can_still_be_edited_and_closed() -> None:
    contact = ContactFactory()
    with freeze_time(AWARE + timedelta(hours=2)):
        breach = BreachFactory(aware_at=AWARE, risk="high")
        first = breach_notify_persons(breach=breach, contacts=[contact.pk])
    campaign_started(first, AWARE + timedelta(hours=3), status=CampaignStatus.CANCELLED)
    with freeze_time(AWARE + timedelta(hours=4)):
        breach_update(breach=Breach.objects.get(pk=breach.pk), by="dpo-anne", persons_told=True)
        # told through the first one, which went in part: a second one is drafted
        breach_notify_persons(breach=breach, contacts=[contact.pk])

    with freeze_time(AWARE + timedelta(hours=30)):
        breach = Breach.objects.get(pk=breach.pk)
        breach_update(breach=breach, by="dpo-anne", measures="Mots de passe réinitialisés.")
        breach_update(
            breach=breach,
            by="dpo-anne",
            authority_notified_at=AWARE + timedelta(hours=20),
            closed_at=AWARE + timedelta(hours=29),
        )

    breach.refresh_from_db()
    assert breach.notification_campaign.status == CampaignStatus.DRAFT
    assert breach.persons_told and breach.closed_at == AWARE + timedelta(hours=29)


@pytest.mark.django_db
def test_once_the_campaign_sends_the_persons_told_at_is_its_first_send() -> None:
    contact = ContactFactory()
    with freeze_time(AWARE + timedelta(hours=2)):
        breach = BreachFactory(aware_at=AWARE, risk="high")
        campaign = breach_notify_persons(breach=breach, contacts=[contact.pk])
    campaign_started(campaign, AWARE + timedelta(hours=3))
    assert breach_persons_told_at(breach=Breach.objects.get(pk=breach.pk)) == AWARE + timedelta(
        hours=3
    )
    Recipient.objects.create(
        campaign=campaign,
        step=campaign.steps.get(),
        contact=contact,
        status=RecipientStatus.SENT,
        sent_at=AWARE + timedelta(hours=3, minutes=2),
    )

    with freeze_time(AWARE + timedelta(hours=4)):
        breach = Breach.objects.get(pk=breach.pk)
        breach_update(breach=breach, by="dpo-anne", persons_told=True)  # no time typed

    breach.refresh_from_db()
    assert breach.persons_told_at is None
    assert breach_persons_told_at(breach=breach) == AWARE + timedelta(hours=3, minutes=2)
    typed = AWARE + timedelta(hours=3, minutes=30)
    breach.persons_told_at = typed
    assert breach_persons_told_at(breach=breach) == typed


@pytest.mark.django_db
def test_a_draft_campaign_has_told_nobody() -> None:
    with freeze_time(AWARE + timedelta(hours=2)):
        breach = BreachFactory(aware_at=AWARE, risk="high")
        breach_notify_persons(breach=breach, contacts=[ContactFactory().pk])

    assert breach_persons_told_at(breach=breach) is None
