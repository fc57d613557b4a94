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


def test_health_answers_a_plain_http_probe_while_the_rest_redirects_to_https(
    client, celery_worker, settings
):
    # given production's redirect to HTTPS
    settings.SECURE_SSL_REDIRECT = True

    # when a load balancer probes over plain HTTP, and a person opens another page
    probe = client.get("/health/")
    page = client.get("/admin/login/")

    # then the probe is answered, the page is sent to HTTPS
    assert probe.status_code == 200
    assert page.status_code == 301
    assert page.headers["Location"].startswith("https://")
