"""Staff pages in a real headless Chromium: the CSP blocks nothing they need.

A superuser enrols an authenticator app, logs in with a code, opens admin pages and the API
docs; the browser reports every resource the Content-Security-Policy refused.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Browser, Page, expect

from tests.api.live import LIVE_DB
from tests.factories import UserFactory, totp_code
from tests.preferences.browser import chromium

pytestmark = [pytest.mark.slow, LIVE_DB]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser, live_server: Any) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server.url, locale="en-GB")
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


def test_a_superuser_enrols_logs_in_and_uses_the_admin_and_api_docs_under_the_csp(page):
    UserFactory(username="root", is_superuser=True)

    page.goto("/admin/")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_alt_text("QR code of the authenticator key")).to_be_visible()
    assert (
        page.get_by_alt_text("QR code of the authenticator key").evaluate("img => img.naturalWidth")
        > 0
    )
    device = TOTPDevice.objects.get(user__username="root")
    page.get_by_label("Code from your authenticator app").fill(totp_code(device))
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()

    page.goto("/admin/contacts/contact/")
    expect(page.get_by_role("heading", name="Select contact to change")).to_be_visible()
    page.goto("/admin/core/auditevent/")
    page.goto("/admin/consent/purpose/add/")
    expect(page.locator("#purpose_form")).to_be_visible()

    page.goto("/api/docs/")
    expect(page.get_by_role("heading", name="Consent Desk API")).to_be_visible()
    expect(page.get_by_text("/api/v1/contacts/").first).to_be_visible()

    page.goto("/")
    expect(page.get_by_role("link", name="API documentation")).to_be_visible()

    assert page.refused == []  # type: ignore[attr-defined]
