"""The console in Chromium: each role sees only its navigation; a new key is shown once; the
Users and API keys pages, photographed for the README."""

import re

import pytest
from playwright.sync_api import expect

from console.services import create_api_key, create_team, set_user_limits
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

NAV = {
    "admin": ["Dashboard", "Usage", "Models", "Jobs", "Playground", "API keys", "Users", "Audit"],
    "member": ["Dashboard", "Usage", "Models", "Playground", "API keys"],
    "auditor": ["Dashboard", "Usage", "Models", "Audit"],
    "outsider": ["Dashboard", "Usage", "Models", "Playground", "API keys"],
}


@pytest.mark.parametrize("role", NAV)
def test_each_role_sees_only_its_navigation(new_page, request, role):
    page = new_page(request.getfixturevalue(role))
    nav = page.get_by_role("navigation", name="Console")
    expect(nav.get_by_role("link")).to_have_text(NAV[role])
    expect(page.locator(".topbar .badge")).to_have_text("member" if role == "outsider" else role)


def test_a_new_key_is_shown_once(new_page, member, default_model):
    set_user_limits(user=member, rpm=60, tokens_per_day=200_000, concurrency=4)
    create_api_key(user=member, name="laptop", models=["gemma3-270m"])
    page = new_page(member)
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name", exact=True).fill("ci")
    page.get_by_label("Requests per minute").fill("10")
    page.get_by_label("Concurrent requests").fill("2")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("code.secret")
    expect(secret).to_have_text(re.compile(r"^lt-\S{40,}$"))
    expect(page.get_by_role("row", name=re.compile(r"^ci "))).to_contain_text("10 rpm")
    screenshot(page, "keys")
    raw = secret.inner_text()
    page.reload()
    expect(page.get_by_role("row", name=re.compile(r"^ci "))).to_be_visible()
    expect(page.locator("code.secret")).to_have_count(0)
    assert raw not in page.content()


def test_the_users_page(new_page, admin, member, auditor, outsider):
    set_user_limits(user=member, rpm=60, tokens_per_day=200_000, concurrency=4)
    create_team(name="research", members=[admin, member])
    page = new_page(admin)
    page.get_by_role("link", name="Users").click()
    page.get_by_label("New user").fill("erin")
    page.get_by_label("Role", exact=True).select_option("member")
    page.get_by_role("button", name="Create user").click()
    expect(page.locator("code.secret")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"^erin"))).to_be_visible()
    screenshot(page, "users")
