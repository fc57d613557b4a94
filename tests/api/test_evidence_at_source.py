"""Evidence required at the source (issue 12, point 4): forms and the API must state that the
box was unticked; imports and CRMs must give the original date and where the person consented,
and their records are second-hand in the ledger, the history and the receipt."""

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from consent.models import ConsentRecord
from consent.services import ConsentWrite, Evidence, consent_record
from tests.api.payloads import (
    LIST_SOURCE_REFERENCE,
    box,
    consent_body,
    evidence_body,
    form_body,
)
from tests.factories import ContactFactory, PurposeFactory

pytestmark = pytest.mark.django_db

CONSENTS = "/api/v1/consents/"
FORMS = "/api/v1/forms/submissions/"


def without(body: dict, *keys: str) -> dict:
    return {key: value for key, value in body.items() if key not in keys}


@pytest.mark.parametrize("kind", ["api", "web_form"])
def test_an_api_grant_without_the_unticked_box_is_refused_on_that_field(
    api, camille, newsletter, kind
):
    evidence = without(evidence_body(newsletter), "unticked_by_default")
    body = consent_body(newsletter, contact=str(camille.public_id), kind=kind, evidence=evidence)

    response = api().post(CONSENTS, body, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["evidence"]
    assert list(response.json()["evidence"]) == ["unticked_by_default"]
    assert not ConsentRecord.objects.exists()


def test_a_withdrawal_needs_no_unticked_box(api, camille, newsletter):
    body = consent_body(newsletter, contact=str(camille.public_id), action="withdraw", evidence={})

    assert api().post(CONSENTS, body, format="json").status_code == 201


def test_a_form_granting_without_the_unticked_box_is_refused_and_writes_nothing(api, newsletter):
    body = form_body(email="lea@example.fr", boxes=[box(newsletter)])
    del body["evidence"]["unticked_by_default"]

    response = api().post(FORMS, body, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["evidence"]
    assert list(response.json()["evidence"]) == ["unticked_by_default"]
    assert not ConsentRecord.objects.exists()


def test_a_form_with_only_unticked_boxes_needs_no_evidence(api, newsletter):
    body = form_body(email="lea@example.fr", boxes=[box(newsletter, granted=False)])
    del body["evidence"]

    assert api().post(FORMS, body, format="json").status_code == 201


@pytest.mark.parametrize("kind", ["crm", "import"])
def test_a_list_grant_without_its_original_date_is_refused(api, camille, newsletter, kind):
    body = without(consent_body(newsletter, contact=str(camille.public_id), kind=kind), "given_at")

    response = api().post(CONSENTS, body, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["given_at"]


@pytest.mark.parametrize("kind", ["crm", "import"])
def test_a_list_grant_without_where_it_was_collected_is_refused(api, camille, newsletter, kind):
    body = consent_body(newsletter, contact=str(camille.public_id), kind=kind)
    body["source"] = {"kind": kind}

    response = api().post(CONSENTS, body, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["source"]
    assert list(response.json()["source"]) == ["reference"]


@pytest.mark.parametrize("kind", ["crm", "import"])
def test_a_list_grant_is_second_hand_in_the_history_and_the_receipt(api, camille, newsletter, kind):
    body = consent_body(newsletter, contact=str(camille.public_id), kind=kind)

    created = api().post(CONSENTS, body, format="json")

    assert created.status_code == 201, created.json()
    answer = created.json()
    assert (answer["second_hand"], answer["collection_reference"]) == (
        True,
        LIST_SOURCE_REFERENCE,
    )
    record = ConsentRecord.objects.get(uuid=answer["id"])
    assert record.given_at.isoformat() == "2026-01-15T09:00:00+00:00"
    history = api().get(f"/api/v1/contacts/{camille.public_id}/consent-history/").json()
    assert history["results"][0]["second_hand"] is True
    receipt = api().get(f"{CONSENTS}{record.uuid}/receipt/").json()
    assert receipt["event"]["second_hand"] is True
    assert receipt["event"]["collection_reference"] == LIST_SOURCE_REFERENCE


def test_the_evidence_may_name_where_it_was_collected_apart_from_the_source(
    api, camille, newsletter
):
    body = consent_body(newsletter, contact=str(camille.public_id), kind="crm")
    body["source"] = {"kind": "crm", "reference": "hubspot:portal-42"}
    body["evidence"]["collection_reference"] = "https://example.fr/jeu-concours"

    answer = api().post(CONSENTS, body, format="json").json()

    assert answer["source_reference"] == "hubspot:portal-42"
    assert answer["collection_reference"] == "https://example.fr/jeu-concours"


def test_the_write_path_refuses_an_undeclared_box_whoever_calls_it():
    contact, purpose = ContactFactory(), PurposeFactory()

    with pytest.raises(ValidationError) as refused:
        consent_record(
            write=ConsentWrite(
                contact=contact,
                purpose=purpose,
                channel="email",
                action="grant",
                source_kind="web_form",
                evidence=Evidence(wording="J'accepte."),
            )
        )

    assert "unticked_by_default" in str(refused.value)
    assert not ConsentRecord.objects.exists()


def test_the_write_path_refuses_a_crm_grant_dated_now_by_default():
    contact, purpose = ContactFactory(), PurposeFactory()

    with pytest.raises(ValidationError) as refused:
        consent_record(
            write=ConsentWrite(
                contact=contact,
                purpose=purpose,
                channel="email",
                action="grant",
                source_kind="crm",
                evidence=Evidence(wording="J'accepte.", collection_reference="salon"),
            )
        )

    assert "given_at" in str(refused.value)
    record = consent_record(
        write=ConsentWrite(
            contact=contact,
            purpose=purpose,
            channel="email",
            action="grant",
            source_kind="crm",
            evidence=Evidence(wording="J'accepte.", collection_reference="salon"),
            given_at=timezone.now(),
        )
    )
    assert record.second_hand is True
