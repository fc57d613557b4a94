"""The proof archive in the admin: the DPO reads an erased person's proof through an audited
action, shown once and never listed; a marketer sees nothing of it."""

import pytest
from django.test import Client
from django.urls import reverse

from core.models import AuditAction, AuditEvent
from privacy.models import ProofArchiveEntry
from privacy.services import contact_erase
from tests.factories import ContactFactory, PurposeFactory, grant

pytestmark = pytest.mark.django_db

ENTRIES = reverse("admin:privacy_proofarchiveentry_changelist")
EMAIL = "camille.martin@example.fr"


@pytest.fixture
def entry() -> ProofArchiveEntry:
    contact = ContactFactory(email=EMAIL, first_name="Camille", last_name="Martin")
    grant(contact, PurposeFactory())
    contact_erase(contact=contact, reason="erasure")
    return ProofArchiveEntry.objects.get(contact=contact)


def read_url(entry: ProofArchiveEntry) -> str:
    return reverse("admin:privacy_proofarchiveentry_read", args=[entry.pk])


def reads() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=AuditAction.PROOF_ARCHIVE_READ))


def test_the_dpo_lists_entries_without_their_content(as_dpo: Client, entry) -> None:
    listing = as_dpo.get(ENTRIES)
    page = as_dpo.get(reverse("admin:privacy_proofarchiveentry_change", args=[entry.pk]))

    assert listing.status_code == page.status_code == 200
    for response in (listing, page):
        assert EMAIL not in response.content.decode()
        assert "Camille" not in response.content.decode()
    assert read_url(entry) in page.content.decode()
    assert reads() == []


def test_the_dpo_reads_the_proof_once_with_a_reason_and_the_read_is_logged(
    as_dpo: Client, entry
) -> None:
    # the form first: nothing decrypted, nothing logged
    form = as_dpo.get(read_url(entry))
    assert form.status_code == 200
    assert EMAIL not in form.content.decode()
    assert reads() == []

    response = as_dpo.post(read_url(entry), {"why": "CNIL complaint 2026-123"})

    assert response.status_code == 200
    assert EMAIL in response.content.decode()
    assert "203.0.113.7" in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    (event,) = reads()
    assert event.username == "dpo-persona"
    assert event.contact_id == entry.contact_id
    assert event.details == {"entry": entry.pk, "why": "CNIL complaint 2026-123"}


def test_a_read_without_a_reason_shows_nothing_and_logs_nothing(as_dpo: Client, entry) -> None:
    response = as_dpo.post(read_url(entry), {"why": ""})

    assert response.status_code == 200
    assert EMAIL not in response.content.decode()
    assert reads() == []


def test_a_marketer_can_neither_list_nor_read_the_archive(as_marketer: Client, entry) -> None:
    assert as_marketer.get(ENTRIES).status_code == 403
    assert as_marketer.get(read_url(entry)).status_code == 403
    response = as_marketer.post(read_url(entry), {"why": "curious"})

    assert response.status_code == 403
    assert EMAIL not in response.content.decode()
    assert reads() == []


def test_a_superuser_who_is_not_the_dpo_cannot_read_the_proof(as_superuser: Client, entry) -> None:
    assert as_superuser.get(read_url(entry)).status_code == 403
    response = as_superuser.post(read_url(entry), {"why": "curious"})

    assert response.status_code == 403
    assert EMAIL not in response.content.decode()
    assert reads() == []


def test_nobody_changes_or_deletes_an_entry_in_the_admin(as_superuser: Client, entry) -> None:
    delete = reverse("admin:privacy_proofarchiveentry_delete", args=[entry.pk])

    assert as_superuser.post(delete, {"post": "yes"}).status_code == 403
    assert ProofArchiveEntry.objects.filter(pk=entry.pk).exists()
