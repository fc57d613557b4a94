"""Rate limits of the recipient pages: per token and per IP, answered 429 with a clear page."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from freezegun import freeze_time

from contacts.models import Contact
from contacts.selectors import suppression_reason
from preferences.services import preference_token_issue
from tests.factories import ContactFactory
from tests.preferences.conftest import center_path, page_text, unsubscribe_path

pytestmark = pytest.mark.django_db

HOME = {"REMOTE_ADDR": "198.51.100.23", "HTTP_ACCEPT_LANGUAGE": "en"}
OFFICE = {"REMOTE_ADDR": "203.0.113.99", "HTTP_ACCEPT_LANGUAGE": "en"}


@pytest.fixture(autouse=True)
def one_window(db: None) -> Iterator[None]:
    """The counters use fixed windows: a frozen clock keeps every request in the same one."""
    with freeze_time("2026-03-02 10:00:05"):
        yield


@pytest.fixture
def limits(settings: Any) -> Any:
    settings.PREFERENCES_RATE_PER_TOKEN = "3/m"
    settings.PREFERENCES_RATE_PER_IP = "5/m"
    return settings


def assert_limited(response: Any) -> None:
    assert response.status_code == 429
    assert response["Retry-After"] == "60"
    text = page_text(response)
    assert "Too many requests" in text
    assert "Please wait a minute and try again." in text
    # still a private page
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cache-Control"] == "no-store"


def test_token_is_limited_after_its_allowance(client: Client, token: str, limits: Any) -> None:
    allowed = [client.get(center_path(token), **HOME).status_code for _ in range(3)]

    assert allowed == [200, 200, 200]
    assert_limited(client.get(center_path(token), **HOME))


def test_token_limit_counts_requests_from_every_ip(client: Client, token: str, limits: Any) -> None:
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        assert client.get(center_path(token), REMOTE_ADDR=address).status_code == 200

    assert_limited(client.get(center_path(token), **OFFICE))


def test_token_limit_covers_the_unsubscribe_page_and_posts(
    client: Client, token: str, limits: Any
) -> None:
    client.get(center_path(token), **HOME)
    client.get(unsubscribe_path(token), **HOME)
    client.post(center_path(token), {"form": "frequency", "frequency": "weekly"}, **HOME)

    limited = client.post(unsubscribe_path(token), {"List-Unsubscribe": "One-Click"}, **HOME)

    assert_limited(limited)


def test_limited_post_changes_nothing(
    client: Client, camille: Contact, token: str, limits: Any
) -> None:
    for _ in range(3):
        client.get(center_path(token), **HOME)

    response = client.post(
        center_path(token), {"form": "frequency", "frequency": "monthly"}, **HOME
    )

    assert response.status_code == 429
    camille.refresh_from_db()
    assert camille.frequency == "as_published"


def test_another_token_is_not_affected_by_a_limited_one(
    client: Client, token: str, limits: Any
) -> None:
    for _ in range(4):
        client.get(center_path(token), **HOME)

    other = preference_token_issue(contact=ContactFactory())

    assert client.get(center_path(other), **OFFICE).status_code == 200


def test_ip_is_limited_across_different_tokens(client: Client, limits: Any) -> None:
    # given five people's links opened from one address (a scan of guessed links)
    tokens = [preference_token_issue(contact=ContactFactory()) for _ in range(5)]
    for token in tokens:
        assert client.get(center_path(token), **HOME).status_code == 200

    # when a sixth link is tried from that address
    fresh = preference_token_issue(contact=ContactFactory())

    # then it is refused, while the same link from another address works
    assert_limited(client.get(center_path(fresh), **HOME))
    assert client.get(center_path(fresh), **OFFICE).status_code == 200


def test_guessed_tokens_count_towards_the_ip_limit(client: Client, limits: Any) -> None:
    for guess in range(5):
        response = client.get(center_path(f"{guess:0>43}"), **HOME)
        assert response.status_code == 404

    assert_limited(client.get(center_path("9" * 43), **HOME))


def test_counters_start_again_after_the_window(client: Client, token: str, limits: Any) -> None:
    for _ in range(4):
        client.get(center_path(token), **HOME)

    with freeze_time("2026-03-02 10:02:05"):
        assert client.get(center_path(token), **HOME).status_code == 200


# --- RFC 8058 one-click unsubscribes and the client IP behind a proxy -------------------------

PROVIDER = {"REMOTE_ADDR": "192.0.2.50", "HTTP_ACCEPT_LANGUAGE": "en"}  # a provider robot


def one_click(client: Client, token: str, **extra: str) -> Any:
    return client.post(
        unsubscribe_path(token),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
        **{**PROVIDER, **extra},
    )


def test_one_click_posts_are_never_refused_by_the_ip_limit(client: Client, limits: Any) -> None:
    # given a provider unsubscribing many people from one address, far past the IP allowance
    contacts = [ContactFactory() for _ in range(12)]
    tokens = [preference_token_issue(contact=contact) for contact in contacts]

    answers = [one_click(client, token).status_code for token in tokens]

    # then every one is carried out
    assert answers == [200] * 12
    assert all(suppression_reason(kind="email", value=c.email) for c in contacts)
    # and they did not use up the address's allowance for the pages
    fresh = preference_token_issue(contact=ContactFactory())
    assert client.get(center_path(fresh), **PROVIDER).status_code == 200


def test_one_click_posts_still_count_per_token(client: Client, token: str, limits: Any) -> None:
    for _ in range(3):
        assert one_click(client, token).status_code == 200

    assert_limited(one_click(client, token))


def test_one_click_posts_with_guessed_tokens_still_meet_the_ip_limit(
    client: Client, limits: Any
) -> None:
    for guess in range(5):
        assert one_click(client, f"{guess:0>43}").status_code == 404

    assert_limited(one_click(client, "9" * 43))


def test_other_unsubscribe_posts_still_count_per_ip(client: Client, limits: Any) -> None:
    tokens = [preference_token_issue(contact=ContactFactory()) for _ in range(6)]

    answers = [
        client.post(unsubscribe_path(token), {"lang": "en"}, **PROVIDER).status_code
        for token in tokens
    ]

    assert answers == [200] * 5 + [429]


PROXY = "10.0.0.7"


def test_behind_a_trusted_proxy_the_ip_limit_counts_the_forwarded_client(
    client: Client, limits: Any
) -> None:
    limits.TRUSTED_PROXIES = ["10.0.0.0/24"]
    tokens = [preference_token_issue(contact=ContactFactory()) for _ in range(6)]

    # six people behind the same proxy are six clients
    answers = [
        client.get(
            center_path(token),
            REMOTE_ADDR=PROXY,
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
        ).status_code
        for n, token in enumerate(tokens)
    ]
    assert answers == [200] * 6

    # while one client past its allowance is refused, whichever token it tries
    for token in tokens[:5]:
        client.get(center_path(token), REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert_limited(
        client.get(
            center_path(tokens[5]),
            REMOTE_ADDR=PROXY,
            HTTP_X_FORWARDED_FOR="203.0.113.5",
            HTTP_ACCEPT_LANGUAGE="en",
        )
    )


def test_a_forwarded_for_header_from_an_untrusted_peer_changes_nothing(
    client: Client, limits: Any
) -> None:
    limits.TRUSTED_PROXIES = ["10.0.0.0/24"]
    tokens = [preference_token_issue(contact=ContactFactory()) for _ in range(6)]

    # a client writing a new address in the header each time is still one client
    answers = [
        client.get(
            center_path(token),
            REMOTE_ADDR="203.0.113.66",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
            HTTP_ACCEPT_LANGUAGE="en",
        ).status_code
        for n, token in enumerate(tokens)
    ]

    assert answers == [200] * 5 + [429]
