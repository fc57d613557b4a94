"""The notes' pages in a real headless Chromium, 1,366 px wide: long notes wrap instead of
widening the page, the CSP refuses nothing, and the DPO releases a held note from the list."""

from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from playwright.sync_api import Browser, Page, expect

from contacts.models import Contact, Note, NoteStatus
from contacts.services import note_add
from tests.admin.conftest import otp_verified_login
from tests.api.live import LIVE_DB
from tests.factories import ContactFactory, UserFactory
from tests.preferences.browser import chromium

pytestmark = [pytest.mark.slow, LIVE_DB]

WIDTH = 1366
LONG_WORD = "https://intranet.example.fr/crm/" + "a" * 300
LONG_HELD = ("Suivi après son hospitalisation, rappeler après le ramadan. " * 30) + LONG_WORD


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Browser, live_server: Any) -> Iterator[Page]:
    """A page logged in as the DPO (password and TOTP, as `otp_verified_login` stores them)."""
    call_command("setup_roles", stdout=StringIO())
    dpo = UserFactory(username="dpo-persona")
    dpo.groups.add(Group.objects.get(name="DPO"))
    client = Client()
    otp_verified_login(client, dpo)
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


def assert_no_horizontal_overflow(page: Page) -> None:
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= WIDTH, f"{page.url} is {width} px wide"
    # nor does a list scroll sideways inside the page
    results = page.evaluate(
        "() => [...document.querySelectorAll('.results')].map(e => e.scrollWidth - e.clientWidth)"
    )
    assert all(extra <= 0 for extra in results), f"{page.url}: the list overflows by {results}"


def test_long_notes_wrap_and_the_dpo_releases_one_from_the_list(page: Page) -> None:
    contact: Contact = ContactFactory(
        first_name="Marie-Charlotte",
        last_name="de La Rochefoucauld-Montbel",
        email="marie-charlotte.delarochefoucauld@entreprise-exemple.fr",
    )
    held = note_add(contact=contact, body=LONG_HELD, author=None)
    note_add(contact=contact, body="Rappeler. " * 80 + LONG_WORD, author=None)

    page.goto(f"/admin/contacts/contact/{contact.pk}/change/")
    expect(page.get_by_text("Held for review").first).to_be_visible()
    assert_no_horizontal_overflow(page)

    page.goto("/admin/contacts/note/")
    assert_no_horizontal_overflow(page)
    page.locator(f'input[name="_selected_action"][value="{held.pk}"]').check()
    page.locator('select[name="action"]').select_option("release_notes")
    page.locator("button[name=index]").click()
    expect(page.get_by_role("heading", name="Release these notes?")).to_be_visible()
    assert_no_horizontal_overflow(page)
    page.get_by_label("comment").fill("Explicit consent of the person, Art. 9(2)(a).")
    page.get_by_role("button", name="Yes, release them").click()

    expect(page.get_by_text("1 note(s) released.")).to_be_visible()
    assert Note.objects.get(pk=held.pk).status == NoteStatus.RELEASED
    assert page.refused == []  # type: ignore[attr-defined]
