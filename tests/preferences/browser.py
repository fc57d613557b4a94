"""A real headless Chromium (Debian's) driven by Playwright, and axe-core to audit its pages.

Plain helpers, imported by the browser tests: the fixtures live in the test module.
"""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, sync_playwright

DEBIAN_CHROMIUM = "/usr/bin/chromium"
# What axe reports that a person using a screen reader or a keyboard could not get past.
BLOCKING_IMPACTS = {"serious", "critical"}


def chromium_executable() -> str:
    """The Chromium binary; skips the test, or fails it in CI, where there is none."""
    found = shutil.which("chromium") or (
        DEBIAN_CHROMIUM if Path(DEBIAN_CHROMIUM).is_file() else None
    )
    if found is None:
        reason = f"no Chromium ({DEBIAN_CHROMIUM}): apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests, not skip them")
        pytest.skip(reason)
    return found


@contextmanager
def chromium() -> Iterator[Browser]:
    """Launch headless Chromium for as long as the block runs.

    Playwright's sync API keeps an event loop running in this thread, which makes Django
    refuse ORM calls here (SynchronousOnlyOperation) although they stay synchronous: the
    tests set data up and read the database between browser steps, so allow them meanwhile.
    """
    executable = chromium_executable()
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, headless=True)
            try:
                yield browser
            finally:
                browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


_axe = Axe()


def blocking_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page, one readable line each."""
    violations = _axe.run(page).response["violations"]
    return [
        f"{page.url}: {violation['id']} ({violation['impact']}): {violation['help']} "
        f"at {[node['target'] for node in violation['nodes']]}"
        for violation in violations
        if violation["impact"] in BLOCKING_IMPACTS
    ]
