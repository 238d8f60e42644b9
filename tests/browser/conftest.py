"""Browser tests: Playwright for Python driving Debian's Chromium (/usr/bin/chromium) against the
real stack's ASGI server. Skipped, saying so, where Chromium is not installed."""

import os
import shutil
from pathlib import Path

import pytest

# Playwright's sync API keeps an event loop running in the test's thread, so Django would refuse
# the test's own ORM calls (fixtures, assertions) as if they came from async code. They do not.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "password"  # the named roles' password (tests/conftest.py)


@pytest.fixture(scope="session")
def browser(django_db_setup):
    """(After the test database exists: creating it with Playwright's loop running fails.)"""
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser, stack):
    """`new_page(user)`: a page in a browser context of its own, signed in as `user` (whose password
    must be PASSWORD)."""
    contexts = []

    def open_page(user, *, width: int = 1280, height: int = 800):
        context = browser.new_context(base_url=stack.url, viewport={"width": width, "height": height})
        context.set_default_timeout(30_000)
        contexts.append(context)
        page = context.new_page()
        page.goto("/login/")
        page.get_by_label("Username").fill(user.username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/login/" not in url)
        return page

    yield open_page
    for context in contexts:
        context.close()


def screenshot(page, name: str) -> None:
    """Saves a screenshot for the README under docs/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
