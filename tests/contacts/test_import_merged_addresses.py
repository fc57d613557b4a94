"""An import never writes onto a contact merged into another one: its line is rejected with
a reason a person can act on, and the other lines are loaded."""

import pytest

from consent.models import ConsentRecord
from privacy.merge import contact_merge
from tests.contacts.imports import csv_bytes, rejected, run_import
from tests.factories import ContactFactory, PurposeFactory

pytestmark = pytest.mark.django_db

WORDING = "Je souhaite recevoir la lettre d'information."


def test_a_line_for_an_address_merged_into_another_contact_is_rejected_and_the_rest_loaded():
    purpose = PurposeFactory(channels=["email"])
    survivor = ContactFactory(email="camille@example.fr")
    merged = ContactFactory(email="c.martin@work.example", first_name="")
    contact_merge(survivor=survivor, merged=merged, actor="dpo")
    lines = [
        "email,first_name,consent_date",
        "c.martin@work.example,Camille,2025-03-01",
        "new@example.fr,Bob,2025-03-01",
    ]

    done = run_import(
        csv_bytes(lines),
        consent={
            "purpose": purpose.slug,
            "channel": "email",
            "wording": WORDING,
            "source_reference": "salon",
            "given_at_column": "consent_date",
        },
    )

    merged.refresh_from_db()
    assert merged.first_name == ""  # nothing written onto the merged row
    [(line, reason)] = rejected(done)
    assert line == 2
    assert "merged into another one" in reason
    assert not reason.startswith("[")  # a sentence, not an exception's repr
    assert ConsentRecord.objects.filter(contact__email="new@example.fr").count() == 1
