"""Staff record a consent the person gave on a paper form (with the signed form, kept apart
with its SHA-256) or in a phone call (with its reference and the wording read out), from the
contact page, through the one consent-write path, in the audit log."""

import hashlib
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from consent.models import ConsentEvidence, ConsentRecord, ConsentState, Purpose
from contacts.models import Contact
from core.models import AuditAction, AuditEvent
from tests.admin.conftest import otp_verified_login
from tests.factories import ContactFactory, PurposeFactory, UserFactory, grant

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
SIGNED_FORM = b"%PDF-1.4 signed by Ines Moreau"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def person() -> Contact:
    return ContactFactory(email="ines.moreau@example.fr", language="en")


@pytest.fixture
def newsletter() -> Purpose:
    purpose = PurposeFactory(slug="newsletter", name_en="Newsletter", channels=["email", "sms"])
    return purpose


def record_url(contact: Contact) -> str:
    return reverse("admin:contacts_contact_offline_consent", args=[contact.pk])


def signed_form() -> SimpleUploadedFile:
    return SimpleUploadedFile("bulletin.pdf", SIGNED_FORM, "application/pdf")


def submit(client: Client, contact: Contact, **fields: object):
    return client.post(record_url(contact), fields)


def last_record(contact: Contact) -> ConsentRecord:
    return ConsentRecord.objects.filter(contact=contact).latest("id")


def test_the_contact_page_offers_the_form_to_those_allowed(
    as_marketer: Client, person: Contact
) -> None:
    page = as_marketer.get(reverse("admin:contacts_contact_change", args=[person.pk]))

    assert record_url(person) in page.content.decode()
    form = as_marketer.get(record_url(person))
    assert form.status_code == 200
    assert "Record a consent from a paper form or a phone call" in form.content.decode()


def test_a_paper_form_is_recorded_with_the_signed_form_kept_apart(
    as_marketer: Client, person: Contact, newsletter: Purpose
) -> None:
    response = submit(
        as_marketer,
        person,
        kind="paper_form",
        purpose=newsletter.pk,
        channel="email",
        action="grant",
        given_at="2026-03-12 14:03",
        document=signed_form(),
        reference="Salon 2026, form 17",
    )

    assert response.status_code == 302
    assert response.url == reverse("admin:contacts_contact_change", args=[person.pk])
    record = last_record(person)
    assert record.source_kind == "paper_form"
    # the form's reference, and who typed it in (SPEC §3: the admin user is part of the proof)
    assert record.source_reference == "Salon 2026, form 17 / admin:marketer-persona"
    assert record.action == "grant" and record.status == "granted"
    assert record.actor == "person"
    assert record.given_at == datetime(2026, 3, 12, 14, 3, tzinfo=PARIS)
    assert record.wording == newsletter.current_version.wording_en  # the person's language
    evidence = ConsentEvidence.objects.get(record=record)
    assert evidence.document_sha256 == hashlib.sha256(SIGNED_FORM).hexdigest()
    assert evidence.document.read() == SIGNED_FORM
    assert record.evidence_digest  # the ledger keeps only the digest
    state = ConsentState.objects.get(contact=person, purpose=newsletter, channel="email")
    assert state.record == record and state.status == "granted"
    event = AuditEvent.objects.get(action=AuditAction.OFFLINE_CONSENT)
    assert event.contact == person
    assert event.username == "marketer-persona"
    assert event.details["record"] == str(record.uuid)
    assert event.details["document_sha256"] == evidence.document_sha256


def test_a_phone_call_is_recorded_with_its_reference_and_the_wording_read_out(
    as_dpo: Client, person: Contact, newsletter: Purpose
) -> None:
    response = submit(
        as_dpo,
        person,
        kind="phone_call",
        purpose=newsletter.pk,
        channel="sms",
        action="grant",
        given_at="2026-11-20 10:30",
        reference="CALL-2026-0042",
        wording="May we send you our news by SMS?",
    )

    assert response.status_code == 302
    record = last_record(person)
    assert record.source_kind == "phone_call"
    assert record.source_reference == "CALL-2026-0042 / admin:dpo-persona"
    assert record.wording == "May we send you our news by SMS?"
    assert record.channel == "sms" and record.status == "granted"
    assert not ConsentEvidence.objects.filter(record=record).exists()  # nothing personal
    assert AuditEvent.objects.get(action=AuditAction.OFFLINE_CONSENT).details["source"] == (
        "phone_call"
    )


def test_a_paper_form_without_the_signed_form_is_refused_on_that_field(
    as_marketer: Client, person: Contact, newsletter: Purpose
) -> None:
    response = submit(
        as_marketer,
        person,
        kind="paper_form",
        purpose=newsletter.pk,
        channel="email",
        action="grant",
        given_at="2026-03-12 14:03",
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "document": ["A paper form needs the scan of the signed form."]
    }
    assert not ConsentRecord.objects.filter(contact=person).exists()
    assert not AuditEvent.objects.filter(action=AuditAction.OFFLINE_CONSENT).exists()


def test_a_phone_call_without_its_reference_is_refused_on_that_field(
    as_marketer: Client, person: Contact, newsletter: Purpose
) -> None:
    response = submit(
        as_marketer,
        person,
        kind="phone_call",
        purpose=newsletter.pk,
        channel="email",
        action="withdraw",
        given_at="2026-03-12 14:03",
        reference="   ",
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {"reference": ["A phone call needs its reference."]}
    assert "A phone call needs its reference." in response.content.decode()
    assert not ConsentRecord.objects.filter(contact=person).exists()


def test_a_consent_dated_in_the_future_is_refused_on_the_date(
    as_marketer: Client, person: Contact, newsletter: Purpose
) -> None:
    tomorrow = timezone.localtime() + timedelta(days=1)

    response = submit(
        as_marketer,
        person,
        kind="phone_call",
        purpose=newsletter.pk,
        channel="email",
        action="grant",
        given_at=tomorrow.strftime("%Y-%m-%d %H:%M"),
        reference="CALL-1",
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "given_at": ["Consent cannot be given in the future."]
    }
    assert not ConsentRecord.objects.filter(contact=person).exists()


def test_staff_without_the_permission_are_refused(person: Contact, newsletter: Purpose) -> None:
    editors = Group.objects.create(name="Editors")
    editors.permissions.set(
        Permission.objects.filter(
            content_type__app_label="contacts", codename__in=["view_contact", "change_contact"]
        )
    )
    editor = UserFactory(username="editor")
    editor.groups.add(editors)
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    otp_verified_login(client, editor)

    page = client.get(reverse("admin:contacts_contact_change", args=[person.pk]))
    form = client.get(record_url(person))
    posted = submit(
        client,
        person,
        kind="phone_call",
        purpose=newsletter.pk,
        channel="email",
        action="grant",
        given_at="2026-03-12 14:03",
        reference="CALL-1",
    )

    assert page.status_code == 200
    assert record_url(person) not in page.content.decode()
    assert form.status_code == 403
    assert posted.status_code == 403
    assert not ConsentRecord.objects.filter(contact=person).exists()


def test_both_roles_hold_the_permission(marketer: object, dpo: object) -> None:
    for user in (marketer, dpo):
        assert user.has_perm("contacts.record_offline_consent_contact")  # type: ignore[attr-defined]


def test_an_older_paper_withdrawal_is_kept_but_leaves_the_newer_grant_in_force(
    as_marketer: Client, person: Contact, newsletter: Purpose
) -> None:
    given = grant(person, newsletter, given_at=timezone.now() - timedelta(days=2))

    response = submit(
        as_marketer,
        person,
        kind="paper_form",
        purpose=newsletter.pk,
        channel="email",
        action="withdraw",
        given_at=(timezone.localtime() - timedelta(days=10)).strftime("%Y-%m-%d %H:%M"),
        document=signed_form(),
    )

    assert response.status_code == 302
    withdrawal = last_record(person)
    assert withdrawal.action == "withdraw" and withdrawal.source_kind == "paper_form"
    state = ConsentState.objects.get(contact=person, purpose=newsletter, channel="email")
    assert state.record == given and state.status == "granted"


def test_a_later_phone_withdrawal_ends_the_grant(
    as_marketer: Client, person: Contact, newsletter: Purpose
) -> None:
    grant(person, newsletter, given_at=timezone.now() - timedelta(days=10))

    response = submit(
        as_marketer,
        person,
        kind="phone_call",
        purpose=newsletter.pk,
        channel="email",
        action="withdraw",
        given_at=(timezone.localtime() - timedelta(days=1)).strftime("%Y-%m-%d %H:%M"),
        reference="CALL-77",
    )

    assert response.status_code == 302
    state = ConsentState.objects.get(contact=person, purpose=newsletter, channel="email")
    assert state.status == "withdrawn"
    assert state.record == last_record(person)
    page = as_marketer.get(reverse("admin:contacts_contact_change", args=[person.pk]))
    line = "withdrew Newsletter by email via a phone call (CALL-77 / admin:marketer-persona)"
    assert line in page.content.decode()


def test_a_channel_the_purpose_does_not_use_is_refused_on_that_field(
    as_marketer: Client, person: Contact, newsletter: Purpose
) -> None:
    response = submit(
        as_marketer,
        person,
        kind="phone_call",
        purpose=newsletter.pk,
        channel="postal",
        action="grant",
        given_at="2026-03-12 14:03",
        reference="CALL-9",
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "channel": ["This purpose is not used on this channel."]
    }


def test_a_retired_purpose_can_still_be_withdrawn_but_not_granted(
    as_marketer: Client, person: Contact, newsletter: Purpose
) -> None:
    grant(person, newsletter, given_at=timezone.now() - timedelta(days=30))
    Purpose.objects.filter(pk=newsletter.pk).update(is_active=False)
    call = {
        "kind": "phone_call",
        "purpose": newsletter.pk,
        "channel": "email",
        "given_at": (timezone.localtime() - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M"),
        "reference": "CALL-10",
    }

    refused = submit(as_marketer, person, action="grant", **call)
    withdrawn = submit(as_marketer, person, action="withdraw", **call)

    assert refused.context["form"].errors == {"purpose": ["This purpose is no longer active."]}
    assert withdrawn.status_code == 302
    state = ConsentState.objects.get(contact=person, purpose=newsletter, channel="email")
    assert state.status == "withdrawn"
