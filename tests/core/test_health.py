"""/health/: what load balancers and operators poll."""

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from config.celery import app as celery_app
from tests.api.live import LIVE_DB, at_the_same_time

pytestmark = pytest.mark.django_db


class _AnyOk(dict):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, dict) and all(str(v).startswith("ok") for v in other.values())


ANY_OK = _AnyOk()


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


class FakeWorkers:
    """Celery's broadcast ping, the boundary to the workers: slow, and counting its calls."""

    def __init__(self, replies: list[dict], seconds: float) -> None:
        self.replies = replies
        self.seconds = seconds
        self.pings = 0
        self.timeouts: list[float] = []
        self.lock = threading.Lock()

    def ping(self, timeout: float) -> list[dict]:
        with self.lock:
            self.pings += 1
            self.timeouts.append(timeout)
        time.sleep(min(self.seconds, timeout))  # as Celery: it waits at most `timeout`
        return self.replies


@pytest.fixture
def workers(settings, monkeypatch) -> FakeWorkers:
    """Health checks as in production (a broker, workers to ping), with a fake ping."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.HEALTH_WORKER_TIMEOUT = 5
    settings.HEALTH_CACHE_SECONDS = 60
    fake = FakeWorkers([{"worker@host": {"ok": "pong"}}], seconds=1.5)
    monkeypatch.setattr(celery_app.control, "ping", fake.ping)
    return fake


def timed_get(url: str) -> tuple[int, dict, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - test server
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    return status, json.loads(body), time.monotonic() - started


@LIVE_DB
def test_concurrent_probes_ping_the_workers_once_and_answer_at_once(live_server, workers):
    # when 20 probes arrive together while a ping takes 1.5 s
    answers = at_the_same_time(lambda: timed_get(f"{live_server.url}/health/"), times=20)

    # then one of them pinged; the others did not wait for it
    assert workers.pings == 1
    slow = [answer for answer in answers if answer[2] >= 1.5]
    assert len(slow) == 1
    assert slow[0][:2] == (200, {"status": "ok", "checks": ANY_OK})
    fast = [answer for answer in answers if answer[2] < 1.5]
    assert {(status, body["checks"]["worker"]) for status, body, _ in fast} == {
        (503, "unknown: being checked, no answer yet")
    }


@LIVE_DB
def test_while_one_probe_pings_again_the_others_answer_the_last_result(
    live_server, workers, settings
):
    # given a first answer, never fresh for long: each new probe wants a new ping
    settings.HEALTH_CACHE_SECONDS = 0
    timed_get(f"{live_server.url}/health/")

    # when 20 probes arrive together
    answers = at_the_same_time(lambda: timed_get(f"{live_server.url}/health/"), times=20)

    # then one more ping, and every probe answered ok; all but the pinging one at once
    assert workers.pings == 2
    assert {(status, body["checks"]["worker"]) for status, body, _ in answers} == {
        (200, "ok (1 worker)")
    }
    assert sorted(seconds for _, _, seconds in answers)[-2] < 1.5


def test_the_answer_of_a_ping_is_reused_for_a_few_seconds(client, workers):
    workers.seconds = 0

    first = client.get("/health/")
    second = client.get("/health/")

    assert workers.pings == 1
    assert first.json() == second.json()


def test_a_failed_ping_is_degraded_and_reused_too(client, workers):
    workers.replies, workers.seconds = [], 0

    answers = [client.get("/health/") for _ in range(3)]

    assert workers.pings == 1
    assert {answer.status_code for answer in answers} == {503}
    assert answers[-1].json()["checks"]["worker"] == "error: RuntimeError: no worker answered"


def test_once_the_answer_is_stale_the_next_probe_pings_again(client, workers, settings):
    settings.HEALTH_CACHE_SECONDS = 0
    workers.seconds = 0

    client.get("/health/")
    client.get("/health/")

    assert workers.pings == 2


def test_the_ping_waits_at_most_the_worker_timeout(client, workers, settings):
    settings.HEALTH_WORKER_TIMEOUT = 0.2
    workers.seconds = 0

    client.get("/health/")

    assert workers.timeouts == [0.2]
