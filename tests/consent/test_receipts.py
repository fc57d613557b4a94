"""Receipts (issue 12, point 8; ISO/IEC TS 27560): the actual consent type, who acted, the
second-hand flag, the data categories and the rights; the person downloads all of theirs from
the preference center."""

import json

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from consent.models import LegalBasis
from consent.selectors import consent_receipt, contact_consent_receipts
from consent.services import Evidence
from preferences.services import preference_token_issue
from tests.factories import ContactFactory, PurposeFactory, grant
from tests.statements import at_most_statements

pytestmark = pytest.mark.django_db


def test_an_explicit_consent_by_the_person_first_hand():
    contact = ContactFactory(first_name="Léa", phone="+33612345678", company="", job_title="")
    receipt = consent_receipt(grant(contact, PurposeFactory()))

    assert receipt["processing"]["purposes"][0]["consent_type"] == "explicit"
    assert receipt["event"]["actor"] == "person"
    assert receipt["event"]["second_hand"] is False
    assert receipt["event"]["collection_reference"] == "https://example.fr/newsletter"
    assert {"identity", "contact_details"} <= set(receipt["processing"]["data_categories"])
    assert "professional" not in receipt["processing"]["data_categories"]


def test_the_types_of_a_legitimate_interest_grant_and_objection():
    purpose = PurposeFactory(legal_basis=LegalBasis.LEGITIMATE_INTERESTS, similar_products=True)
    plain = PurposeFactory(legal_basis=LegalBasis.LEGITIMATE_INTERESTS, channels=["postal"])
    contact = ContactFactory()

    soft = consent_receipt(grant(contact, purpose))
    objection = consent_receipt(grant(contact, purpose, action="withdraw", evidence=None))
    told = consent_receipt(grant(contact, plain, channel="postal"))

    assert soft["processing"]["purposes"][0]["consent_type"] == "soft_opt_in"
    assert told["processing"]["purposes"][0]["consent_type"] == "legitimate_interest"
    assert objection["processing"]["purposes"][0]["consent_type"] == (
        "objection_to_legitimate_interest"
    )
    assert objection["event"]["event_type"] == "withdrawn"


def test_a_guardians_consent_is_typed_and_names_who_acted():
    record = grant(
        ContactFactory(birth_year=timezone.now().year - 12, country="FR"),
        PurposeFactory(),
        actor="person_and_guardian",
        evidence=Evidence(
            wording="J'accepte.",
            unticked_by_default=True,
            guardian_name="Alex Martin",
            guardian_contact="parent@example.fr",
        ),
    )

    receipt = consent_receipt(record)

    assert receipt["processing"]["purposes"][0]["consent_type"] == "guardian"
    assert receipt["event"]["actor"] == "person_and_guardian"
    assert "age" in receipt["processing"]["data_categories"]
    # the guardian's details are personal evidence: never in a receipt
    assert "Alex Martin" not in json.dumps(receipt)


def test_staff_acting_for_the_person_is_named():
    record = grant(ContactFactory(), PurposeFactory(), action="withdraw", source_kind="admin")

    assert consent_receipt(record)["event"]["actor"] == "staff"


def test_the_receipt_gives_the_rights_without_the_persons_private_link(settings):
    settings.DPO_CONTACT = "dpo@marque.fr"
    receipt = consent_receipt(grant(ContactFactory(), PurposeFactory()))

    rights = receipt["rights"]
    assert rights["dpo_contact"] == "dpo@marque.fr"
    assert rights["complaint"]["authority"] == "CNIL"
    assert "erasure" in rights["rights"]
    assert "/p/" not in json.dumps(receipt)


def test_the_person_downloads_every_receipt_from_the_preference_center():
    contact = ContactFactory(email="lea@example.fr")
    purpose = PurposeFactory()
    first = grant(contact, purpose)
    second = grant(contact, purpose, action="withdraw", evidence=None)
    token = preference_token_issue(contact=contact)
    client = Client()

    page = client.get(reverse("preferences:center", args=[token]))
    response = client.get(reverse("preferences:receipts", args=[token]))

    assert 'href="receipts/' in page.content.decode()
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Cache-Control"] == "no-store"
    receipts = response.json()["receipts"]
    assert [r["record_id"] for r in receipts] == [str(first.uuid), str(second.uuid)]
    assert "lea@example.fr" not in response.content.decode()


def test_an_unknown_token_gets_no_receipts():
    response = Client().get(reverse("preferences:receipts", args=["not-a-token"]))

    assert response.status_code == 404


def test_the_receipt_names_the_recipients_and_their_jurisdictions(settings):
    settings.DATA_RECIPIENTS = [
        {"name": "Hébergeur", "role": "hosting", "country": "FR", "outside_eu": False},
        {
            "name": "Mailer Inc.",
            "role": "email delivery",
            "country": "US",
            "outside_eu": True,
            "safeguard": "EU-US Data Privacy Framework",
        },
    ]

    receipt = consent_receipt(grant(ContactFactory(), PurposeFactory()))

    assert receipt["processing"]["recipients"] == [
        {
            "name": "Hébergeur",
            "role": "hosting",
            "jurisdiction": "FR",
            "outside_eu": False,
            "safeguard": "",
        },
        {
            "name": "Mailer Inc.",
            "role": "email delivery",
            "jurisdiction": "US",
            "outside_eu": True,
            "safeguard": "EU-US Data Privacy Framework",
        },
    ]


def test_all_of_a_persons_receipts_cost_the_same_reads_however_many_records():
    contact = ContactFactory()
    for number in range(12):
        evidence = Evidence(
            wording="J'accepte.", unticked_by_default=True, policy_version=f"2026-{number:02}"
        )
        grant(contact, PurposeFactory(), evidence=evidence)

    # the categories, the records, and the stored notice versions they name: one read each
    with at_most_statements(3):
        receipts = contact_consent_receipts(contact)

    assert len(receipts) == 12
    assert {r["privacy_notice"]["status"] for r in receipts} == {"unknown"}
