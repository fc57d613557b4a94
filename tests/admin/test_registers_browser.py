"""The registers' pages in a real headless Chromium, 1,366 px wide: nothing overflows the page
sideways, and the Content-Security-Policy refuses nothing they need."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from playwright.sync_api import Browser, Page

from privacy.models import ProcessingActivity
from tests.admin.conftest import otp_verified_login
from tests.api.live import LIVE_DB
from tests.factories import ProcessorFactory, PurposeFactory
from tests.preferences.browser import chromium

pytestmark = [pytest.mark.slow, LIVE_DB]

LONG_TEXT = " ".join(["Sous-traitant ultérieur de stockage, Francfort (DE)"] * 12)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser, live_server: Any, dpo: object) -> Iterator[Page]:
    client = Client()
    otp_verified_login(client, dpo)
    context = browser.new_context(
        base_url=live_server.url, locale="en-GB", viewport={"width": 1366, "height": 768}
    )
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
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


def overflow(page: Page, path: str) -> int:
    """How many pixels the page is wider than the window once `path` is loaded."""
    response = page.goto(path)
    assert response is not None and response.status == 200, path
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def test_every_register_page_fits_1366_pixels_under_the_csp(page: Page) -> None:
    PurposeFactory(name_en="A purpose whose name is rather long " * 3, channels=["email", "sms"])
    processor = ProcessorFactory(
        name="Processor with a long legal name, Société par actions simplifiée",
        sub_processors=LONG_TEXT,
        end_of_contract=LONG_TEXT,
        country="US",
        clause_audits=False,
    )
    page.goto(reverse("admin:privacy_processingactivity_changelist"))  # syncs the register
    activity = ProcessingActivity.objects.filter(purpose__isnull=False).get()

    pages = [
        reverse("admin:privacy_processingactivity_changelist"),
        reverse("admin:privacy_processingactivity_change", args=[activity.pk]),
        reverse("admin:privacy_processingactivity_register_print"),
        reverse("admin:privacy_processor_changelist"),
        reverse("admin:privacy_processor_change", args=[processor.pk]),
        reverse("admin:privacy_processor_register_print"),
    ]

    assert {path: overflow(page, path) for path in pages} == dict.fromkeys(pages, 0)
    assert page.refused == []  # type: ignore[attr-defined]
