"""The processor register (GDPR Art. 28, Chapter V): CRM connections and the email and SMS
providers appear by themselves; a transfer outside the EU/EEA needs its tool; what an entry
lacks is listed, and the list filter's query agrees with it."""

import base64
from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.utils import translation

from crmsync.connections import connection_create
from crmsync.models import Connection
from privacy.models import Processor
from privacy.registers import (
    checklist_ticks,
    processor_missing,
    processor_register_sync,
    processors_to_complete,
)
from tests.factories import ProcessorFactory

pytestmark = pytest.mark.django_db

CONSOLE_EMAIL = "django.core.mail.backends.console.EmailBackend"
SMTP_EMAIL = "django.core.mail.backends.smtp.EmailBackend"
MAILGUN = "anymail.backends.mailgun.EmailBackend"


def connection(name: str, kind: str, base_url: str = "http://127.0.0.1:9") -> Connection:
    credentials = (
        {"secret": "whsec_" + base64.b64encode(b"s" * 32).decode()}
        if kind == "webhook"
        else {"token": "t"}
    )
    return connection_create(name=name, kind=kind, base_url=base_url, credentials=credentials)


def found(key: str) -> Processor:
    return Processor.objects.get(system_key=key)


@override_settings(EMAIL_BACKEND=CONSOLE_EMAIL, SMS_URL="console://")
def test_every_crm_connection_appears_with_the_country_its_kind_tells() -> None:
    hubspot = connection("hubspot-eu", "hubspot")
    salesforce = connection("salesforce", "salesforce")
    webhook = connection("erp", "webhook", "https://erp.example.fr/hooks")

    processor_register_sync()

    assert (found(f"crm:{hubspot.pk}").name, found(f"crm:{hubspot.pk}").country) == (
        "HubSpot",
        "US",
    )
    assert found(f"crm:{salesforce.pk}").country == "US"
    unknown = found(f"crm:{webhook.pk}")
    assert (unknown.name, unknown.country, unknown.connection) == (
        "Webhook (erp.example.fr)",
        "",
        webhook,
    )
    assert unknown in Processor.objects.filter(processors_to_complete())


@override_settings(
    EMAIL_BACKEND=MAILGUN, SMS_URL="twilio://AC1:token@api.twilio.com/?from=+33600000000"
)
def test_the_email_and_sms_providers_come_from_the_settings() -> None:
    processor_register_sync()

    mailgun, twilio = found("esp:mailgun"), found("sms:twilio")
    assert (mailgun.name, mailgun.service, mailgun.country) == ("Mailgun", "email", "US")
    assert (twilio.name, twilio.service, twilio.country) == ("Twilio", "sms", "US")
    assert mailgun.outside_eu is True


@override_settings(EMAIL_BACKEND=SMTP_EMAIL, EMAIL_HOST="smtp.example.fr", SMS_URL="file:///tmp")
def test_an_smtp_server_is_listed_to_complete_and_a_local_sms_backend_is_no_processor() -> None:
    processor_register_sync()

    smtp = found("esp:smtp")
    assert (smtp.name, smtp.country, smtp.outside_eu) == ("SMTP (smtp.example.fr)", "", None)
    assert smtp in Processor.objects.filter(processors_to_complete())
    assert not Processor.objects.filter(service="sms").exists()


@override_settings(EMAIL_BACKEND=MAILGUN, SMS_URL="console://")
def test_the_sync_leaves_the_dpo_s_details_alone_and_creates_nothing_twice() -> None:
    processor_register_sync()
    Processor.objects.filter(system_key="esp:mailgun").update(
        name="Mailgun Technologies, Inc.", country="DE", dpa_signed_on=date(2026, 2, 1)
    )

    assert processor_register_sync() == 0

    mailgun = found("esp:mailgun")
    assert (mailgun.name, mailgun.country, mailgun.dpa_signed_on) == (
        "Mailgun Technologies, Inc.",
        "DE",
        date(2026, 2, 1),
    )


@override_settings(SMS_URL="console://")
def test_a_provider_no_longer_used_stays_as_a_record_not_in_use() -> None:
    with override_settings(EMAIL_BACKEND=MAILGUN):
        processor_register_sync()
    hand_made = ProcessorFactory(name="Imprimerie Dupont", service="print")

    with override_settings(EMAIL_BACKEND="anymail.backends.brevo.EmailBackend"):
        processor_register_sync()

    assert found("esp:mailgun").is_active is False
    assert (found("esp:brevo").name, found("esp:brevo").country) == ("Brevo", "FR")
    assert found("esp:brevo").is_active is True
    hand_made.refresh_from_db()
    assert hand_made.is_active is True


@override_settings(EMAIL_BACKEND=CONSOLE_EMAIL, SMS_URL="console://")
def test_a_deleted_connection_s_entry_is_kept_no_longer_in_use() -> None:
    crm = connection("hubspot-eu", "hubspot")
    key = f"crm:{crm.pk}"
    processor_register_sync()

    crm.delete()
    processor_register_sync()

    entry = found(key)
    assert (entry.connection, entry.is_active) == (None, False)


@pytest.mark.parametrize(
    ("country", "outside"), [("FR", False), ("NO", False), ("US", True), ("GB", True), ("", None)]
)
def test_outside_the_eu_is_told_by_the_country(country: str, outside: bool | None) -> None:
    assert Processor(country=country).outside_eu is outside


def test_outside_the_eu_without_a_transfer_tool_is_refused_on_its_field() -> None:
    processor = ProcessorFactory.build(country="US", transfer_tool="none")

    with pytest.raises(ValidationError) as refused, translation.override("en"):
        processor.full_clean()

    assert list(refused.value.message_dict) == ["transfer_tool"]
    assert "US is outside the EU/EEA" in refused.value.message_dict["transfer_tool"][0]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"country": "US", "transfer_tool": "dpf"}, "dpf_checked_on"),
        (
            {"country": "IN", "transfer_tool": "dpf", "dpf_checked_on": date(2026, 1, 5)},
            "transfer_tool",
        ),
        ({"country": "US", "transfer_tool": "scc"}, "transfer_assessment_on"),
        ({"country": "US", "transfer_tool": "adequacy"}, "transfer_tool"),
    ],
)
def test_a_transfer_tool_goes_with_its_date_and_its_countries(changes: dict, field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ProcessorFactory.build(**changes).full_clean()

    assert field in refused.value.message_dict


@pytest.mark.parametrize(
    "changes",
    [
        {"country": "FR"},
        {"country": "US", "transfer_tool": "dpf", "dpf_checked_on": date(2026, 1, 5)},
        {"country": "IN", "transfer_tool": "scc", "transfer_assessment_on": date(2026, 1, 5)},
        {"country": "GB", "transfer_tool": "adequacy"},
    ],
)
def test_a_transfer_with_its_tool_is_accepted(changes: dict) -> None:
    ProcessorFactory.build(**changes).full_clean()


def test_the_to_complete_filter_s_query_agrees_with_each_entry_s_list() -> None:
    entries = [
        ProcessorFactory(),
        ProcessorFactory(country=""),
        ProcessorFactory(dpa_signed_on=None),
        ProcessorFactory(end_of_contract=""),
        ProcessorFactory(risk=""),
        ProcessorFactory(clause_audits=False),
        ProcessorFactory(country="US"),  # as the sync creates it: no transfer tool yet
        ProcessorFactory(country="US", transfer_tool="dpf", dpf_checked_on=date(2026, 1, 5)),
        ProcessorFactory(country="NO"),
    ]

    by_query = set(Processor.objects.filter(processors_to_complete()).values_list("pk", flat=True))
    by_entry = {entry.pk for entry in entries if processor_missing(entry)}

    assert by_query == by_entry
    assert by_query == {entry.pk for entry in entries[1:7]}


def test_what_an_entry_lacks_is_said_in_words() -> None:
    processor = ProcessorFactory.build(country="US", dpa_signed_on=None, clause_audits=False)

    with translation.override("en"):
        missing = processor_missing(processor)

    assert missing == ["DPA signed on", "transfer tool", "1 clause of Art. 28(3)"]


def test_the_checklist_names_the_eight_clauses_of_article_28_3() -> None:
    processor = ProcessorFactory.build(clause_audits=False)

    with translation.override("en"):
        ticks = checklist_ticks(processor)

    assert len(ticks) == 8
    assert ticks[0] == ("acts only on our documented instructions (a)", True)
    assert ticks[-1] == ("gives us information and allows audits (h)", False)
