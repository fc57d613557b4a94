"""The double opt-in confirmation page `/confirm/<token>/` is a recipient page like the others:
private headers, rate limits and its token masked in the logs."""

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from freezegun import freeze_time

from consent.models import Purpose
from consent.services import confirmation_token
from contacts.models import Contact
from preferences.logging import SecretPathFilter, mask_secret_paths
from tests.factories import ContactFactory, PurposeFactory, grant
from tests.preferences.conftest import page_text

pytestmark = pytest.mark.django_db

HOME = {"REMOTE_ADDR": "198.51.100.23", "HTTP_ACCEPT_LANGUAGE": "en"}


@pytest.fixture
def letter(db: None) -> Purpose:
    return PurposeFactory(slug="letter", double_opt_in=True, channels=["email"])


def confirm_path(contact: Contact, purpose: Purpose) -> str:
    record = grant(contact, purpose)
    token = confirmation_token(contact=contact, record_uuids=[str(record.uuid)])
    return reverse("preferences:confirm", args=[token])


def assert_private(response: Any) -> None:
    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] in ("same-origin", "no-referrer")
    # the policy itself comes from the project's CSP; here: present, and no script allowed
    policy = response["Content-Security-Policy"]
    assert "unsafe-inline" not in policy
    assert "script-src" not in policy.replace("script-src 'none'", "")


def test_confirmation_page_is_private_and_runs_no_script(
    client: Client, camille: Contact, letter: Purpose
) -> None:
    path = confirm_path(camille, letter)

    shown = client.get(path, **HOME)
    done = client.post(path, **HOME)

    assert shown.status_code == done.status_code == 200
    for response in (shown, done):
        assert_private(response)
        assert "<script" not in response.content.decode().lower()
    assert_private(client.get("/confirm/not-a-token/", **HOME))


@pytest.fixture
def limits(settings: Any) -> Iterator[Any]:
    settings.PREFERENCES_RATE_PER_TOKEN = "3/m"
    settings.PREFERENCES_RATE_PER_IP = "5/m"
    with freeze_time("2026-03-02 10:00:05"):
        yield settings


def test_confirmation_page_is_limited_per_token(
    client: Client, camille: Contact, letter: Purpose, limits: Any
) -> None:
    path = confirm_path(camille, letter)

    assert [client.get(path, **HOME).status_code for _ in range(3)] == [200, 200, 200]

    limited = client.post(path, **HOME)
    assert limited.status_code == 429
    assert "Too many requests" in page_text(limited)
    assert camille.consent_states.get().status == "pending"  # the refused POST did nothing


def test_guessed_confirmation_tokens_meet_the_ip_limit(client: Client, limits: Any) -> None:
    for guess in range(5):
        assert client.get(f"/confirm/guess-{guess}/", **HOME).status_code == 404

    assert client.get("/confirm/guess-6/", **HOME).status_code == 429


def test_confirmation_token_never_reaches_the_log(
    client: Client, camille: Contact, letter: Purpose
) -> None:
    [handler] = [
        handler
        for handler in logging.getLogger().handlers
        if any(isinstance(f, SecretPathFilter) for f in handler.filters)
    ]
    written = io.StringIO()
    previous = handler.setStream(written)
    try:
        secret = confirm_path(camille, letter).split("/")[2]
        client.get(f"/confirm/{secret[:-4]}/", **HOME)  # a broken link: a logged 404
    finally:
        handler.setStream(previous)

    logged = written.getvalue()
    assert "Not Found: /confirm/…/" in logged
    assert secret[:-4] not in logged
    assert mask_secret_paths(f"GET /confirm/{secret}/ HTTP/1.1") == "GET /confirm/…/ HTTP/1.1"


def test_confirmation_page_follows_the_browser_when_the_language_is_unknown(
    client: Client, letter: Purpose
) -> None:
    unknown = ContactFactory(language="")
    path = confirm_path(unknown, letter)

    english = client.get(path, HTTP_ACCEPT_LANGUAGE="en")
    french = client.get(path, HTTP_ACCEPT_LANGUAGE="fr")

    assert english["Content-Language"] == "en"
    assert "Confirm your subscription" in page_text(english)
    assert french["Content-Language"] == "fr"


def test_the_signup_link_page_is_private_and_limited_too(client: Client, limits: Any) -> None:
    # the link emailed to a suppressed address with no contact (an erased person signing up)
    for guess in range(5):
        response = client.get(f"/confirm/s-guess-{guess}/", **HOME)
        assert response.status_code == 404
        assert_private(response)

    assert client.get("/confirm/s-guess-6/", **HOME).status_code == 429
    assert mask_secret_paths("GET /confirm/s-abc.def/ HTTP/1.1") == "GET /confirm/…/ HTTP/1.1"
