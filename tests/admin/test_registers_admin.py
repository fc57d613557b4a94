"""The registers in the admin (GDPR Art. 28, 30): kept in step when their list opens, exported
as CSV and printed with the changelist's filter, each export in the audit log; the processor
form refuses a transfer without its tool; marketers read the Art. 30 register only."""

import csv
import io
from datetime import date
from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.models import AuditAction, AuditEvent
from privacy.models import ActivityKind, ProcessingActivity, Processor
from privacy.registers import processing_register_sync
from tests.admin.forms import submitted_form
from tests.factories import ProcessorFactory, PurposeFactory

pytestmark = pytest.mark.django_db

ACTIVITIES = reverse("admin:privacy_processingactivity_changelist")
ACTIVITIES_CSV = reverse("admin:privacy_processingactivity_register_csv")
ACTIVITIES_PRINT = reverse("admin:privacy_processingactivity_register_print")
PROCESSORS = reverse("admin:privacy_processor_changelist")
PROCESSORS_CSV = reverse("admin:privacy_processor_register_csv")
PROCESSORS_PRINT = reverse("admin:privacy_processor_register_print")
ADD_PROCESSOR = reverse("admin:privacy_processor_add")
CONTROLLER = {
    "CONTROLLER_NAME": "Exemple SAS",
    "CONTROLLER_ADDRESS": "3 rue Lafayette, 75009 Paris",
    "DPO_CONTACT": "dpo@exemple.fr",
}


def csv_rows(response: object) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def exports() -> list[dict]:
    return [e.details for e in AuditEvent.objects.filter(action=AuditAction.EXPORT).order_by("id")]


def test_opening_the_register_adds_a_new_purpose_and_shows_a_renamed_one(as_dpo: Client) -> None:
    purpose = PurposeFactory(name_en="Newsletter")
    as_dpo.get(ACTIVITIES)
    purpose.name_en = "Monthly newsletter"
    purpose.save()
    offers = PurposeFactory(name_en="Partner offers")

    page = as_dpo.get(ACTIVITIES).content.decode()

    assert ProcessingActivity.objects.filter(purpose=offers).exists()
    assert "Monthly newsletter" in page and "Partner offers" in page
    assert "Handling data-subject requests" in page and "Audit log of staff access" in page


@override_settings(**CONTROLLER)
def test_the_register_names_the_controller_and_its_dpo_on_the_list(as_dpo: Client) -> None:
    page = as_dpo.get(ACTIVITIES).content.decode()

    assert "Exemple SAS" in page and "3 rue Lafayette, 75009 Paris" in page
    assert "dpo@exemple.fr" in page


@override_settings(**CONTROLLER)
def test_the_csv_export_holds_the_filtered_entries_with_the_controller(as_dpo: Client) -> None:
    PurposeFactory(name_en="Newsletter", channels=["email"])
    as_dpo.get(ACTIVITIES)

    response = as_dpo.get(ACTIVITIES_CSV, {"kind__exact": "marketing"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="processingactivity-')
    rows = csv_rows(response)
    assert [row["name"] for row in rows] == ["Newsletter"]
    (row,) = rows
    assert row["legal basis"] == "Consent (Art. 6(1)(a))"
    assert row["channels"] == "Email"
    assert row["controller"] == "Exemple SAS\n3 rue Lafayette, 75009 Paris"
    assert row["data protection officer"] == "dpo@exemple.fr"
    assert "HMAC" in row["security measures"]
    assert row["active"] == "yes"
    assert exports() == [{"export": "register:privacy.processingactivity", "format": "csv"}]


@override_settings(**CONTROLLER)
def test_the_printable_page_honours_the_filter_and_heads_with_the_controller(
    as_dpo: Client,
) -> None:
    PurposeFactory(name_en="Newsletter")
    as_dpo.get(ACTIVITIES)

    response = as_dpo.get(ACTIVITIES_PRINT, {"kind__exact": "proof_archive"})

    page = response.content.decode()
    assert response.status_code == 200
    assert "Archive of consent proofs" in page
    assert "Newsletter" not in page and "Audit log of staff access" not in page
    assert "Exemple SAS" in page and "dpo@exemple.fr" in page
    assert "1 entry, printed on" in page
    assert exports() == [{"export": "register:privacy.processingactivity", "format": "print"}]


def test_the_dpo_s_additions_are_stored_and_shown(as_dpo: Client) -> None:
    as_dpo.get(ACTIVITIES)
    audit = ProcessingActivity.objects.get(kind=ActivityKind.AUDIT_LOG)
    url = reverse("admin:privacy_processingactivity_change", args=[audit.pk])

    response = as_dpo.post(
        url, submitted_form(as_dpo.get(url), retention_note="Kept one year, then deleted.")
    )

    assert response.status_code == 302
    audit.refresh_from_db()
    assert audit.retention_note == "Kept one year, then deleted."
    row = csv_rows(as_dpo.get(ACTIVITIES_CSV, {"kind__exact": "audit_log"}))[0]
    assert row["retention"] == "Kept one year, then deleted."


@override_settings(EMAIL_BACKEND="anymail.backends.mailgun.EmailBackend", SMS_URL="console://")
def test_opening_the_processor_register_lists_the_esp_to_complete(as_dpo: Client) -> None:
    ProcessorFactory(name="OVHcloud")

    page = as_dpo.get(PROCESSORS, {"to_complete": "yes"}).content.decode()

    assert "Mailgun" in page and "US, outside the EU" in page
    assert "OVHcloud" not in page
    assert Processor.objects.get(system_key="esp:mailgun").service == "email"


@override_settings(EMAIL_BACKEND="anymail.backends.mailgun.EmailBackend", SMS_URL="console://")
def test_the_processor_csv_and_print_honour_the_to_complete_filter(as_dpo: Client) -> None:
    ProcessorFactory(name="OVHcloud", hosting_region="Gravelines (FR)", clause_audits=False)
    ProcessorFactory(name="Scaleway")
    as_dpo.get(PROCESSORS)

    rows = csv_rows(as_dpo.get(PROCESSORS_CSV, {"to_complete": "yes"}))
    page = as_dpo.get(PROCESSORS_PRINT, {"to_complete": "yes"}).content.decode()

    assert [row["name"] for row in rows] == ["Mailgun", "OVHcloud"]
    ovh = rows[1]
    assert ovh["outside the EU/EEA"] == "no"
    assert ovh["hosting region"] == "Gravelines (FR)"
    assert ovh["to complete"] == "1 clause of Art. 28(3)"
    assert ovh["in use"] == "yes"
    assert "\u2717 gives us information and allows audits (h)" in ovh["checklist (Art. 28(3))"]
    assert "\u2713 acts only on our documented instructions (a)" in ovh["checklist (Art. 28(3))"]
    assert "OVHcloud" in page and "Mailgun" in page and "Scaleway" not in page
    assert [e["format"] for e in exports()] == ["csv", "print"]


def processor_form(client: Client, **changes: object) -> dict:
    return submitted_form(
        client.get(ADD_PROCESSOR),
        name="Acme Mail",
        service="email",
        dpa_signed_on="2026-03-02",
        **changes,
    )


def test_a_processor_outside_the_eu_without_a_transfer_tool_is_refused(as_dpo: Client) -> None:
    response = as_dpo.post(ADD_PROCESSOR, processor_form(as_dpo, country="us"))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["transfer_tool"]
    assert "US is outside the EU/EEA" in errors["transfer_tool"][0]
    assert not Processor.objects.exists()


def test_a_processor_under_the_privacy_framework_is_saved(as_dpo: Client) -> None:
    data = processor_form(as_dpo, country="us", transfer_tool="dpf", dpf_checked_on="2026-10-01")

    response = as_dpo.post(ADD_PROCESSOR, data)

    assert response.status_code == 302
    saved = Processor.objects.get()
    assert (saved.country, saved.transfer_tool, saved.dpf_checked_on) == (
        "US",
        "dpf",
        date(2026, 10, 1),
    )


def test_a_marketer_reads_the_register_of_activities_but_not_the_processors(
    as_marketer: Client,
) -> None:
    processor = ProcessorFactory()
    processing_register_sync()  # the daily job's work; a reader's visit writes nothing
    activity = ProcessingActivity.objects.get(kind=ActivityKind.CRM_SYNC)
    activity_url = reverse("admin:privacy_processingactivity_change", args=[activity.pk])
    processor_url = reverse("admin:privacy_processor_change", args=[processor.pk])

    assert as_marketer.get(ACTIVITIES).status_code == 200
    assert as_marketer.get(ACTIVITIES_CSV).status_code == 200
    assert as_marketer.post(activity_url, {"recipients": "Everyone"}).status_code == 403
    assert as_marketer.get(PROCESSORS).status_code == 403
    assert as_marketer.get(PROCESSORS_CSV).status_code == 403
    assert as_marketer.post(processor_url, {"name": "Renamed"}).status_code == 403
    processor.refresh_from_db()
    assert processor.name != "Renamed"


def test_a_reader_s_visit_writes_nothing_the_keeper_s_brings_the_register_in_step(
    as_marketer: Client, as_dpo: Client
) -> None:
    PurposeFactory(name_en="Newsletter")

    assert as_marketer.get(ACTIVITIES).status_code == 200
    assert not ProcessingActivity.objects.exists()

    assert as_dpo.get(ACTIVITIES).status_code == 200
    assert ProcessingActivity.objects.filter(kind=ActivityKind.MARKETING).count() == 1


def test_a_purpose_s_entry_takes_the_dpo_s_text_but_keeps_the_purpose_s_name(
    as_dpo: Client,
) -> None:
    purpose = PurposeFactory(name_en="Newsletter")
    as_dpo.get(ACTIVITIES)
    entry = ProcessingActivity.objects.get(purpose=purpose)
    url = reverse("admin:privacy_processingactivity_change", args=[entry.pk])
    form = submitted_form(as_dpo.get(url), description="Our monthly letter, and its reading")

    assert "name_en" not in form and "legal_basis" not in form
    assert as_dpo.post(url, form).status_code == 302
    row = csv_rows(as_dpo.get(ACTIVITIES_CSV, {"kind__exact": "marketing"}))[0]
    assert (row["name"], row["purposes of the processing"]) == (
        "Newsletter",
        "Our monthly letter, and its reading",
    )


def test_the_exported_register_reads_the_processors_once_however_many_activities(
    as_dpo: Client, django_assert_num_queries: Any
) -> None:
    ProcessorFactory()
    PurposeFactory()
    processing_register_sync()
    as_dpo.get(ACTIVITIES_CSV)
    with CaptureQueriesContext(connection) as few:
        as_dpo.get(ACTIVITIES_CSV)
    for _ in range(5):
        PurposeFactory()
    processing_register_sync()

    with django_assert_num_queries(len(few.captured_queries)):
        response = as_dpo.get(ACTIVITIES_CSV)

    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert len(rows) == 1 + ProcessingActivity.objects.count()


def test_the_exported_processor_register_costs_the_same_however_many_processors(
    as_dpo: Client, django_assert_num_queries: Any
) -> None:
    ProcessorFactory()
    as_dpo.get(PROCESSORS_CSV)
    with CaptureQueriesContext(connection) as few:
        as_dpo.get(PROCESSORS_CSV)
    ProcessorFactory.create_batch(5)

    with django_assert_num_queries(len(few.captured_queries)):
        response = as_dpo.get(PROCESSORS_CSV)

    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert len(rows) == 1 + Processor.objects.count()
