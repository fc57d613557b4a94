"""The seals in the admin: a read-only list, and the seal heads downloaded by the DPO (logged)."""

import csv
import io

import pytest
from django.test import Client
from django.urls import reverse

from consent.ledger import ledger_seal
from consent.models import LedgerSeal
from core.models import AuditAction, AuditEvent

pytestmark = pytest.mark.django_db

HEADS = reverse("admin:consent_ledgerseal_heads")
SEALS = reverse("admin:consent_ledgerseal_changelist")


@pytest.fixture
def seals() -> list[LedgerSeal]:
    return ledger_seal() + ledger_seal()


def test_the_dpo_downloads_every_seal_head_and_the_download_is_logged(
    as_dpo: Client, seals: list[LedgerSeal]
) -> None:
    page = as_dpo.get(SEALS)
    response = as_dpo.get(HEADS)

    assert HEADS in page.content.decode()
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="seal-heads-')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(int(r["number"]), r["seal_hash"], r["signature"]) for r in rows] == [
        (s.number, s.seal_hash, s.signature) for s in seals
    ]
    assert set(rows[0]) == {
        "number",
        "sealed_at",
        "total_count",
        "seal_hash",
        "signature",
        "key_id",
    }
    (event,) = AuditEvent.objects.filter(action=AuditAction.EXPORT)
    assert event.username == "dpo-persona"
    assert event.details == {"export": "ledger_seal_heads", "last_seal": seals[-1].number}


def test_a_marketer_cannot_see_or_download_the_seals(
    as_marketer: Client, seals: list[LedgerSeal]
) -> None:
    assert as_marketer.get(SEALS).status_code == 403
    assert as_marketer.get(HEADS).status_code == 403
    assert not AuditEvent.objects.filter(action=AuditAction.EXPORT).exists()


def test_seals_are_read_only_even_for_a_superuser(
    as_superuser: Client, seals: list[LedgerSeal]
) -> None:
    seal = seals[0]
    change = reverse("admin:consent_ledgerseal_change", args=[seal.pk])

    assert as_superuser.get(reverse("admin:consent_ledgerseal_add")).status_code == 403
    assert as_superuser.post(change, {"record_count": "0"}).status_code == 403
    assert (
        as_superuser.post(
            reverse("admin:consent_ledgerseal_delete", args=[seal.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert LedgerSeal.objects.get(pk=seal.pk).record_count == seal.record_count
