"""The admin at 1,366 px in a real headless Chromium, over the demo data (issue 15, point 1).

Every change list fits the screen (no page wider than the window, no list scrolled sideways
to reach its last columns), and axe-core finds no serious or critical violation (contrast
included) on the pages staff use most, the friendly 403 among them.
"""

from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.urls import NoReverseMatch, reverse
from playwright.sync_api import Browser, Page

from tests.admin.conftest import otp_verified_login
from tests.api.live import LIVE_DB
from tests.factories import AuditEventFactory, ContactFactory, UserFactory
from tests.preferences.browser import blocking_violations, chromium

pytestmark = [pytest.mark.slow, LIVE_DB]

WIDTH = 1366
AUDITED_PAGES = [
    "admin:index",
    "admin:privacy_privacyrequest_changelist",
    "admin:core_auditevent_changelist",
    "admin:contacts_contact_changelist",
    "admin:consent_consentrecord_changelist",
    "admin:campaigns_campaign_changelist",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


def logged_in_page(browser: Browser, live_server: Any, user: object) -> Page:
    """A page whose browser holds `user`'s admin session (password and second factor)."""
    client = Client()
    otp_verified_login(client, user)
    context = browser.new_context(
        base_url=live_server.url,
        viewport={"width": WIDTH, "height": 768},
        locale="fr-FR",
    )
    context.set_default_timeout(10_000)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    return context.new_page()


@pytest.fixture
def demo(db: None) -> None:
    call_command("seed_demo", stdout=StringIO(), stderr=StringIO())
    # the longest values a list meets: a long name and address, a long search in the log
    long = ContactFactory(
        first_name="Marie-Bernadette-Geneviève",
        last_name="de La Tour d'Auvergne-Lauraguais",
        email="marie-bernadette.de-la-tour-dauvergne-lauraguais@une-entreprise-au-nom-long.fr",
        # with a country: the contacts' country filter offers a nameless link for "no country"
        # (contacts.admin), which axe reports on its own
        country="FR",
    )
    AuditEventFactory(
        contact=long, username="admin", details={"search": "x" * 120, "filters": {"a": "b" * 80}}
    )


@pytest.fixture
def superuser_page(browser: Browser, live_server: Any, demo: None) -> Iterator[Page]:
    page = logged_in_page(browser, live_server, UserFactory(username="root", is_superuser=True))
    yield page
    page.context.close()


def changelists() -> list[str]:
    urls = []
    for model in admin.site._registry:
        try:
            urls.append(
                reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
            )
        except NoReverseMatch:
            continue
    return sorted(urls)


def overflow(page: Page) -> dict[str, int]:
    """How many pixels the page, and the change list's table, stick out sideways."""
    return page.evaluate(
        """() => {
            const results = document.querySelector('#changelist .results');
            return {
                page: document.documentElement.scrollWidth - window.innerWidth,
                list: results ? results.scrollWidth - results.clientWidth : 0,
            };
        }"""
    )


def test_every_change_list_fits_a_1366_px_screen(superuser_page: Page) -> None:
    too_wide = {}
    for url in changelists():
        response = superuser_page.goto(url)
        assert response is not None and response.status == 200, url
        sticking_out = overflow(superuser_page)
        if max(sticking_out.values()) > 0:
            too_wide[url] = sticking_out

    assert too_wide == {}


def test_the_pages_staff_use_most_pass_axe_contrast_included(superuser_page: Page) -> None:
    problems = []
    for name in AUDITED_PAGES:
        superuser_page.goto(reverse(name))
        problems += blocking_violations(superuser_page)

    assert not problems, "axe-core found serious or critical violations:\n" + "\n".join(problems)


def test_the_friendly_403_passes_axe(browser: Browser, live_server: Any, demo: None) -> None:
    marketer = UserFactory(username="marketer-persona")
    marketer.groups.add(Group.objects.get(name="Marketers"))
    page = logged_in_page(browser, live_server, marketer)

    response = page.goto(reverse("admin:core_auditevent_changelist"))

    assert response is not None and response.status == 403
    assert overflow(page)["page"] <= 0
    assert blocking_violations(page) == []
    page.context.close()
