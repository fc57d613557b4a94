"""Per-client API throttles (SPEC §3 security): past the rate, 429 with `Retry-After`, as JSON."""

import time

import pytest
from django.core.cache import cache

from core.throttling import ApiClientRateThrottle

pytestmark = pytest.mark.django_db

PURPOSES = "/api/v1/purposes/"


def test_a_client_past_its_rate_is_answered_429_with_retry_after(api, settings):
    # given a rate of three requests a minute
    settings.API_THROTTLE_RATE = "3/m"
    client = api()

    # when it sends a fourth
    answers = [client.get(PURPOSES) for _ in range(4)]

    # then it waits, told how long, in JSON
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.headers["Content-Type"].startswith("application/json")
    assert "throttled" in refused.json()["detail"]
    assert 0 < int(refused.headers["Retry-After"]) <= 60


def test_writes_count_against_the_same_allowance(api, settings, camille):
    settings.API_THROTTLE_RATE = "2/m"
    client = api()

    client.get(PURPOSES)
    client.get(f"/api/v1/contacts/{camille.public_id}/")
    response = client.post("/api/v1/contacts/", {"email": "someone@example.fr"}, format="json")

    assert response.status_code == 429


def test_each_client_has_its_own_allowance(api, settings):
    settings.API_THROTTLE_RATE = "1/m"
    busy, other = api(), api()

    busy.get(PURPOSES)

    assert busy.get(PURPOSES).status_code == 429
    assert other.get(PURPOSES).status_code == 200


def test_the_allowance_comes_back_after_the_period(api, settings, monkeypatch):
    settings.API_THROTTLE_RATE = "1/s"
    client = api()
    client.get(PURPOSES)
    assert client.get(PURPOSES).status_code == 429

    # when the period has passed (the throttle reads the clock through its `timer`)
    later = time.time() + 1.5
    monkeypatch.setattr(ApiClientRateThrottle, "timer", lambda self: later)

    assert client.get(PURPOSES).status_code == 200


def test_the_requests_are_counted_in_the_shared_cache(api, settings):
    # the default cache is Redis when REDIS_URL is set: every process counts together
    settings.API_THROTTLE_RATE = "1/m"
    client = api()
    client.get(PURPOSES)
    assert client.get(PURPOSES).status_code == 429

    cache.clear()

    assert client.get(PURPOSES).status_code == 200


def test_an_empty_rate_turns_the_throttle_off(api, settings):
    settings.API_THROTTLE_RATE = ""
    client = api()

    assert {client.get(PURPOSES).status_code for _ in range(5)} == {200}
