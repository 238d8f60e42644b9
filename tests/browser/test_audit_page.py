"""The Audit page in a real browser: an auditor sees the chain's status and the trail, filters it,
and opens an event's before and after; the screenshot for the README."""

import pytest

from audit.services import verify_trail
from console.services import revoke_api_key
from core.actions import acting
from registry import services as registry
from tests.browser.conftest import screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_shows_the_audit_trail_to_an_auditor(new_page, auditor, admin, default_model, member_key):
    with acting(actor=admin, source_ip="192.0.2.10", user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"):
        registry.set_config(model=default_model, values={"temperature": 0.3, "n_ctx": 2048})
        revoke_api_key(key=member_key.key)
    verify_trail()
    page = new_page(auditor)

    page.get_by_role("link", name="Audit").click()
    page.wait_for_url("**/audit/")
    assert page.get_by_text("intact").is_visible()
    assert page.get_by_role("link", name="JSONL").is_visible()
    screenshot(page, "audit")
    page.get_by_label("Action").fill("model.")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**action=model.**")
    rows = page.locator("#event-list tbody tr")
    assert "model.config" in rows.first.inner_text()
    assert "key.revoke" not in page.locator("#event-list").inner_text()

    rows.first.get_by_role("link").click()
    assert page.get_by_role("heading", name="Before and after").is_visible()
    assert page.get_by_role("cell", name="0.3", exact=True).is_visible()
