"""The access answer in full (GDPR Art. 15(1)(a)-(h), EDPB Guidelines 01/2022): besides the
data, the purposes and their legal bases, the recipients (the processors declared, and the
CRMs and providers this person's data actually went to), retention, sources, the rights and
how to exercise them, and the right to complain to the CNIL."""

import csv
import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.utils import timezone

from consent.models import LegalBasis, MessageSent
from core.recipients import data_recipients
from privacy.exports import personal_data_csv_zip, personal_data_json
from tests.factories import (
    ApiClientFactory,
    ContactFactory,
    OutboxEventFactory,
    PrivacyNoticeFactory,
    PurposeFactory,
    grant,
)

pytestmark = pytest.mark.django_db

PROCESSORS = [
    {"name": "OVHcloud", "role": "hosting", "country": "FR", "outside_eu": False},
    {
        "name": "Mailgun",
        "role": "email delivery",
        "country": "US",
        "outside_eu": True,
        "safeguard": "EU-US Data Privacy Framework",
    },
]


@pytest.fixture
def camille(settings):
    settings.DATA_RECIPIENTS = PROCESSORS
    PrivacyNoticeFactory(version="2026-01", url="https://www.example.fr/confidentialite")
    return ContactFactory(email="camille@example.fr", language="en", source="salon-lyon-2026")


@pytest.fixture
def newsletter():
    return PurposeFactory(slug="newsletter", retention_days=730, channels=["email"])


@pytest.fixture
def customer_news():
    return PurposeFactory(slug="customer-news", legal_basis=LegalBasis.LEGITIMATE_INTERESTS)


def answer(contact) -> dict:
    return json.loads(personal_data_json(contact))


def test_the_answer_names_the_controller_its_dpo_and_the_notice(camille, settings):
    controller = answer(camille)["controller"]

    assert controller == {
        "name": settings.CONTROLLER_NAME,
        "address": settings.CONTROLLER_ADDRESS,
        "dpo_contact": settings.DPO_CONTACT,
        "privacy_notice": "https://www.example.fr/confidentialite",
    }


def test_purposes_come_with_their_legal_basis_and_the_interest_pursued(
    camille, newsletter, customer_news
):
    PurposeFactory(slug="unrelated-consent")  # a consent purpose this person never met
    grant(camille, newsletter)

    purposes = {row["purpose"]: row for row in answer(camille)["purposes"]}

    assert set(purposes) == {"newsletter", "customer-news"}
    assert purposes["newsletter"]["legal_basis"] == "consent"
    assert purposes["newsletter"]["legitimate_interest"] == ""
    assert purposes["customer-news"]["legal_basis"] == "legitimate_interests"
    assert purposes["customer-news"]["legitimate_interest"] == "Keeping our customers"


def test_recipients_are_the_processors_and_where_the_data_actually_went(camille):
    OutboxEventFactory(contact=camille, processed_at=timezone.now() - timedelta(days=3))
    OutboxEventFactory(contact=camille, processed_at=timezone.now())
    OutboxEventFactory(contact=camille)  # not delivered yet: not counted
    OutboxEventFactory(contact=ContactFactory(), processed_at=timezone.now())  # someone else
    ApiClientFactory(name="crm-bridge", scopes=["contacts:read"])
    ApiClientFactory(name="web-form", scopes=["consents:write"])
    newsletter = PurposeFactory(slug="newsletter")
    for _ in range(2):
        MessageSent.objects.create(contact=camille, purpose=newsletter, channel="email")

    recipients = answer(camille)["recipients"]

    processors = [row for row in recipients if row["kind"] == "processor"]
    assert [(row["name"], row["country"], row["outside_eu"]) for row in processors] == [
        ("OVHcloud", "FR", False),
        ("Mailgun", "US", True),
    ]
    assert processors[1]["safeguard"] == "EU-US Data Privacy Framework"
    sent = [row["sent"] for row in recipients if row["kind"] == "sent_to"]
    assert sent == ["2 changes delivered", "crm-bridge", "2 marketing messages"]


def test_retention_per_purpose_and_for_prospects_and_customers(camille, newsletter, settings):
    grant(camille, newsletter)

    retention = {row["applies_to"]: row for row in answer(camille)["retention"]}

    assert retention["newsletter"]["period_days"] == 730
    assert retention["prospect"]["period_days"] == settings.RETENTION_DEFAULT.days
    assert "3 years after the last contact" in retention["prospect"]["rule"]
    assert "3 years after the end of the contract" in retention["customer"]["rule"]
    assert "suppression" in retention
    assert retention["opted_out_prospect"]["period_days"] == settings.RETENTION_OPT_OUT_GRACE.days
    assert retention["proof"]["period_days"] == settings.PROOF_RETENTION_YEARS * 365
    assert f"{settings.PROOF_RETENTION_YEARS} years" in retention["proof"]["rule"]


def test_sources_are_the_contact_s_and_each_consent_s(camille, newsletter):
    grant(camille, newsletter, source_reference="https://www.example.fr/newsletter")
    grant(camille, newsletter, source_kind="import", source_reference="salon-lyon.csv")

    sources = [(row["what"], row["source"], row["reference"]) for row in answer(camille)["sources"]]

    assert sources == [
        ("contact", "salon-lyon-2026", ""),
        ("consent", "web_form", "https://www.example.fr/newsletter"),
        ("consent", "import", "salon-lyon.csv"),
    ]


def test_every_right_is_listed_with_how_to_exercise_it_and_the_cnil(camille, settings):
    data = answer(camille)

    rights = {row["right"]: row for row in data["rights"]}
    assert set(rights) == {
        "access",
        "rectification",
        "erasure",
        "restriction",
        "objection",
        "portability",
        "withdraw_consent",
    }
    assert all(settings.DPO_CONTACT in row["how"] for row in rights.values())
    assert data["complaint"]["authority"] == "CNIL"
    assert data["complaint"]["url"] == "https://www.cnil.fr/fr/plaintes"


def test_the_csv_archive_holds_the_same_information(camille, newsletter):
    grant(camille, newsletter)

    archive = zipfile.ZipFile(io.BytesIO(personal_data_csv_zip(camille)))

    def rows(name: str) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(archive.read(name).decode())))

    assert [row["name"] for row in rows("recipients.csv")] == ["OVHcloud", "Mailgun"]
    assert [row["purpose"] for row in rows("purposes.csv")] == ["newsletter"]
    assert len(rows("rights.csv")) == 7
    assert rows("complaint.csv")[0]["authority"] == "CNIL"


def test_the_recipients_registry_is_a_function_others_can_call(settings):
    settings.DATA_RECIPIENTS = PROCESSORS

    assert data_recipients()[1] == {
        "name": "Mailgun",
        "role": "email delivery",
        "country": "US",
        "outside_eu": True,
        "safeguard": "EU-US Data Privacy Framework",
    }
