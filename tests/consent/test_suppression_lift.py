"""Only the person's own confirmed act lifts a suppression (SPEC §3, security): the link
emailed to the address, or a change in the preference center. A pending grant lifts nothing
until confirmed; an expired one never does; one email a day at most."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.utils import timezone
from freezegun import freeze_time

from consent.eligibility import contact_eligibility
from consent.models import ConsentRecord, ConsentState
from consent.services import (
    Evidence,
    confirmation_token,
    confirmation_token_read,
    consent_confirm,
    double_opt_in_send,
    pending_grants_expire,
)
from consent.services.signups import (
    signup_confirm,
    signup_confirmation_queue,
    signup_confirmation_send,
    signup_grant_prepare,
    signup_token_read,
)
from contacts.models import Contact
from contacts.selectors import suppression_reason
from contacts.services import suppression_add
from tests.factories import ContactFactory, EvidenceFactory, PurposeFactory, grant


def confirm_by_link(contact: Contact, record: ConsentRecord) -> list[ConsentRecord]:
    """What following the emailed link does (preferences/views.py confirm, on POST)."""
    token = confirmation_token(contact=contact, record_uuids=[str(record.uuid)])
    contact, uuids = confirmation_token_read(token)
    return consent_confirm(contact=contact, record_uuids=uuids)


@pytest.mark.django_db
def test_a_pending_grant_of_a_suppressed_contact_lifts_nothing_until_confirmed():
    contact, purpose = ContactFactory(), PurposeFactory()
    suppression_add(reason="hard_bounce", email=contact.email)
    pending = grant(contact, purpose, source_kind="api")
    assert suppression_reason(kind="email", value=contact.email) == "hard_bounce"
    assert contact_eligibility(contact, purpose, "email") == ["pending_confirmation", "suppressed"]

    [confirmed] = confirm_by_link(contact, pending)

    assert (confirmed.status, confirmed.source_kind) == ("granted", "email_confirmation")
    assert suppression_reason(kind="email", value=contact.email) is None
    assert contact_eligibility(contact, purpose, "email") == []


@pytest.mark.django_db
def test_an_expired_pending_grant_never_lifts_the_suppression():
    contact, purpose = ContactFactory(), PurposeFactory()
    suppression_add(reason="global_unsubscribe", email=contact.email)
    with freeze_time(timezone.now() - settings.DOUBLE_OPT_IN_TTL - timedelta(hours=1)):
        pending = grant(contact, purpose, source_kind="web_form")

    assert pending_grants_expire() == 1

    assert ConsentState.objects.get(contact=contact).status == "expired"
    assert suppression_reason(kind="email", value=contact.email) == "global_unsubscribe"
    assert confirm_by_link(contact, pending) == []
    assert suppression_reason(kind="email", value=contact.email) == "global_unsubscribe"


@pytest.mark.django_db
def test_a_change_in_the_preference_center_lifts_the_suppression():
    contact, purpose = ContactFactory(), PurposeFactory()
    suppression_add(reason="global_unsubscribe", email=contact.email)

    record = grant(
        contact, purpose, source_kind="preference_center", evidence=EvidenceFactory(purpose=purpose)
    )

    assert record.status == "granted"
    assert suppression_reason(kind="email", value=contact.email) is None


@pytest.mark.django_db
def test_a_paper_form_for_a_suppressed_contact_waits_for_the_email_link(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    contact, purpose = ContactFactory(), PurposeFactory()
    suppression_add(reason="complaint", email=contact.email)
    scan = ContentFile(b"%PDF-1.4 signed form", name="form.pdf")

    record = grant(
        contact,
        purpose,
        source_kind="paper_form",
        evidence=Evidence(wording="J'accepte.", unticked_by_default=True, document=scan),
    )

    assert record.status == "pending"
    assert suppression_reason(kind="email", value=contact.email) == "complaint"


@pytest.mark.django_db
def test_a_suppressed_contact_gets_one_confirmation_email_a_day(mailbox):
    contact = ContactFactory()
    first, second = PurposeFactory(), PurposeFactory()
    suppression_add(reason="global_unsubscribe", email=contact.email)
    with freeze_time("2026-11-25 09:00"):
        grant(contact, first, source_kind="web_form")
        assert double_opt_in_send(contact_id=contact.id) is True
    with freeze_time("2026-11-25 22:00"):
        grant(contact, second, source_kind="web_form")
        assert double_opt_in_send(contact_id=contact.id) is False

    with freeze_time("2026-11-26 08:00"):
        assert double_opt_in_send(contact_id=contact.id) is True

    assert len(mailbox.messages) == 2


@pytest.mark.django_db
def test_a_contact_that_is_not_suppressed_gets_every_confirmation_email(mailbox):
    contact = ContactFactory()
    first = PurposeFactory(double_opt_in=True)
    second = PurposeFactory(double_opt_in=True)
    grant(contact, first)
    assert double_opt_in_send(contact_id=contact.id) is True
    grant(contact, second)

    assert double_opt_in_send(contact_id=contact.id) is True

    assert len(mailbox.messages) == 2


def signup_token(purpose, email: str = "lea@example.fr") -> str:
    grant = signup_grant_prepare(
        email=email,
        purpose=purpose,
        channel="email",
        source_kind="web_form",
        source_reference="https://example.fr/newsletter",
        evidence=EvidenceFactory(purpose=purpose),
    )
    return signup_confirmation_queue(email=email, grants=[grant])


@pytest.mark.django_db
def test_an_erased_address_gets_one_signup_email_a_day(mailbox):
    purpose = PurposeFactory()
    suppression_add(reason="erased", email="lea@example.fr")
    with freeze_time("2026-11-25 09:00"):
        assert signup_confirmation_send(token=signup_token(purpose)) is True
        assert signup_confirmation_send(token=signup_token(purpose)) is False

    with freeze_time("2026-11-26 09:00"):
        assert signup_confirmation_send(token=signup_token(purpose)) is True

    assert [message["To"] for message in mailbox.messages] == ["lea@example.fr"] * 2


@pytest.mark.django_db
def test_an_expired_signup_link_brings_nobody_back():
    purpose = PurposeFactory()
    suppression_add(reason="erased", email="lea@example.fr")
    with freeze_time(timezone.now() - settings.DOUBLE_OPT_IN_TTL - timedelta(minutes=1)):
        token = signup_token(purpose)

    with pytest.raises(signing.SignatureExpired):
        signup_token_read(token)
    assert not Contact.objects.exists()
    assert suppression_reason(kind="email", value="lea@example.fr") == "erased"


@pytest.mark.django_db
def test_an_expired_signup_link_answers_not_valid(client):
    purpose = PurposeFactory()
    suppression_add(reason="erased", email="lea@example.fr")
    with freeze_time(timezone.now() - settings.DOUBLE_OPT_IN_TTL - timedelta(minutes=1)):
        token = signup_token(purpose)

    response = client.post(f"/confirm/s-{token}/")

    assert response.status_code == 404
    assert not Contact.objects.exists()


@pytest.mark.django_db
def test_a_forged_signup_link_brings_nobody_back(client):
    purpose = PurposeFactory()
    suppression_add(reason="erased", email="lea@example.fr")
    token = signup_token(purpose)
    forged = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")

    assert client.post(f"/confirm/s-{forged}/").status_code == 404
    assert not Contact.objects.exists()


@pytest.mark.django_db
def test_a_signup_link_records_nothing_once_the_wording_changed():
    purpose = PurposeFactory()
    suppression_add(reason="erased", email="lea@example.fr")
    request = signup_token_read(signup_token(purpose))
    purpose.versions.create(number=2, wording_fr="Nouveau texte.", wording_en="New text.")

    assert signup_confirm(request=request) == []
    assert not Contact.objects.exists()
    assert suppression_reason(kind="email", value="lea@example.fr") == "erased"


@pytest.mark.django_db
def test_a_signup_link_brings_the_person_back_once():
    purpose = PurposeFactory(double_opt_in=True)
    suppression_add(reason="erased", email="lea@example.fr")
    request = signup_token_read(signup_token(purpose))

    [record] = signup_confirm(request=request, ip="198.51.100.23")

    lea = Contact.objects.get(email="lea@example.fr")
    # confirmed by the email link itself: no second double opt-in round
    assert (record.contact, record.status, record.source_kind) == (
        lea,
        "granted",
        "email_confirmation",
    )
    assert record.source_reference == "https://example.fr/newsletter"
    assert signup_confirm(request=request) == []
    assert ConsentRecord.objects.count() == 1
