"""The access export holds everything the contact row holds (GDPR Art. 15)."""

import json

import pytest

from contacts.models import SUPPRESSION_DIGEST_FIELDS, Contact
from privacy.exports import personal_data_json
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def test_every_field_of_the_contact_is_in_the_export() -> None:
    # a field added to Contact later must be added to the export too; only the keys and the
    # suppression digests (our HMAC secrets' output) stay out
    held = {field.name for field in Contact._meta.concrete_fields} - {
        "id",
        "public_id",
        *SUPPRESSION_DIGEST_FIELDS,
    }

    exported = json.loads(personal_data_json(ContactFactory()))["contact"]

    assert held <= set(exported), sorted(held - set(exported))
    assert "public_id" not in exported  # given as "id": the database key never leaves
    assert not set(SUPPRESSION_DIGEST_FIELDS) & set(exported)


def test_the_export_names_the_crm_records_and_the_guardians_consent() -> None:
    contact = ContactFactory(hubspot_id="hs-42", guardian_consent_evidence="Signed by the father")

    data = json.loads(personal_data_json(contact))["contact"]

    assert data["hubspot_id"] == "hs-42"
    assert data["guardian_consent_evidence"] == "Signed by the father"
