"""`Idempotency-Key` on writes: a retry replays the first answer and writes nothing more."""

import json
from datetime import timedelta

import pytest
from freezegun import freeze_time

from consent.models import ConsentRecord, ConsentState
from contacts.models import Contact, TimelineEvent
from core.models import IdempotencyRecord
from core.tasks import purge_idempotency_keys
from crmsync.models import OutboxEvent
from tests.api.live import LIVE_DB, at_the_same_time, post_over_http
from tests.api.payloads import box, consent_body, form_body
from tests.factories import ApiClientFactory

CONTACTS = "/api/v1/contacts/"
CONSENTS = "/api/v1/consents/"


def written() -> dict[str, int]:
    return {
        "contacts": Contact.objects.count(),
        "records": ConsentRecord.objects.count(),
        "states": ConsentState.objects.count(),
        "timeline": TimelineEvent.objects.count(),
        "outbox": OutboxEvent.objects.count(),
    }


@pytest.mark.django_db
def test_a_replayed_consent_returns_the_first_answer_and_writes_nothing_more(api, newsletter):
    client = api()
    body = consent_body(newsletter, email="lea@example.fr")
    first = client.post(CONSENTS, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    after_first = written()

    replay = client.post(CONSENTS, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert first.status_code == 201
    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert replay["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert (
        written()
        == after_first
        == {
            "contacts": 1,
            "records": 1,
            "states": 1,
            "timeline": 2,
            "outbox": 2,
        }
    )


@pytest.mark.django_db
def test_a_replayed_contact_creation_answers_201_again_not_200(api):
    client = api()
    first = client.post(
        CONTACTS, {"email": "lea@example.fr"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )

    replay = client.post(
        CONTACTS, {"email": "lea@example.fr"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )

    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.json() == first.json()
    assert OutboxEvent.objects.count() == 1


@pytest.mark.django_db
def test_a_replayed_form_submission_writes_nothing_more(api, newsletter):
    client = api()
    body = form_body(email="lea@example.fr", boxes=[box(newsletter)])
    first = client.post("/api/v1/forms/submissions/", body, format="json", HTTP_IDEMPOTENCY_KEY="f")
    after_first = written()

    replay = client.post(
        "/api/v1/forms/submissions/", body, format="json", HTTP_IDEMPOTENCY_KEY="f"
    )

    assert replay.status_code == 201
    assert replay.json() == first.json()
    assert written() == after_first


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_422(api):
    client = api()
    client.post(CONTACTS, {"email": "lea@example.fr"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    response = client.post(
        CONTACTS, {"email": "other@example.fr"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )

    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()
    assert not Contact.objects.filter(email="other@example.fr").exists()


@pytest.mark.django_db
def test_the_same_key_on_another_endpoint_is_422(api, camille):
    client = api()
    client.post(CONTACTS, {"email": "lea@example.fr"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    response = client.patch(
        f"{CONTACTS}{camille.public_id}/",
        {"email": "lea@example.fr"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )

    assert response.status_code == 422


@pytest.mark.django_db
def test_a_failed_request_does_not_burn_its_key(api, newsletter):
    client = api()
    refused = client.post(
        CONSENTS,
        consent_body(newsletter, email="lea@example.fr", channel="postal"),
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )

    corrected = client.post(
        CONSENTS,
        consent_body(newsletter, email="lea@example.fr"),
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )

    assert refused.status_code == 400
    assert corrected.status_code == 201
    assert "Idempotent-Replayed" not in corrected
    assert ConsentRecord.objects.count() == 1


@pytest.mark.django_db
def test_keys_belong_to_one_api_client(api):
    first = api().post(
        CONTACTS, {"email": "lea@example.fr"}, format="json", HTTP_IDEMPOTENCY_KEY="shared"
    )

    other = api().post(
        CONTACTS, {"email": "other@example.fr"}, format="json", HTTP_IDEMPOTENCY_KEY="shared"
    )

    assert (first.status_code, other.status_code) == (201, 201)
    assert other.json()["email"] == "other@example.fr"
    assert IdempotencyRecord.objects.filter(key="shared").count() == 2


@pytest.mark.django_db
def test_a_key_longer_than_255_characters_is_400(api):
    response = api().post(
        CONTACTS, {"email": "lea@example.fr"}, format="json", HTTP_IDEMPOTENCY_KEY="k" * 256
    )

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert Contact.objects.count() == 0


@pytest.mark.postgres
@pytest.mark.slow
@LIVE_DB
def test_two_concurrent_requests_with_one_key_write_once_and_answer_alike(live_server, newsletter):
    key = ApiClientFactory().plain_key
    body = json.dumps(consent_body(newsletter, email="race@example.fr")).encode()
    url = f"{live_server.url}{CONSENTS}"

    answers = at_the_same_time(
        lambda: post_over_http(url, key, body, {"Idempotency-Key": "same-key"}), times=2
    )

    assert [status for status, _body in answers] == [201, 201]
    assert json.loads(answers[0][1]) == json.loads(answers[1][1])
    assert ConsentRecord.objects.count() == 1
    assert Contact.objects.count() == 1
    assert OutboxEvent.objects.filter(topic="consent.recorded").count() == 1


@pytest.mark.django_db
def test_a_key_is_remembered_until_its_lifetime_ends_then_starts_a_new_request(api, settings):
    settings.IDEMPOTENCY_KEY_TTL = timedelta(hours=24)
    client = api()
    with freeze_time("2026-03-02 10:00:00") as clock:
        first = client.post(
            CONTACTS, {"email": "lea@example.fr"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
        )

        # within the lifetime the key still replays, even with another body refused
        clock.tick(timedelta(hours=23, minutes=59))
        other = {"email": "louis@example.fr"}
        assert (
            client.post(CONTACTS, other, format="json", HTTP_IDEMPOTENCY_KEY="k-1").status_code
            == 422
        )

        # past it, before any purge, the key is a new request
        clock.tick(timedelta(minutes=2))
        later = client.post(CONTACTS, other, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert first.status_code == later.status_code == 201
    assert "Idempotent-Replayed" not in later
    assert sorted(Contact.objects.values_list("email", flat=True)) == [
        "lea@example.fr",
        "louis@example.fr",
    ]
    [record] = IdempotencyRecord.objects.all()
    assert record.response_body["email"] == "louis@example.fr"


@pytest.mark.django_db
def test_the_purge_job_forgets_only_expired_answers_and_a_second_run_does_nothing(api, settings):
    settings.IDEMPOTENCY_KEY_TTL = timedelta(hours=24)
    client = api()
    with freeze_time("2026-03-01 09:00:00"):
        client.post(
            CONTACTS, {"email": "old@example.fr"}, format="json", HTTP_IDEMPOTENCY_KEY="old"
        )
    with freeze_time("2026-03-02 08:00:00"):
        client.post(
            CONTACTS, {"email": "new@example.fr"}, format="json", HTTP_IDEMPOTENCY_KEY="new"
        )

    with freeze_time("2026-03-02 10:00:00"):
        first = purge_idempotency_keys()
        second = purge_idempotency_keys()

    assert (first, second) == (1, 0)
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
