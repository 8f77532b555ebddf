"""The dashboard in headless Chromium against a real gunicorn: live numbers, admin actions, a screenshot."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect, sync_playwright

from backend.db.migrate import upgrade
from tests.conftest import ADMIN_KEY, CLIENT_KEY, FAKE_PROVIDER_KEY
from tests.integration.servers import Gunicorn

pytestmark = pytest.mark.gunicorn
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
AUTH = {"X-API-Key": CLIENT_KEY}
ADMIN = {"X-Admin-Key": ADMIN_KEY}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def ensure_chromium() -> None:
    """Chromium comes from Debian's package, which `make test` installs: missing is a failure, not a skip."""
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing: run `bash scripts/system-deps.sh test`"


@pytest.fixture(scope="module")
def browser():
    ensure_chromium()
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def server(fake_gemini, tmp_path_factory):
    env = {"APP_ENV": "testing", "API_KEYS": CLIENT_KEY, "ADMIN_API_KEY": ADMIN_KEY,
           "GEMINI_API_KEY": FAKE_PROVIDER_KEY, "GEMINI_BASE_URL": fake_gemini.base_url,
           "CACHE_MODE": "disk", "CACHE_DIR": str(tmp_path_factory.mktemp("cache"))}
    database = tmp_path_factory.mktemp("db") / "dashboard.db"
    upgrade(f"sqlite:///{database}")
    env["DATABASE_URL"] = f"sqlite:///{database}"
    log = tmp_path_factory.mktemp("logs") / "gunicorn.log"
    with Gunicorn(env, workers=2, log_path=log) as instance:
        # Traffic so every number on the page exists: misses, hits (repeats) and one refused caller.
        for text in ("I has a cat.", "She go to school.", "They was happy.", "I has a cat.", "She go to school."):
            response = requests.post(f"{instance.url}/api/analyze", json={"text": text}, headers=AUTH, timeout=30)
            assert response.status_code == 200, response.text
        assert requests.post(f"{instance.url}/api/analyze", json={"text": "x"}, timeout=10).status_code == 401
        # A conversation with one turn: the page counts today's.
        conversation = requests.post(f"{instance.url}/api/conversations", json={}, headers=AUTH, timeout=10)
        turn = requests.post(f"{instance.url}/api/conversations/{conversation.json()['data']['id']}/messages",
                             json={"text": "Hello, I am Ana."}, headers=AUTH, timeout=30)
        assert turn.status_code == 201, turn.text
        yield instance


@pytest.fixture
def page(browser, server):
    """A fresh tab on /dashboard that records every request it makes and every script or CSP error."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    tab = context.new_page()
    tab.requests, tab.problems = [], []
    tab.on("request", lambda request: tab.requests.append(request.url))
    tab.on("pageerror", lambda error: tab.problems.append(str(error)))
    tab.on("console", lambda message: tab.problems.append(message.text)
           if "Content Security Policy" in message.text else None)
    tab.on("dialog", lambda dialog: dialog.accept())
    expect.set_options(timeout=10_000)
    response = tab.goto(f"{server.url}/dashboard")
    assert response.status == 200 and "default-src 'self'" in response.headers["content-security-policy"]
    expect(tab.locator("#last-updated")).not_to_have_text("never")
    yield tab
    assert not tab.problems, tab.problems
    outside = [url for url in tab.requests if not url.startswith(server.url + "/")]
    assert not outside, f"the page fetched assets from outside the service: {outside}"
    context.close()


def data(response: requests.Response) -> dict:
    return response.json()["data"]


def gemini_state(server) -> str:
    return data(requests.get(f"{server.url}/api/circuit-breaker/state", headers=ADMIN, timeout=10))["breakers"][
        "gemini"]["state"]


def save_screenshot(page: Page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    content = path.read_bytes()
    assert len(content) > 1000 and content.startswith(PNG_SIGNATURE)


def test_page_shows_the_live_numbers(page: Page, server, tmp_path):
    metrics = data(requests.get(f"{server.url}/api/metrics", timeout=10))
    health = data(requests.get(f"{server.url}/api/health", timeout=10))
    analyze = metrics["routes"]["/api/analyze"]
    assert analyze["total_count"] == 6 and metrics["cache"]["hits"] > 0

    expect(page.locator("#overall-status")).to_have_text(health["status"])
    for reason in health["reasons"]:
        expect(page.locator("#status-reasons")).to_contain_text(reason)
    row = page.locator('tr[data-route="/api/analyze"]')
    expect(row.locator('td[data-field="total_count"]')).to_have_text(str(analyze["total_count"]))
    expect(page.locator("#cache-hit-rate")).to_have_text(f"{metrics['cache']['hit_rate'] * 100:.1f}%")
    expect(page.locator("#cost-spent")).to_have_text(f"${metrics['cost_usd']['spent']:.6f}")
    expect(page.locator("#upstream-calls")).to_have_text(str(sum(metrics["upstream_calls"].values())))
    avoided = metrics["cost_usd"]["avoided"]
    expect(page.locator("#cost-avoided")).to_have_text(f"${sum(avoided.values()):.6f}")
    expect(page.locator("#cost-avoided-cache")).to_have_text(f"${avoided.get('cache', 0):.6f}")
    expect(page.locator('article[data-breaker="gemini"] .badge')).to_have_text("closed")
    assert metrics["today"] == {"conversations": 1, "turns": 1, "database": "ok",
                                "jobs": {"queued": 0, "running": 0, "failed": 0, "succeeded": 0}}
    expect(page.locator("#conversations-today")).to_have_text("1")
    expect(page.locator("#turns-today")).to_have_text("1")
    expect(page.locator("#database-state")).to_have_text("ok")
    expect(page.locator("#jobs-queued")).to_have_text("0")
    expect(page.locator("#jobs-failed")).to_have_text("0")

    # A few refreshes so the chart has a line, not a single point.
    for _ in range(3):
        page.click("#refresh-now")
        page.wait_for_timeout(300)
    expect(page.locator("#latency-chart polyline.line.p95")).to_have_count(1)
    expect(page.locator("#latency-chart polyline.line.rate")).to_have_count(1)
    save_screenshot(page, tmp_path / "dashboard.png")


def test_reset_and_force_open_from_the_page(page: Page, server, tmp_path):
    gemini = page.locator('article[data-breaker="gemini"]')
    assert requests.post(f"{server.url}/api/circuit-breaker/open", json={"name": "gemini"}, headers=ADMIN,
                         timeout=10).status_code == 200
    page.click("#refresh-now")
    expect(gemini.locator(".badge")).to_have_text("forced_open")
    expect(page.locator("#overall-status")).to_have_text("unhealthy")

    page.fill("#admin-key", "not-the-admin-key")
    gemini.get_by_role("button", name="Reset").click()
    expect(page.locator("#admin-message")).to_contain_text("401")
    assert gemini_state(server) == "forced_open"

    page.fill("#admin-key", ADMIN_KEY)
    gemini.get_by_role("button", name="Reset").click()
    expect(gemini.locator(".badge")).to_have_text("closed")
    expect(page.locator("#admin-message")).to_contain_text("Reset gemini done")
    assert gemini_state(server) == "closed"

    gemini.get_by_role("button", name="Force open").click()
    expect(gemini.locator(".badge")).to_have_text("forced_open")
    assert gemini_state(server) == "forced_open"

    page.fill("#cache-namespace", "analyze")
    page.click("#cache-clear")
    expect(page.locator("#admin-message")).to_contain_text("Clear the analyze namespace done")

    # The key lives in this tab's sessionStorage only: never in localStorage, never in a URL.
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("Object.values(sessionStorage)") == [ADMIN_KEY]
    assert not [url for url in page.requests if ADMIN_KEY in url]
    save_screenshot(page, tmp_path / "dashboard.png")
    requests.post(f"{server.url}/api/circuit-breaker/reset", headers=ADMIN, timeout=10)
