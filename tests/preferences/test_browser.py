"""The recipient pages in a real headless Chromium, against the live server (issue 3, point 6).

Camille (French) follows her links: she changes a consent, pauses, unsubscribes in one click
and comes back, switches the page to English, and does it all again with JavaScript off.
axe-core audits every page she can land on. Each step is checked in the database.
"""

import re
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.core import mail
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from consent.models import ConsentAction, ConsentState, ConsentStatus, Purpose, SourceKind
from contacts.models import Contact, ContactStatus
from contacts.services import contact_pause
from preferences.services import LinkAction, action_link_send, preference_token_issue
from tests.api.live import LIVE_DB
from tests.factories import InterestFactory, grant
from tests.preferences.browser import blocking_violations, chromium

pytestmark = [pytest.mark.slow, LIVE_DB]

UNKNOWN_TOKEN = "x" * 43


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def new_page(browser: Browser, live_server: Any) -> Iterator[Callable[..., Page]]:
    """`new_page(**context_options)`: a page in a fresh browser context (no cookies)."""
    contexts = []

    def open_page(**options: Any) -> Page:
        context = browser.new_context(base_url=live_server.url, **options)
        context.set_default_timeout(10_000)  # a local page: fail fast rather than after 30 s
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[..., Page]) -> Page:
    return new_page()


def tick_and_save(page: Page, purpose_name: str, channel_label: str, button: str) -> None:
    """Tick one channel of one purpose in the consents form and submit it."""
    group = page.get_by_role("group", name=purpose_name, exact=True)
    group.get_by_label(channel_label, exact=True).check()
    page.get_by_role("button", name=button).click()


def states_of(contact: Contact) -> dict[tuple[str, str], ConsentState]:
    return {
        (state.purpose.slug, state.channel): state
        for state in ConsentState.objects.filter(contact=contact).select_related(
            "purpose", "record"
        )
    }


def test_ticking_a_box_records_a_grant_with_the_wording_and_browser_as_evidence(
    page: Page, camille: Contact, token: str, newsletter: Purpose, offers: Purpose
) -> None:
    # given
    page.goto(f"/p/{token}/?lang=en")
    expect(page.locator("#consent-newsletter-email")).not_to_be_checked()
    user_agent = page.evaluate("navigator.userAgent")

    # when
    tick_and_save(page, "Newsletter", "Email", "Save my choices")

    # then
    expect(page.get_by_role("status")).to_have_text("Your choices are saved.")
    expect(page.locator("#consent-newsletter-email")).to_be_checked()
    states = states_of(camille)
    assert list(states) == [("newsletter", "email")], "only the ticked box changed"
    record = states["newsletter", "email"].record
    assert states["newsletter", "email"].status == ConsentStatus.GRANTED
    assert record.action == ConsentAction.GRANT
    assert record.source_kind == SourceKind.PREFERENCE_CENTER
    assert record.wording == newsletter.current_version.wording_en
    assert record.unticked_by_default is True
    assert record.policy_version == settings.PRIVACY_POLICY_VERSION
    assert record.personal_evidence.user_agent == user_agent
    assert record.personal_evidence.ip == "127.0.0.1"


def test_pausing_for_three_months_then_resuming(
    page: Page, camille: Contact, token: str, newsletter: Purpose
) -> None:
    # given
    page.goto(f"/p/{token}/?lang=en")

    # when
    page.get_by_label("3 months", exact=True).check()
    page.get_by_role("button", name="Pause my messages").click()

    # then
    expect(page.get_by_role("status")).to_have_text("Your messages are paused.")
    camille.refresh_from_db()
    assert camille.status == ContactStatus.PAUSED
    expected_end = timezone.now() + relativedelta(months=3)
    assert abs(camille.paused_until - expected_end) < timedelta(minutes=5)

    # when
    page.get_by_role("button", name="Resume now").click()

    # then
    expect(page.get_by_role("status")).to_have_text("Your messages are back on.")
    camille.refresh_from_db()
    assert camille.status == ContactStatus.ACTIVE
    assert camille.paused_until is None


def test_one_click_unsubscribe_then_resubscribe_from_the_offered_link(
    page: Page, camille: Contact, token: str, newsletter: Purpose, offers: Purpose
) -> None:
    # given
    for purpose, channel in ((newsletter, "email"), (newsletter, "sms"), (offers, "email")):
        grant(camille, purpose, channel)
    page.goto(f"/u/{token}/?lang=en")

    # when
    page.get_by_role("button", name="Unsubscribe from all").click()

    # then
    expect(page.get_by_role("heading", level=1)).to_have_text("You are unsubscribed")
    states = states_of(camille)
    assert len(states) == 3
    assert {state.status for state in states.values()} == {ConsentStatus.WITHDRAWN}
    assert {state.record.source_kind for state in states.values()} == {
        SourceKind.ONE_CLICK_UNSUBSCRIBE
    }

    # when
    page.get_by_role("link", name="Resubscribe or choose what I receive").click()
    page.get_by_role("button", name="Resubscribe", exact=True).click()

    # then
    expect(page.get_by_role("status")).to_have_text("You are subscribed again.")
    states = states_of(camille)
    assert len(states) == 3
    assert {state.status for state in states.values()} == {ConsentStatus.GRANTED}
    assert {state.record.source_kind for state in states.values()} == {SourceKind.PREFERENCE_CENTER}


def test_the_page_switches_to_english_and_stays_english_after_a_submit(
    page: Page, camille: Contact, token: str, newsletter: Purpose
) -> None:
    # given
    page.goto(f"/p/{token}/")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.get_by_role("heading", level=1)).to_have_text("Vos préférences de communication")
    expect(page.get_by_label("3 mois", exact=True)).to_be_visible()  # form labels follow it too

    # when
    page.get_by_role("link", name="English").click()

    # then
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Your communication preferences")
    expect(page.get_by_label("3 months", exact=True)).to_be_visible()

    # when
    tick_and_save(page, "Newsletter", "Email", "Save my choices")

    # then
    expect(page.get_by_role("status")).to_have_text("Your choices are saved.")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    record = states_of(camille)["newsletter", "email"].record
    assert record.language == "en"
    assert record.wording == newsletter.current_version.wording_en


def test_a_consent_change_works_with_javascript_disabled(
    new_page: Callable[..., Page], camille: Contact, token: str, newsletter: Purpose
) -> None:
    # given
    grant(camille, newsletter, "sms")
    page = new_page(java_script_enabled=False)
    page.goto(f"/p/{token}/?lang=en")

    # when: tick email, untick SMS
    group = page.get_by_role("group", name="Newsletter", exact=True)
    group.get_by_label("Email", exact=True).check()
    group.get_by_label("SMS", exact=True).uncheck()
    page.get_by_role("button", name="Save my choices").click()

    # then
    expect(page.get_by_role("status")).to_have_text("Your choices are saved.")
    states = states_of(camille)
    assert states["newsletter", "email"].status == ConsentStatus.GRANTED
    assert states["newsletter", "sms"].status == ConsentStatus.WITHDRAWN
    assert states["newsletter", "email"].record.source_kind == SourceKind.PREFERENCE_CENTER
    assert states["newsletter", "sms"].record.source_kind == SourceKind.PREFERENCE_CENTER


def _confirmation_path(contact: Contact, action: str, new_email: str = "") -> str:
    """The path of the link `action_link_send` emails for `action`."""
    mail.outbox.clear()
    assert action_link_send(contact_id=contact.pk, action=action, new_email=new_email)
    (message,) = mail.outbox
    return re.search(r"/p/confirm/[^/\s]+/", message.body).group()


def test_no_recipient_page_has_a_serious_or_critical_accessibility_violation(
    page: Page,
    camille: Contact,
    token: str,
    purposes: dict[str, Purpose],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given: every part of the center shows (topics, profiling, a required purpose)
    InterestFactory(slug="gardening", name_en="Gardening", name_fr="Jardinage")
    InterestFactory(slug="cooking", name_en="Cooking", name_fr="Cuisine")
    grant(camille, purposes["newsletter"], "email")
    problems: list[str] = []

    def audit(expected_status: int, path: str | None = None) -> None:
        if path is not None:
            response = page.goto(path)
            assert response is not None and response.status == expected_status, path
        problems.extend(blocking_violations(page))

    # the center, in both languages, and with errors next to a field
    audit(200, f"/p/{token}/")
    audit(200, f"/p/{token}/?lang=en")
    page.get_by_label("Mobile phone").fill("12")
    page.get_by_role("button", name="Save my details").click()
    expect(page.locator(".errorlist")).not_to_have_count(0)
    audit(400)
    # paused, then one-click unsubscribed: the banners
    contact_pause(contact=camille, months=1)
    audit(200, f"/p/{token}/?lang=en")
    audit(200, f"/u/{token}/")
    page.get_by_role("button").click()
    expect(page.get_by_role("status")).to_be_visible()
    audit(200)
    audit(200, f"/p/{token}/?lang=en")
    # the links sent by email, and what they answer
    audit(200, _confirmation_path(camille, LinkAction.DOWNLOAD))
    audit(200, _confirmation_path(camille, LinkAction.EMAIL_CHANGE, "c.durand@example.com"))
    audit(200, _confirmation_path(camille, LinkAction.ERASURE))
    page.get_by_role("button").click()
    expect(page.get_by_role("status")).to_be_visible()
    audit(200)
    # an unknown link, then too many requests on a fresh one
    audit(404, f"/p/{UNKNOWN_TOKEN}/")
    settings.PREFERENCES_RATE_PER_TOKEN = "2/m"
    # the counters use fixed windows: a stopped clock (the limiter's only, the live server
    # runs in this process) keeps the three requests in one, even across a minute's end
    stopped = time.time()
    monkeypatch.setattr("django_ratelimit.core.time", SimpleNamespace(time=lambda: stopped))
    fresh = preference_token_issue(contact=camille)
    for _ in range(2):
        page.goto(f"/p/{fresh}/")
    audit(429, f"/p/{fresh}/")

    # then
    assert not problems, "axe-core found serious or critical violations:\n" + "\n".join(problems)
