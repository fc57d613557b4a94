"""The register of processing activities (GDPR Art. 30(1)): one entry per purpose and per
activity of the product itself, whose purpose-owned values are read live, never copied."""

from datetime import date

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.utils import translation

from consent.models import LegalBasis, Purpose
from privacy.models import ActivityKind, ProcessingActivity
from privacy.registers import (
    activity_channels,
    activity_data_categories,
    activity_data_subjects,
    activity_description,
    activity_legal_basis,
    activity_recipients,
    activity_retention,
    activity_security_measures,
    activity_transfers,
    processing_register_sync,
)
from privacy.tasks import sync_registers
from tests.factories import ProcessorFactory, PurposeFactory

pytestmark = pytest.mark.django_db

BUILT_IN = {"rights_requests", "proof_archive", "audit_log", "crm_sync"}


def entry_of(purpose: object) -> ProcessingActivity:
    return ProcessingActivity.objects.select_related("purpose").get(purpose=purpose)


def test_the_sync_gives_each_purpose_and_each_activity_of_the_product_an_entry() -> None:
    newsletter, offers = PurposeFactory(), PurposeFactory()

    created = processing_register_sync()

    assert created == 6
    kinds = set(ProcessingActivity.objects.values_list("kind", flat=True))
    assert kinds == BUILT_IN | {"marketing"}
    assert {entry_of(p).purpose for p in (newsletter, offers)} == {newsletter, offers}


def test_running_the_sync_twice_creates_nothing_more() -> None:
    PurposeFactory()
    processing_register_sync()

    assert processing_register_sync() == 0
    assert ProcessingActivity.objects.count() == 5


def test_a_new_purpose_appears_at_the_next_run_of_the_daily_task() -> None:
    processing_register_sync()
    purpose = PurposeFactory(name_en="Partner offers")

    sync_registers()

    with translation.override("en"):
        assert entry_of(purpose).name == "Partner offers"


def test_a_renamed_purpose_shows_its_new_name_as_nothing_was_copied() -> None:
    purpose = PurposeFactory(name_fr="Lettre", name_en="Newsletter")
    processing_register_sync()

    purpose.name_fr, purpose.name_en = "Lettre mensuelle", "Monthly newsletter"
    purpose.save()

    entry = entry_of(purpose)
    with translation.override("fr"):
        assert entry.name == "Lettre mensuelle"
    with translation.override("en"):
        assert entry.name == "Monthly newsletter"
    assert (entry.name_fr, entry.name_en) == ("", "")


def test_legal_basis_channels_and_retention_follow_the_purpose() -> None:
    purpose = PurposeFactory(channels=["email"], retention_days=400)
    processing_register_sync()
    purpose.legal_basis = LegalBasis.LEGITIMATE_INTERESTS
    purpose.legitimate_interest_en = "Keeping our customers"
    purpose.channels = ["email", "sms"]
    purpose.retention_days = 730
    purpose.save()

    entry = entry_of(purpose)
    with translation.override("en"):
        assert activity_legal_basis(entry) == (
            "Legitimate interests (Art. 6(1)(f)): Keeping our customers"
        )
        assert activity_channels(entry) == "Email, SMS"
        assert activity_retention(entry).startswith("730 days after the last contact")
        assert "Email, SMS" in activity_data_categories(entry)


def test_a_purpose_without_its_own_period_shows_the_default_retention() -> None:
    purpose = PurposeFactory(retention_days=None)
    processing_register_sync()

    with translation.override("en"):
        shown = activity_retention(entry_of(purpose))

    assert shown.startswith(f"{settings.RETENTION_DEFAULT.days} days after the last contact")


def test_an_archived_purpose_s_entry_is_deactivated_and_comes_back_with_it() -> None:
    purpose = PurposeFactory()
    processing_register_sync()

    purpose.is_active = False
    purpose.save()
    processing_register_sync()
    assert entry_of(purpose).is_active is False

    purpose.is_active = True
    purpose.save()
    processing_register_sync()
    assert entry_of(purpose).is_active is True


def test_the_entry_of_a_removed_purpose_is_deactivated() -> None:
    # a purpose that never had a wording: the only kind that can be deleted
    purpose = Purpose.objects.create(slug="draft", name_fr="Brouillon", name_en="Draft")
    processing_register_sync()
    entry_id = entry_of(purpose).pk

    purpose.delete()
    processing_register_sync()

    entry = ProcessingActivity.objects.get(pk=entry_id)
    assert (entry.purpose, entry.is_active) == (None, False)


@override_settings(PROOF_RETENTION_YEARS=7)
def test_the_proof_archive_s_period_is_read_from_the_settings() -> None:
    processing_register_sync()
    archive = ProcessingActivity.objects.get(kind=ActivityKind.PROOF_ARCHIVE)
    archive.retention_note = "Paper forms: in the safe, same period."
    archive.save()

    with translation.override("en"):
        assert activity_retention(archive) == (
            "7 years after the person's erasure, then deleted with their ledger records.\n"
            "Paper forms: in the safe, same period."
        )


def test_the_activities_of_the_product_carry_french_and_english_defaults() -> None:
    processing_register_sync()
    requests = ProcessingActivity.objects.get(kind=ActivityKind.RIGHTS_REQUESTS)

    assert requests.legal_basis == LegalBasis.LEGAL_OBLIGATION
    with translation.override("fr"):
        assert requests.name == "Gestion des demandes d'exercice des droits"
        assert activity_data_subjects(requests).startswith("Personnes exerçant leurs droits")
    with translation.override("en"):
        assert requests.name == "Handling data-subject requests"
        assert activity_data_subjects(requests).startswith("People exercising their rights")


def test_the_dpo_s_text_replaces_the_default_and_the_purpose_s_description() -> None:
    purpose = PurposeFactory(description_en="Our monthly letter")
    processing_register_sync()
    entry = entry_of(purpose)

    with translation.override("en"):
        assert activity_description(entry) == "Our monthly letter"
        entry.description = "Sending the monthly letter and measuring its reading"
        entry.data_subjects = "Subscribers"
        assert activity_description(entry) == entry.description
        assert activity_data_subjects(entry) == "Subscribers"


def test_the_product_s_security_measures_come_first_then_the_dpo_s() -> None:
    processing_register_sync()
    audit = ProcessingActivity.objects.get(kind=ActivityKind.AUDIT_LOG)
    audit.security_measures = "Badge access to the offices."

    with translation.override("en"):
        shown = activity_security_measures(audit)

    assert "HMAC" in shown and "sealed consent ledger" in shown and "TOTP" in shown
    assert "CRM credentials" in shown and "audit log" in shown
    assert shown.endswith("\nBadge access to the offices.")


def test_recipients_and_transfers_list_the_register_s_processors_live() -> None:
    purpose = PurposeFactory()
    processing_register_sync()
    ProcessorFactory(name="OVHcloud", service="hosting", country="FR")
    ProcessorFactory(
        name="Mailgun",
        service="email",
        country="US",
        transfer_tool="dpf",
        dpf_checked_on=date(2026, 10, 1),
    )
    ProcessorFactory(name="Old mailer", service="email", country="US", is_active=False)
    entry = entry_of(purpose)
    audit = ProcessingActivity.objects.get(kind=ActivityKind.AUDIT_LOG)

    with translation.override("en"):
        recipients = activity_recipients(entry)
        transfers = activity_transfers(entry)
        audit_transfers = activity_transfers(audit)

    assert "OVHcloud (processor, Hosting)" in recipients
    assert "Mailgun (processor, Emailing (ESP))" in recipients
    assert "Old mailer" not in recipients
    assert transfers == (
        "Mailgun (US): EU-US Data Privacy Framework, certification checked on Oct. 1, 2026"
    )
    # the audit log stays on the hosting: no transfer
    assert audit_transfers == "None known: every processor is in the EU/EEA."


def test_a_processor_of_unknown_country_is_not_taken_for_one_in_the_eu() -> None:
    processing_register_sync()
    ProcessorFactory(name="SMTP (mail.example.net)", service="email", country="")
    requests = ProcessingActivity.objects.get(kind=ActivityKind.RIGHTS_REQUESTS)

    with translation.override("en"):
        assert activity_transfers(requests) == (
            "SMTP (mail.example.net): country unknown (to complete)"
        )


def test_a_marketing_entry_names_its_purpose_and_any_other_names_itself() -> None:
    with pytest.raises(ValidationError) as no_purpose:
        ProcessingActivity(kind=ActivityKind.MARKETING).full_clean()
    with pytest.raises(ValidationError) as no_name:
        ProcessingActivity(kind=ActivityKind.OTHER, name_fr="Jeux concours").full_clean()

    assert "purpose" in no_purpose.value.message_dict
    assert "name_fr" in no_name.value.message_dict
    ProcessingActivity(
        kind=ActivityKind.OTHER, name_fr="Jeux concours", name_en="Prize draws"
    ).full_clean()


def test_the_activities_of_the_product_have_one_entry_each() -> None:
    processing_register_sync()

    with pytest.raises(ValidationError):
        ProcessingActivity(
            kind=ActivityKind.AUDIT_LOG, name_fr="Journal", name_en="Log"
        ).full_clean()
