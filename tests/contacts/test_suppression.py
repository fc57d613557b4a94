import pytest
from django.core.exceptions import ValidationError
from django.forms.models import model_to_dict

from consent.models import ConsentRecord, ConsentState
from consent.services import Evidence
from contacts.models import Contact, Suppression
from contacts.normalization import suppression_digest
from contacts.selectors import suppression_reason
from contacts.services import contact_update, contact_upsert, suppression_add
from tests.factories import ContactFactory, EvidenceFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db


def test_suppression_stores_only_an_hmac_digest_of_the_address():
    suppression_add(reason="complaint", email=" Camille@Example.FR", phone="06 12 34 56 78")

    rows = list(Suppression.objects.all())
    assert len(rows) == 2
    for row in rows:
        values = " ".join(str(value) for value in model_to_dict(row).values()).lower()
        assert "camille" not in values and "example" not in values
        assert "0612345678" not in values and "33612345678" not in values
    assert {row.digest for row in rows} == {
        suppression_digest("email", "camille@example.fr"),
        suppression_digest("phone", "+33612345678"),
    }
    assert all(len(row.digest) == 64 for row in rows)


def test_suppression_is_found_whatever_the_case_or_spacing_of_the_address():
    suppression_add(reason="hard_bounce", email="camille@example.fr")

    assert suppression_reason(kind="email", value="  CAMILLE@example.FR") == "hard_bounce"
    assert suppression_reason(kind="email", value="someone.else@example.fr") is None


def test_a_suppression_kind_outside_the_list_is_refused_rather_than_read_as_a_phone():
    suppression_add(reason="hard_bounce", email="camille@example.fr")

    with pytest.raises(ValueError, match="emial"):
        suppression_reason(kind="emial", value="camille@example.fr")


def test_suppressing_the_same_address_twice_keeps_one_row_with_the_latest_reason():
    suppression_add(reason="hard_bounce", email="camille@example.fr")
    suppression_add(reason="global_unsubscribe", email="Camille@example.fr")

    assert list(Suppression.objects.values_list("reason", flat=True)) == ["global_unsubscribe"]


def test_upsert_refuses_a_suppressed_email_on_email():
    suppression_add(reason="erased", email="camille@example.fr")

    with pytest.raises(ValidationError) as error:
        contact_upsert(email="Camille@Example.fr", fields={"first_name": "Camille"})

    assert list(error.value.message_dict) == ["email"]
    assert not Contact.objects.exists()


def test_upsert_refuses_a_suppressed_phone_on_phone():
    suppression_add(reason="complaint", phone="+33612345678")

    with pytest.raises(ValidationError) as error:
        contact_upsert(email="camille@example.fr", fields={"phone": "06 12 34 56 78"})

    assert list(error.value.message_dict) == ["phone"]


def test_upsert_never_creates_a_contact_for_a_suppressed_email():
    # It used to accept one when the caller said the request carried explicit consent; only
    # the person's confirmed act (consent.services.signups) brings them back now.
    suppression_add(reason="global_unsubscribe", email="camille@example.fr")

    with pytest.raises(ValidationError) as error:
        contact_upsert(email="Camille@example.fr")

    assert list(error.value.message_dict) == ["email"]
    assert not Contact.objects.exists()


def test_email_change_to_a_suppressed_address_is_refused():
    suppression_add(reason="erased", email="old.person@example.fr")
    contact = ContactFactory()

    with pytest.raises(ValidationError) as error:
        contact_update(contact=contact, email="old.person@example.fr")

    assert list(error.value.message_dict) == ["email"]


@pytest.mark.parametrize("source_kind", ["import", "crm"])
def test_list_grant_for_a_suppressed_contact_is_refused(source_kind):
    contact, purpose = ContactFactory(), PurposeFactory()
    suppression_add(reason="global_unsubscribe", email=contact.email)

    with pytest.raises(ValidationError) as error:
        grant(contact, purpose, source_kind=source_kind, evidence=EvidenceFactory(purpose=purpose))

    assert list(error.value.message_dict) == ["email"]
    assert not ConsentRecord.objects.exists()
    assert not ConsentState.objects.exists()
    assert suppression_reason(kind="email", value=contact.email) == "global_unsubscribe"


@pytest.mark.parametrize("source_kind", ["web_form", "api", "admin"])
def test_a_grant_claimed_for_a_suppressed_contact_stays_pending_and_lifts_nothing(source_kind):
    # A web-form grant used to lift the suppression at once; anyone can claim that source.
    contact, purpose = ContactFactory(), PurposeFactory()
    suppression_add(reason="global_unsubscribe", email=contact.email)

    record = grant(contact, purpose, source_kind=source_kind)

    assert record.status == "pending"
    assert suppression_reason(kind="email", value=contact.email) == "global_unsubscribe"
    assert ConsentState.objects.get(contact=contact).status == "pending"


def test_withdrawal_for_a_suppressed_contact_is_still_recorded():
    contact, purpose = ContactFactory(), PurposeFactory()
    grant(contact, purpose)
    suppression_add(reason="complaint", email=contact.email)

    grant(contact, purpose, action="withdraw", source_kind="crm", evidence=Evidence())

    assert ConsentState.objects.get(contact=contact).status == "withdrawn"
    assert suppression_reason(kind="email", value=contact.email) == "complaint"
