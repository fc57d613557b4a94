"""The breach register's pages in a real headless Chromium, 1,366 px wide: no horizontal
overflow with long texts, nothing refused by the Content-Security-Policy."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Browser, Page

from privacy.breaches import breach_update
from privacy.models import Breach
from tests.admin.conftest import otp_verified_login
from tests.api.live import LIVE_DB
from tests.factories import BreachFactory, UserFactory
from tests.preferences.browser import chromium

pytestmark = [pytest.mark.slow, LIVE_DB]

WIDTH = 1366
# a pasted URL or log line: one unbroken word
UNBROKEN = "https://files.example.fr/exports/" + "clients-" * 30 + "2026.csv"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser, live_server: Any) -> Iterator[Page]:
    client = Client()
    otp_verified_login(client, UserFactory(username="root-persona", is_superuser=True))
    context = browser.new_context(
        base_url=live_server.url, locale="en-GB", viewport={"width": WIDTH, "height": 800}
    )
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )
    page = context.new_page()
    page.refused = []  # type: ignore[attr-defined]
    page.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text and page.refused.append(message.text)
        ),  # type: ignore[attr-defined]
    )
    yield page
    context.close()


def overflow(page: Page) -> int:
    """How many pixels the page is wider than the window (0: none)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def test_the_breach_pages_fit_1366_pixels(page: Page) -> None:
    breach = BreachFactory(
        reference="Fuite " + "très longue " * 15,
        nature=UNBROKEN,
        measures="Mesures " * 80,
        risk="high",
    )

    for url in (
        reverse("admin:privacy_breach_changelist"),
        reverse("admin:privacy_breach_change", args=[breach.pk]),
        reverse("admin:privacy_breach_notify", args=[breach.pk]),
        reverse("admin:privacy_breach_add"),
        reverse("admin:privacy_breach_register_print"),
    ):
        response = page.goto(url)
        assert response is not None and response.status == 200, url
        assert overflow(page) <= 0, url

    assert page.refused == []  # type: ignore[attr-defined]


def test_the_breach_history_open_fits_1366_pixels(page: Page) -> None:
    breach = BreachFactory(
        aware_at=timezone.now() - timedelta(hours=30), risk="none", measures="Mesures " * 40
    )
    Breach.objects.filter(pk=breach.pk).update(reminded_24h_at=timezone.now())
    for hours in (20, 10):
        breach_update(
            breach=Breach.objects.get(pk=breach.pk),
            by="dpo-" + "anne" * 20,
            reason=UNBROKEN,
            aware_at=timezone.now() - timedelta(hours=hours),
            not_notified=True,
            not_notified_reason="Chiffré " * 60,
        )

    page.goto(reverse("admin:privacy_breach_change", args=[breach.pk]))
    page.click(".breach-history summary")

    assert page.is_visible(".breach-history table")
    assert overflow(page) <= 0
    page.goto(reverse("admin:privacy_breach_register_print"))
    assert overflow(page) <= 0
    assert page.refused == []  # type: ignore[attr-defined]
