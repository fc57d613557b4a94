"""The contact page and the offline-consent form in a real headless Chromium, 1,366 pixels
wide: nothing overflows the page, the ledger starts collapsed, and the CSP refuses nothing."""

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from consent.services import Evidence
from tests.api.live import LIVE_DB
from tests.factories import (
    ContactFactory,
    PurposeFactory,
    TOTPDeviceFactory,
    UserFactory,
    grant,
    totp_code,
)
from tests.preferences.browser import chromium

pytestmark = [pytest.mark.slow, LIVE_DB]

SCREEN_WIDTH = 1366
LONG_FORM_URL = "https://www.example.fr/inscription/newsletter-mensuelle-des-offres?" + (
    "utm_source=salon-des-metiers-2026&utm_medium=tablette&utm_campaign=rentree" * 3
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser, live_server: Any) -> Iterator[Page]:
    context = browser.new_context(
        base_url=live_server.url,
        locale="en-GB",
        viewport={"width": SCREEN_WIDTH, "height": 768},
    )
    context.set_default_timeout(10_000)
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


def log_in(page: Page) -> None:
    user = UserFactory(username="root", is_superuser=True)
    device = TOTPDeviceFactory(user=user)
    page.goto("/admin/login/?next=/admin/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("correct horse battery")
    page.locator("input[name=otp_token]").fill(totp_code(device))
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()


def page_width(page: Page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth")


def test_the_contact_page_fits_a_1366_pixel_screen(page: Page) -> None:
    person = ContactFactory(first_name="Inès", last_name="Moreau", company="Atelier Moreau")
    for number in range(6):
        purpose = PurposeFactory(
            name_en=f"Monthly newsletter of our offers and events, edition {number}",
            channels=["email", "sms", "postal", "phone", "push"],
        )
        grant(person, purpose, source_reference=LONG_FORM_URL)
        grant(
            person,
            purpose,
            channel="phone",
            source_kind="phone_call",
            source_reference=f"CALL-2026-{number:04}",
            evidence=Evidence(wording="May we call you about our offers?"),
        )
    log_in(page)

    page.goto(f"/admin/contacts/contact/{person.pk}/change/")

    expect(page.get_by_role("heading", name="Current consents")).to_be_visible()
    assert page_width(page) <= SCREEN_WIDTH
    ledger = page.locator("details.contact-ledger")
    assert ledger.get_attribute("open") is None  # collapsed
    ledger.locator("summary").click()
    expect(ledger.get_by_text("via a phone call (CALL-2026-0005)")).to_be_visible()
    assert page_width(page) <= SCREEN_WIDTH

    page.get_by_role("link", name="Record a consent (paper form or phone call)").click()
    expect(page.get_by_label("Reference")).to_be_visible()
    assert page_width(page) <= SCREEN_WIDTH
    assert page.refused == []  # type: ignore[attr-defined]
