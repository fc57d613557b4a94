"""The breach register in the admin: recorded by the DPO, its deadline in words, exported as
CSV and printed (audited), the notification of the persons concerned; none of it for a
marketer, and no entry ever deleted."""

import csv
import html
import io
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Recipient,
    RecipientStatus,
)
from core.models import AuditAction, AuditEvent
from privacy.breaches import breach_notify_persons, breach_update
from privacy.models import Breach
from tests.admin.forms import submitted_form
from tests.factories import BreachFactory, ContactFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:privacy_breach_changelist")
ADD = reverse("admin:privacy_breach_add")
CSV = reverse("admin:privacy_breach_register_csv")
PRINT = reverse("admin:privacy_breach_register_print")


def notify_url(breach: Breach) -> str:
    return reverse("admin:privacy_breach_notify", args=[breach.pk])


def test_the_dpo_records_a_breach(as_dpo: Client) -> None:
    aware = timezone.localtime() - timedelta(hours=3)
    page = as_dpo.get(ADD)

    response = as_dpo.post(
        ADD,
        submitted_form(
            page,
            reference="Ordinateur portable volé",
            aware_at_0=aware.strftime("%Y-%m-%d"),
            aware_at_1=aware.strftime("%H:%M:%S"),
            nature="Un portable non chiffré a été volé dans un train.",
            persons_count="350",
            risk="high",
            risk_reasoning="Disque non chiffré, données de contact et de paiement.",
        ),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    breach = Breach.objects.get()
    assert breach.recorded_by == "dpo-persona"
    assert breach.persons_count == 350
    assert breach.authority_deadline == breach.aware_at + timedelta(hours=72)


def test_a_late_notification_without_reasons_is_refused_next_to_the_field(
    as_dpo: Client,
) -> None:
    breach = BreachFactory(aware_at=timezone.now() - timedelta(hours=90))
    change = reverse("admin:privacy_breach_change", args=[breach.pk])
    page = as_dpo.get(change)
    notified = timezone.localtime() - timedelta(hours=2)

    response = as_dpo.post(
        change,
        submitted_form(
            page,
            authority_notified_at_0=notified.strftime("%Y-%m-%d"),
            authority_notified_at_1=notified.strftime("%H:%M:%S"),
        ),
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["delay_reasons"]
    assert "72-hour deadline" in errors["delay_reasons"][0]
    breach.refresh_from_db()
    assert breach.authority_notified_at is None


def test_the_list_shows_the_deadline_in_words(as_dpo: Client) -> None:
    now = timezone.now()
    BreachFactory(reference="Fuite A", aware_at=now - timedelta(hours=57, minutes=30))
    BreachFactory(reference="Fuite B", aware_at=now - timedelta(hours=75, minutes=30))

    page = as_dpo.get(CHANGELIST).content.decode()

    assert "in 14 h" in page
    assert "late by 3 h" in page
    assert "Late: past the 72-hour deadline without a decision" in page


def test_the_list_filters_the_late_breaches(as_dpo: Client) -> None:
    now = timezone.now()
    BreachFactory(reference="Fuite récente", aware_at=now - timedelta(hours=2))
    BreachFactory(reference="Fuite en retard", aware_at=now - timedelta(hours=80))

    page = as_dpo.get(CHANGELIST, {"status": "late"}).content.decode()

    assert "Fuite en retard" in page and "Fuite récente" not in page


def test_the_register_exports_as_csv_and_the_export_is_audited(as_dpo: Client) -> None:
    BreachFactory(reference="Fuite du CRM", persons_count=1200)
    BreachFactory(
        reference="Clé USB perdue",
        risk="none",
        not_notified=True,
        not_notified_reason="Clé chiffrée, mot de passe robuste.",
    )

    response = as_dpo.get(CSV, {"q": "CRM"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["reference"] for row in rows] == ["Fuite du CRM"]  # the search applies
    row = rows[0]
    assert row["approximate number of persons"] == "1200"
    assert row["risk to the persons"] == "Risk"
    assert row["decided not to notify the authority"] == "no"
    assert row["why this risk level"].startswith("Adresses email")
    (event,) = AuditEvent.objects.filter(action=AuditAction.EXPORT)
    assert event.username == "dpo-persona"
    assert event.details == {"export": "register:privacy.breach", "format": "csv"}


def test_the_register_prints_with_the_controller_and_the_dpo(as_dpo: Client) -> None:
    BreachFactory(
        reference="Clé USB perdue",
        risk="none",
        not_notified=True,
        not_notified_reason="Clé chiffrée, mot de passe robuste.",
    )

    response = as_dpo.get(PRINT)

    page = response.content.decode()
    assert response.status_code == 200
    assert "<h2>Clé USB perdue</h2>" in page
    assert settings.CONTROLLER_NAME in page and settings.DPO_CONTACT in page
    assert "Clé chiffrée, mot de passe robuste." in page
    assert "Decided not to notify the authority" in page
    assert AuditEvent.objects.filter(action=AuditAction.EXPORT, details__format="print").exists()


def test_notifying_the_persons_creates_and_links_the_campaign(as_dpo: Client) -> None:
    camille = ContactFactory(email="camille@example.fr")
    paul = ContactFactory(email="paul@example.fr")
    breach = BreachFactory(risk="high")
    change = as_dpo.get(reverse("admin:privacy_breach_change", args=[breach.pk]))
    assert notify_url(breach) in change.content.decode()
    form = as_dpo.get(notify_url(breach))
    assert breach.nature in form.content.decode()  # the breach's texts, to edit

    response = as_dpo.post(
        notify_url(breach),
        {
            **form.context["form"].initial,
            "emails": "Camille@Example.fr\npaul@example.fr",
            "nature_fr": breach.nature,
            "consequences_fr": breach.consequences,
            "measures_fr": breach.measures,
        },
    )

    breach.refresh_from_db()
    campaign = breach.notification_campaign
    assert campaign is not None
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    assert campaign.kind == CampaignKind.BREACH_NOTICE
    assert set(campaign.concerned.all()) == {camille, paul}
    page = as_dpo.get(reverse("admin:privacy_breach_change", args=[breach.pk])).content.decode()
    assert reverse("admin:campaigns_campaign_change", args=[campaign.pk]) in page


def test_an_unknown_address_is_named_and_nothing_is_created(as_dpo: Client) -> None:
    ContactFactory(email="camille@example.fr")
    breach = BreachFactory(risk="high")
    form = as_dpo.get(notify_url(breach))

    response = as_dpo.post(
        notify_url(breach),
        {
            **form.context["form"].initial,
            "emails": "camille@example.fr, inconnu@example.fr",
            "nature_fr": breach.nature,
            "consequences_fr": breach.consequences,
            "measures_fr": breach.measures,
        },
    )

    assert response.status_code == 200
    assert "inconnu@example.fr" in response.context["form"].errors["emails"][0]
    breach.refresh_from_db()
    assert breach.notification_campaign is None


def test_a_marketer_cannot_see_the_breach_register(as_marketer: Client) -> None:
    breach = BreachFactory()

    for url in (
        CHANGELIST,
        ADD,
        CSV,
        PRINT,
        notify_url(breach),
        reverse("admin:privacy_breach_change", args=[breach.pk]),
    ):
        assert as_marketer.get(url).status_code == 403, url
    assert not AuditEvent.objects.exists()


def test_nobody_deletes_a_breach(as_superuser: Client) -> None:
    breach = BreachFactory()

    response = as_superuser.get(reverse("admin:privacy_breach_delete", args=[breach.pk]))

    assert response.status_code == 403
    assert Breach.objects.filter(pk=breach.pk).exists()


# The history of the decisive fields, the reasons to rewrite them, the persons told.


def reminded(breach: Breach) -> None:
    Breach.objects.filter(pk=breach.pk).update(reminded_24h_at=timezone.now())


def test_moving_awareness_after_a_reminder_is_refused_without_a_reason(as_dpo: Client) -> None:
    breach = BreachFactory(aware_at=timezone.now() - timedelta(hours=30))
    reminded(breach)
    change = reverse("admin:privacy_breach_change", args=[breach.pk])
    page = as_dpo.get(change)
    later = timezone.localtime() - timedelta(hours=10)

    response = as_dpo.post(
        change,
        submitted_form(
            page,
            aware_at_0=later.strftime("%Y-%m-%d"),
            aware_at_1=later.strftime("%H:%M:%S"),
        ),
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["reason"]
    assert "time of awareness" in errors["reason"][0]
    assert not breach.changes.exists()


def test_a_change_with_its_reason_is_kept_and_shown_collapsed_on_the_page(
    as_dpo: Client,
) -> None:
    aware = timezone.now() - timedelta(hours=30)
    breach = BreachFactory(aware_at=aware)
    reminded(breach)
    change = reverse("admin:privacy_breach_change", args=[breach.pk])
    page = as_dpo.get(change)
    later = timezone.localtime() - timedelta(hours=10)

    response = as_dpo.post(
        change,
        submitted_form(
            page,
            aware_at_0=later.strftime("%Y-%m-%d"),
            aware_at_1=later.strftime("%H:%M:%S"),
            measures="Mots de passe réinitialisés.",
            reason="Le prestataire nous a prévenus plus tard.",
        ),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    (kept,) = breach.changes.all()
    assert (kept.field, kept.changed_by) == ("aware_at", "dpo-persona")
    assert kept.reason == "Le prestataire nous a prévenus plus tard."
    shown = as_dpo.get(change).content.decode()
    assert '<details class="breach-history">' in shown
    assert "Le prestataire nous a prévenus plus tard." in shown
    original = date_format(timezone.localtime(aware), "DATETIME_FORMAT")
    assert original in shown.split('class="breach-history"')[1]


def test_saving_an_unchanged_time_of_awareness_needs_no_reason(as_dpo: Client) -> None:
    breach = BreachFactory(aware_at=timezone.now() - timedelta(hours=30))
    reminded(breach)
    change = reverse("admin:privacy_breach_change", args=[breach.pk])

    response = as_dpo.post(change, submitted_form(as_dpo.get(change), measures="Fichier supprimé."))

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert not breach.changes.exists()


def test_persons_told_is_refused_next_to_the_field_while_the_campaign_is_a_draft(
    as_dpo: Client,
) -> None:
    breach = BreachFactory(risk="high", aware_at=timezone.now() - timedelta(hours=5))
    breach_notify_persons(breach=breach, contacts=[ContactFactory().pk])
    change = reverse("admin:privacy_breach_change", args=[breach.pk])
    page = as_dpo.get(change)

    response = as_dpo.post(change, submitted_form(page, persons_told="on"))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["persons_told"]
    assert "has not started sending (Draft)" in errors["persons_told"][0]
    assert "Draft" in page.content.decode()


def test_persons_told_by_phone_are_recorded_while_the_campaign_is_a_draft(
    as_dpo: Client,
) -> None:
    breach = BreachFactory(risk="high", aware_at=timezone.now() - timedelta(hours=5))
    breach_notify_persons(breach=breach, contacts=[ContactFactory().pk])
    change = reverse("admin:privacy_breach_change", args=[breach.pk])
    told = timezone.localtime().replace(microsecond=0) - timedelta(hours=1)

    response = as_dpo.post(
        change,
        submitted_form(
            as_dpo.get(change),
            persons_told="on",
            persons_told_at_0=told.strftime("%Y-%m-%d"),
            persons_told_at_1=told.strftime("%H:%M:%S"),
        ),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    breach.refresh_from_db()
    assert (breach.persons_told, breach.persons_told_at) == (True, told)


def test_lowering_the_risk_in_the_admin_needs_a_reason(as_dpo: Client) -> None:
    breach = BreachFactory(risk="high")
    change = reverse("admin:privacy_breach_change", args=[breach.pk])

    refused = as_dpo.post(change, submitted_form(as_dpo.get(change), risk="risk"))
    saved = as_dpo.post(
        change, submitted_form(as_dpo.get(change), risk="risk", reason="Données chiffrées.")
    )

    assert list(refused.context["adminform"].form.errors) == ["reason"]
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    assert breach.changes.get().reason == "Données chiffrées."


def test_the_printed_register_and_the_csv_show_the_campaign_and_the_history(
    as_dpo: Client,
) -> None:
    breach = BreachFactory(reference="Fuite du CRM", risk="high")
    campaign = breach_notify_persons(breach=breach, contacts=[ContactFactory().pk])
    started = timezone.now() - timedelta(minutes=30)
    Campaign.objects.filter(pk=campaign.pk).update(
        status=CampaignStatus.SENT, started_at=started, finished_at=started
    )
    breach_update(
        breach=Breach.objects.get(pk=breach.pk),
        by="dpo-anne",
        persons_told=True,
    )

    row = next(csv.DictReader(io.StringIO(as_dpo.get(CSV).content.decode())))
    printed = as_dpo.get(PRINT).content.decode()

    sent = date_format(timezone.localtime(started), "DATETIME_FORMAT")
    assert row["notification campaign's status"] == "Sent, sent " + sent
    assert row["persons told at (recorded or first sent)"] == sent
    assert "dpo-anne: persons concerned told no -> yes" in row["history of the decisive fields"]
    assert "Sent, sent " + sent in printed
    assert "dpo-anne: persons concerned told" in printed


def register_breach(number: int) -> None:
    """A breach with its notification sent to two persons and two changes in its history."""
    breach = BreachFactory(reference=f"Fuite {number}", risk="high")
    contacts = [ContactFactory(), ContactFactory()]
    campaign = breach_notify_persons(breach=breach, contacts=[c.pk for c in contacts])
    started = timezone.now() - timedelta(minutes=30)
    Campaign.objects.filter(pk=campaign.pk).update(
        status=CampaignStatus.SENT, started_at=started, finished_at=started
    )
    for minutes, contact in enumerate(contacts, start=20):
        Recipient.objects.create(
            campaign=campaign,
            step=campaign.steps.get(),
            contact=contact,
            status=RecipientStatus.SENT,
            sent_at=timezone.now() - timedelta(minutes=minutes),
        )
    breach = Breach.objects.get(pk=breach.pk)
    breach_update(breach=breach, by="dpo-anne", persons_told=True)
    breach_update(breach=breach, by="dpo-anne", authority_reference=f"CNIL-{number}")


@pytest.mark.parametrize("url", [CSV, PRINT])
def test_the_register_costs_as_many_queries_for_ten_breaches_as_for_one(
    as_dpo: Client, django_assert_num_queries: Any, url: str
) -> None:
    register_breach(0)
    as_dpo.get(url)  # the session, the user, the site: read once before counting
    with CaptureQueriesContext(connection) as one:
        first = as_dpo.get(url)
    for number in range(1, 10):
        register_breach(number)

    with django_assert_num_queries(len(one.captured_queries)):
        response = as_dpo.get(url)

    assert first.status_code == response.status_code == 200
    content = html.unescape(response.content.decode())
    assert content.count("dpo-anne: persons concerned told no -> yes") == 10
    first_sent = date_format(
        timezone.localtime(Recipient.objects.order_by("sent_at").first().sent_at),
        "DATETIME_FORMAT",
    )
    assert first_sent in content
