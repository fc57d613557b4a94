"""`/api/v1/privacy-requests/`: data-subject requests filed by an integrator (SPEC §3, §4)."""

import uuid
from datetime import datetime

import pytest
from dateutil.relativedelta import relativedelta
from freezegun import freeze_time

from contacts.models import TimelineEvent
from privacy.models import PrivacyRequest

REQUESTS = "/api/v1/privacy-requests/"


@pytest.mark.django_db
@freeze_time("2026-01-31T10:00:00Z")
def test_a_request_by_email_is_due_one_month_after_receipt(api, camille):
    response = api().post(
        REQUESTS, {"email": " CAMILLE@example.fr", "type": "access"}, format="json"
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert {"id", "type", "status", "received_at", "due_at"} <= set(body)
    assert body["type"] == "access"
    assert body["status"] == "verified"  # an integrator verified the person (SPEC §3)
    received_at = datetime.fromisoformat(body["received_at"])
    due_at = datetime.fromisoformat(body["due_at"])
    assert received_at.utcoffset() is not None
    assert received_at == datetime.fromisoformat("2026-01-31T10:00:00+00:00")
    assert due_at == received_at + relativedelta(months=1)
    assert due_at.date().isoformat() == "2026-02-28"
    assert PrivacyRequest.objects.get().contact == camille
    assert TimelineEvent.objects.filter(contact=camille, kind="request_filed").exists()


@pytest.mark.django_db
def test_a_request_by_contact_id(api, camille):
    response = api().post(
        REQUESTS,
        {"contact": str(camille.public_id), "type": "erasure", "details": "Please forget me."},
        format="json",
    )

    assert response.status_code == 201
    request = PrivacyRequest.objects.get(id=response.json()["id"])
    assert (request.contact, request.type, request.details) == (
        camille,
        "erasure",
        "Please forget me.",
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "nobody@example.fr", "type": "access"}, "email"),
        ({"contact": str(uuid.UUID(int=1)), "type": "access"}, "contact"),
        ({"email": "camille@example.fr", "type": "delete-everything"}, "type"),
        ({"type": "access"}, "email"),
    ],
)
def test_an_invalid_request_is_400_on_its_field(api, camille, body, field):
    response = api().post(REQUESTS, body, format="json")

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert PrivacyRequest.objects.count() == 0


@pytest.mark.django_db
def test_get_shows_the_request_with_its_status_history(api, camille):
    client = api()
    filed = client.post(REQUESTS, {"email": camille.email, "type": "portability"}, format="json")

    response = client.get(f"{REQUESTS}{filed.json()['id']}/")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == filed.json()["id"]
    assert body["contact"] == str(camille.public_id)
    assert [event["status"] for event in body["history"]] == ["verified"]
    assert datetime.fromisoformat(body["history"][0]["at"]).utcoffset() is not None


@pytest.mark.django_db
def test_an_unknown_request_is_404(api):
    assert api().get(f"{REQUESTS}{uuid.uuid4()}/").status_code == 404
