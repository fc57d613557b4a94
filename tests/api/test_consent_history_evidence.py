"""`GET /api/v1/contacts/{id}/consent-history/` carries each record's evidence (SPEC §4): what was
shown to every client, the personal part (IP, user agent, signed document) to `evidence:read`
clients only, null once erased, with the check that it still matches the record's digest."""

import hashlib
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from consent.models import ConsentEvidence
from consent.services import Evidence
from core.models import ApiClient, Scope
from privacy.services import contact_erase
from tests.factories import grant

pytestmark = pytest.mark.django_db

READER = [Scope.CONTACTS_READ]
AUDITOR = [Scope.CONTACTS_READ, Scope.EVIDENCE_READ]
PERSONAL_KEYS = {"ip", "user_agent", "document", "guardian", "digest_matches"}


def history(client: APIClient, contact) -> list[dict]:
    response = client.get(f"/api/v1/contacts/{contact.public_id}/consent-history/")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_every_client_gets_the_wording_the_unticked_box_and_the_policy_version(
    api, camille, newsletter
):
    record = grant(camille, newsletter)

    [item] = history(api(scopes=READER), camille)

    assert item["evidence"] == {
        "wording": record.wording,
        "unticked_by_default": True,
        "policy_version": "2026-01",
        "digest": record.evidence_digest,
    }
    assert not PERSONAL_KEYS & set(item["evidence"])  # no IP or user agent without the scope


def test_a_client_with_evidence_read_also_gets_the_ip_the_user_agent_and_the_digest_check(
    api, camille, newsletter
):
    grant(camille, newsletter)

    [item] = history(api(scopes=AUDITOR), camille)

    evidence = item["evidence"]
    assert evidence["ip"] == "203.0.113.7"
    assert evidence["user_agent"] == "Mozilla/5.0 (test)"
    assert evidence["document"] is None
    assert evidence["guardian"] is None
    assert evidence["digest_matches"] is True


def test_a_guardians_details_are_personal_evidence_for_auditors_only(api, camille, newsletter):
    grant(
        camille,
        newsletter,
        actor="guardian",
        evidence=Evidence(
            wording="J'accepte.",
            unticked_by_default=True,
            guardian_name="Alex Martin",
            guardian_contact="alex.martin@example.fr",
        ),
    )

    [audited] = history(api(scopes=AUDITOR), camille)
    [read] = history(api(scopes=READER), camille)

    assert audited["evidence"]["guardian"] == {
        "name": "Alex Martin",
        "contact": "alex.martin@example.fr",
    }
    assert audited["evidence"]["digest_matches"] is True
    assert audited["actor"] == read["actor"] == "guardian"
    assert "guardian" not in read["evidence"]


def test_a_signed_paper_form_is_given_by_reference_never_as_a_file(
    api, camille, newsletter, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    scan = b"%PDF-1.4 signed form"
    grant(
        camille,
        newsletter,
        source_kind="paper_form",
        evidence=Evidence(
            wording="J'accepte.",
            unticked_by_default=True,
            document=ContentFile(scan, name="form.pdf"),
        ),
    )

    [item] = history(api(scopes=AUDITOR), camille)

    assert item["evidence"]["document"] == {
        "sha256": hashlib.sha256(scan).hexdigest(),
        "stored": True,
    }
    assert item["evidence"]["digest_matches"] is True
    ConsentEvidence.objects.get().document.delete(save=False)
    [item] = history(api(scopes=AUDITOR), camille)
    assert item["evidence"]["document"]["stored"] is False


def test_evidence_changed_behind_the_ledger_no_longer_matches_its_digest(api, camille, newsletter):
    grant(camille, newsletter)
    ConsentEvidence.objects.update(ip="198.51.100.66")

    [item] = history(api(scopes=AUDITOR), camille)

    assert item["evidence"]["ip"] == "198.51.100.66"
    assert item["evidence"]["digest_matches"] is False


def test_the_personal_part_is_null_once_the_person_is_erased(api, camille, newsletter):
    record = grant(camille, newsletter)

    contact_erase(contact=camille, reason="request")

    items = history(api(scopes=AUDITOR), camille)
    assert [item["action"] for item in items] == ["grant", "withdraw"]
    evidence = items[0]["evidence"]
    assert {key: evidence[key] for key in PERSONAL_KEYS} == dict.fromkeys(PERSONAL_KEYS)
    # what was shown, and the digest the chain holds, are still there
    assert evidence["wording"] == record.wording
    assert evidence["digest"] == record.evidence_digest


def test_evidence_read_alone_does_not_open_the_history(api, camille, newsletter):
    grant(camille, newsletter)

    response = api(scopes=[Scope.EVIDENCE_READ]).get(
        f"/api/v1/contacts/{camille.public_id}/consent-history/"
    )

    assert response.status_code == 403


def test_the_history_with_evidence_takes_the_same_queries_for_two_records_or_twenty(
    api, camille, newsletter, django_assert_max_num_queries
):
    client = api(scopes=AUDITOR)
    for _ in range(2):
        grant(camille, newsletter)
    with django_assert_max_num_queries(6) as few:  # auth, contact, count, page
        history(client, camille)
    for _ in range(18):
        grant(camille, newsletter)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(history(client, camille)) == 20


def test_create_api_client_accepts_the_evidence_read_scope():
    out = StringIO()

    call_command(
        "create_api_client", "auditor", "--scopes", "contacts:read", "evidence:read", stdout=out
    )

    assert ApiClient.objects.get(name="auditor").scopes == ["contacts:read", "evidence:read"]


def test_the_schema_shows_the_evidence_and_its_optional_nullable_personal_part():
    schema = Client().get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]

    assert "evidence" in schema["ConsentHistoryRecord"]["required"]
    evidence = schema["RecordEvidence"]
    assert set(evidence["required"]) == {
        "wording",
        "unticked_by_default",
        "policy_version",
        "digest",
    }
    for key in PERSONAL_KEYS:
        assert evidence["properties"][key]["nullable"] is True
