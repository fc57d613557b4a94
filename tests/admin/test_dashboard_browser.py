"""The admin home's dashboards in a real headless Chromium, 1,366 px wide: nothing overflows the
page sideways, the CSP refuses nothing, and axe-core finds nothing blocking."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from privacy.models import PrivacyRequest
from tests.admin.conftest import otp_verified_login
from tests.api.live import LIVE_DB
from tests.campaigns.test_stats import campaign_with_feedback
from tests.factories import BreachFactory, ContactFactory, PrivacyRequestFactory, UserFactory, grant
from tests.preferences.browser import blocking_violations, chromium

pytestmark = [pytest.mark.slow, LIVE_DB]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser, live_server: Any) -> Iterator[Page]:
    """A superuser's verified session, 1,366 px wide, noting what the CSP refuses."""
    client = Client()
    otp_verified_login(client, UserFactory(username="root", is_superuser=True))
    context = browser.new_context(
        base_url=live_server.url, locale="en-GB", viewport={"width": 1366, "height": 800}
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


def test_both_dashboards_fit_a_1366_px_screen_under_the_csp_and_pass_axe(page: Page) -> None:
    # given: a campaign with results, consents, a late request and a breach with a long name
    campaign = campaign_with_feedback()
    offers = campaign.purpose
    for _ in range(3):
        grant(ContactFactory(), offers, "email")
    request = PrivacyRequestFactory()
    PrivacyRequest.objects.filter(pk=request.pk).update(due_at=timezone.now() - timedelta(days=2))
    BreachFactory(reference="Fuite-du-fichier-clients-exporté-vers-un-prestataire-" * 3)

    for view, heading in (("dpo", "DPO dashboard"), ("marketer", "Marketing dashboard")):
        page.goto("/admin/?view=" + view)
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
        expect(page.get_by_role("heading", name="Site administration")).to_be_visible()

        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, view
        assert blocking_violations(page) == []

    assert page.refused == []  # type: ignore[attr-defined]
