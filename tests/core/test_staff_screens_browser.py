"""The marketer's and the DPO's main screens in a real Chromium at 1,366 px, in French.

The demo data (`seed_demo`) is loaded, each persona logs in with their password and
authenticator code, then walks their screens: the page must not be wider than the screen,
axe-core must find no serious or critical violation, and a screenshot of each screen is
kept in `var/ci/screenshots/` (the CI artefacts).
"""

from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Browser, Page, expect

from campaigns.models import Campaign
from contacts.models import Contact
from core.management.commands.seed_demo import (
    DEMO_BREACH,
    DEMO_CAMPAIGN,
    DPO_PASSWORD,
    DPO_USERNAME,
    MARKETER_PASSWORD,
    MARKETER_USERNAME,
)
from privacy.models import Breach, PrivacyRequest
from tests.api.live import LIVE_DB
from tests.factories import totp_code
from tests.preferences.browser import blocking_violations, chromium

pytestmark = [pytest.mark.slow, LIVE_DB]

SCREEN = {"width": 1366, "height": 768}
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "ci" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def demo() -> None:
    call_command("seed_demo", stdout=StringIO(), stderr=StringIO())


@pytest.fixture
def open_as(browser: Browser, live_server: Any, demo: None) -> Iterator[Any]:
    contexts = []

    def open_as(username: str, password: str) -> Page:
        context = browser.new_context(base_url=live_server.url, locale="fr-FR", viewport=SCREEN)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        user = get_user_model().objects.get(username=username)
        device, _ = TOTPDevice.objects.get_or_create(
            user=user, name="demo", defaults={"confirmed": True}
        )
        page.goto("/admin/")
        page.locator("#id_username").fill(username)
        page.locator("#id_password").fill(password)
        page.get_by_label("Code de votre application d’authentification").fill(totp_code(device))
        page.locator("#login-form [type=submit]").click()
        expect(page.locator("#user-tools")).to_be_visible()
        return page

    yield open_as
    for context in contexts:
        context.close()


def look_at(page: Page, path: str, name: str) -> None:
    """Open the screen, check that it fits 1,366 px and passes axe, keep a screenshot."""
    response = page.goto(path)
    assert response is not None and response.status == 200, f"{path}: {response}"
    assert page.locator("html").get_attribute("lang") == "fr"
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= SCREEN["width"], f"{path} is {overflow} px wide"
    assert blocking_violations(page) == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def a_demo_contact() -> Contact:
    return Contact.objects.exclude(status="erased").order_by("email").first()  # type: ignore[return-value]


def test_the_dpo_walks_the_dashboard_contact_requests_and_registers_in_french(open_as):
    page = open_as(DPO_USERNAME, DPO_PASSWORD)

    look_at(page, "/admin/", "dpo-dashboard")
    expect(page.get_by_role("heading", name="Demandes d’exercice de droits")).to_be_visible()
    expect(page.get_by_role("heading", name="Journal des consentements")).to_be_visible()
    expect(page.get_by_text(DEMO_BREACH)).to_be_visible()

    look_at(page, f"/admin/contacts/contact/{a_demo_contact().pk}/change/", "dpo-contact")
    expect(page.get_by_role("heading", name="Consentements actuels")).to_be_visible()

    look_at(page, "/admin/privacy/privacyrequest/", "dpo-requests")
    expect(page.locator("#result_list tbody tr")).to_have_count(PrivacyRequest.objects.count())
    look_at(page, "/admin/privacy/processingactivity/", "dpo-register-processing")
    look_at(page, "/admin/privacy/processingactivity/print/", "dpo-register-processing-print")
    look_at(page, "/admin/privacy/processor/", "dpo-register-processors")
    look_at(page, "/admin/privacy/breach/", "dpo-register-breaches")
    breach = Breach.objects.get(reference=DEMO_BREACH)
    look_at(page, f"/admin/privacy/breach/{breach.pk}/change/", "dpo-breach")
    look_at(page, "/admin/contacts/note/", "dpo-notes-held")
    look_at(page, "/admin/core/auditevent/", "dpo-audit-log")


def test_the_marketer_walks_the_dashboard_contacts_and_campaigns_in_french(open_as):
    page = open_as(MARKETER_USERNAME, MARKETER_PASSWORD)

    look_at(page, "/admin/", "marketer-dashboard")
    expect(page.get_by_role("heading", name="Audience par finalité et par canal")).to_be_visible()
    expect(page.get_by_text(DEMO_CAMPAIGN).first).to_be_visible()
    # the DPO's panels are not the marketer's
    expect(page.get_by_role("heading", name="Demandes d’exercice de droits")).to_have_count(0)

    look_at(page, "/admin/contacts/contact/", "marketer-contacts")
    look_at(page, f"/admin/contacts/contact/{a_demo_contact().pk}/change/", "marketer-contact")
    look_at(page, "/admin/campaigns/campaign/", "marketer-campaigns")
    campaign = Campaign.objects.get(name=DEMO_CAMPAIGN)
    look_at(page, f"/admin/campaigns/campaign/{campaign.pk}/change/", "marketer-campaign")

    # a DPO screen: the friendly French refusal, not a bare English 403
    response = page.goto("/admin/privacy/breach/")
    assert response is not None and response.status == 403
    expect(page.get_by_text("Votre rôle ne vous donne pas accès à cette page.")).to_be_visible()
    assert blocking_violations(page) == []
