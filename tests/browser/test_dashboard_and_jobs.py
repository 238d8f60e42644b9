"""The dashboard and the Jobs page in Chromium, on the real stack: the charts draw and follow
real API requests without a reload, a pull's progress advances on the Jobs page (and Cancel
stops it), and every script and stylesheet comes from Lanthorn itself."""

import hashlib
import random
from urllib.parse import urlsplit

import httpx
import pytest

from console.services import create_api_key
from tests.browser.conftest import screenshot
from tests.inference.helpers import chat
from tests.registry.ggufs import write_tiny_gguf

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1024 * 1024
DEADLINE_MS = 20_000


def chart_total(page, chart: str) -> float:
    return float(page.get_attribute(f"#{chart}", "data-total"))


def test_it_draws_the_charts_and_updates_them_after_requests(new_page, admin, api):
    page = new_page(admin)
    page.goto("/")
    page.wait_for_selector("#chart-requests canvas")
    page.wait_for_selector("#chart-tokens canvas")
    before = chart_total(page, "chart-requests")
    page.evaluate("window.notReloaded = true")

    for question in ("Say hi.", "Say bye."):
        r = api.post("/v1/chat/completions", json=chat(question, max_tokens=4))
        assert r.status_code == 200, r.text

    # The script polls dashboard.json: two more requests in the last hour's chart and figures.
    page.wait_for_function(f"Number(document.querySelector('#chart-requests').dataset.total) >= {before + 2}",
                           timeout=DEADLINE_MS)
    page.wait_for_function("Number(document.querySelector('#chart-tokens').dataset.total) > 0", timeout=DEADLINE_MS)
    row = page.locator("#model-figures tbody tr", has_text="gemma3-270m")
    assert int(row.locator("td").nth(1).inner_text()) >= 2
    assert page.evaluate("window.notReloaded") is True
    page.get_by_role("tab", name="last day").click()
    assert int(row.locator("td").nth(1).inner_text()) >= 2
    page.get_by_role("tab", name="last hour").click()
    screenshot(page, "dashboard")


@pytest.fixture
def admin_api(stack, admin):
    key = create_api_key(user=admin, name="ops")
    with httpx.Client(base_url=stack.url, timeout=30, headers={"Authorization": f"Bearer {key.raw}"}) as client:
        yield client


def test_a_pulls_progress_advances_on_the_jobs_page_until_cancel(new_page, admin, admin_api, file_server):
    path = file_server.root / "models" / "slow.gguf"
    path.parent.mkdir(parents=True)
    write_tiny_gguf(path, size_mb=8, seed=random.randrange(2**32))  # a file no earlier run stored
    file_server.fail("/models/slow.gguf", throttle=MB // 2)  # sixteen seconds, if nobody stops it
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    r = admin_api.post("/api/pulls", json={"source": file_server.url_for("models/slow.gguf"), "name": "slow",
                                           "sha256": digest})
    assert r.status_code == 202, r.text
    job = f"#job-{r.json()['id']}"

    page = new_page(admin)
    page.goto("/jobs/")
    page.wait_for_selector(f"#active-jobs {job} progress[value]", timeout=DEADLINE_MS)
    first = int(page.get_attribute(f"{job} progress", "value"))
    page.wait_for_function(f"Number(document.querySelector('{job} progress').value) > {first + MB}",
                           timeout=DEADLINE_MS)  # htmx swaps the job's partial every second
    screenshot(page, "jobs")

    page.locator(job).get_by_role("button", name="Cancel").click()
    page.wait_for_selector(f"{job}[data-status='cancelled']", timeout=DEADLINE_MS)
    assert "Cancelled at" in page.locator(job).inner_text()


@pytest.mark.parametrize("path", ["/", "/usage/", "/jobs/"])
def test_the_page_fits_a_narrow_window(new_page, admin, path):
    page = new_page(admin, width=400, height=800)
    page.goto(path)
    page.wait_for_load_state("networkidle")

    # Wide tables scroll inside their box; the page itself never scrolls sideways.
    wide = page.evaluate("""[...document.querySelectorAll('body *')]
        .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
        .map((el) => el.tagName + (el.id ? '#' + el.id : '') + '.' + el.className).slice(0, 8)""")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), wide


@pytest.mark.parametrize("path", ["/", "/usage/", "/models/", "/jobs/"])
def test_every_script_and_stylesheet_is_served_by_lanthorn(new_page, admin, stack, path):
    page = new_page(admin)
    loaded = []
    page.on("request", lambda request: loaded.append((request.resource_type, request.url)))
    page.goto(path)
    page.wait_for_load_state("networkidle")

    assets = [(kind, url) for kind, url in loaded if kind in ("script", "stylesheet", "font", "image")]
    assert {kind for kind, _ in assets} >= {"script", "stylesheet"}
    origin = urlsplit(stack.url).netloc
    assert [url for _, url in assets if urlsplit(url).netloc != origin] == []
