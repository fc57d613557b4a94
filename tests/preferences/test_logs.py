"""The secret of the recipient pages never reaches a log line (Django's or gunicorn's)."""

import io
import logging
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import Client
from gunicorn.config import Config

from contacts.models import Contact
from preferences.logging import AccessLogger, SecretPathFilter, mask_secret_paths
from tests.preferences.conftest import BROWSER, center_path, post_form, unsubscribe_path


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """What the console handler of the settings' LOGGING writes, for the test's duration."""
    [handler] = [
        handler
        for handler in logging.getLogger().handlers
        if any(isinstance(f, SecretPathFilter) for f in handler.filters)
    ]
    written = io.StringIO()
    previous = handler.setStream(written)
    yield written
    handler.setStream(previous)


def test_a_refused_form_is_logged_without_the_token(
    client: Client, camille: Contact, token: str, console: io.StringIO
) -> None:
    # when a form is refused (Django logs every 4xx answer with its path)
    response = post_form(client, token, "pause", months="7")

    # then the log line names the page, not its token
    assert response.status_code == 400
    logged = console.getvalue()
    assert "Bad Request: /p/…/" in logged
    assert token not in logged


def test_access_log_lines_mask_the_token_in_the_request_line_and_the_referer(
    token: str,
) -> None:
    logger = AccessLogger(Config())
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"/p/{token}/?lang=en",
        "PATH_INFO": f"/p/{token}/",
        "QUERY_STRING": "lang=en",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_REFERER": f"https://consent.example.fr/u/{token}/",
        "REMOTE_ADDR": "203.0.113.7",
    }
    response = SimpleNamespace(status="200 OK", sent=512, headers=[])
    request = SimpleNamespace(headers=[("REFERER", environ["HTTP_REFERER"])])

    atoms = logger.atoms(response, request, environ, timedelta(milliseconds=12))

    assert atoms["r"] == "GET /p/…/?lang=en HTTP/1.1"
    assert atoms["U"] == "/p/…/"
    assert atoms["f"] == "https://consent.example.fr/u/…/"
    assert token not in str(atoms)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("/p/abc_DEF-123/", "/p/…/"),
        ("/u/abc_DEF-123/", "/u/…/"),
        ("/p/confirm/eyJjIjo:1v3:sig/", "/p/confirm/…/"),
        ("/admin/contacts/contact/12/", "/admin/contacts/contact/12/"),
        ("/api/v1/purposes/", "/api/v1/purposes/"),
    ],
)
def test_only_the_secret_part_of_recipient_page_urls_is_masked(text: str, masked: str) -> None:
    assert mask_secret_paths(text) == masked


def test_a_page_under_a_wrong_token_is_logged_without_it(
    client: Client, db: Any, console: io.StringIO
) -> None:
    guessed = "x" * 43

    assert client.get(center_path(guessed), **BROWSER).status_code == 404
    assert client.get(unsubscribe_path(guessed), **BROWSER).status_code == 404

    logged = console.getvalue()
    assert "Not Found: /p/…/" in logged
    assert guessed not in logged
