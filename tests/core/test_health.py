"""/health/: what load balancers and operators poll."""

import pytest

pytestmark = pytest.mark.django_db


def test_health_is_ok_when_database_broker_and_worker_answer(client, celery_worker):
    # given the default of the run: tasks in-process, or the session's real worker on a broker
    # when
    response = client.get("/health/")

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "worker"}
    assert all(value.startswith("ok") for value in body["checks"].values()), body["checks"]


def test_health_is_never_cached(client, celery_worker):
    response = client.get("/health/")

    assert "no-cache" in response.headers["Cache-Control"]


def test_health_only_answers_reads(client):
    response = client.post("/health/")

    assert response.status_code == 405
