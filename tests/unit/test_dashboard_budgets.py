"""Spend controls on the dashboard (contract section 12): spend today, budget refusals and the top callers in
/api/metrics (the callers for an operator only), the per-key budget gauge on /metrics, and the page's section."""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.envelope import assert_error, assert_ok
from tests.redis_helpers import MAIN_REDIS_URL, purge, unique_prefix

CALLER_BUDGET = 0.000001  # below one call's cost: each caller's first paid call is admitted, its next refused
LONG_TEXT = " ".join(["Yesterday I goes to the market and buyed three apple for my sister."] * 12)
SHORT_TEXT = "I has a cat."


@pytest.fixture(params=["memory", "redis"])
def shared(request) -> Iterator[dict[str, Any]]:
    """Where the app counts spend: this process, or the machine's Redis under a prefix no other test uses."""
    if request.param == "memory":
        yield {}
        return
    prefix = unique_prefix("dashspend")
    yield {"CACHE_MODE": "redis", "REDIS_URL": MAIN_REDIS_URL, "REDIS_KEY_PREFIX": prefix}
    purge(prefix)


def spend(client, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return assert_ok(client.get("/api/metrics", headers=headers or {}))["spend"]


def analyze(client, auth: dict[str, str], user: str, text: str):
    return client.post("/api/analyze", json={"text": text}, headers={**auth, "X-User-ID": user})


def test_spend_today_refusals_and_top_callers(make_app, auth, admin, fake_gemini, shared):
    client = make_app(BUDGET_DAILY_USD_PER_CALLER=str(CALLER_BUDGET), **shared).test_client()
    # The refusal counter is the process's (every app in this test run adds to it): compare before and after.
    before = spend(client)
    assert before["today_usd"] == 0 and before["per_caller_default_usd"] == CALLER_BUDGET
    assert before["per_key_usd"] is None and set(before["refusals"]) == {"caller", "key"}

    assert analyze(client, auth, "ann", LONG_TEXT).status_code == 200
    assert analyze(client, auth, "bob", SHORT_TEXT).status_code == 200
    assert_error(analyze(client, auth, "bob", "She go to school."), 429, "BUDGET_EXCEEDED")
    assert fake_gemini.stats()["calls"] == 2, "the refused call never reached the provider"

    public = spend(client)
    assert "top_callers" not in public, "callers' names are for an operator only"
    assert public["today_usd"] > 0
    assert public["refusals"]["caller"] - before["refusals"]["caller"] == 1
    assert public["refusals"]["key"] == before["refusals"]["key"]

    operator = spend(client, admin)
    callers = operator["top_callers"]
    # The longer text costs more: a longer prompt, and more errors in the (fake's deterministic) answer.
    assert [row["caller"] for row in callers] == ["tester:ann", "tester:bob"]
    assert callers[0]["cost_usd"] > callers[1]["cost_usd"] > 0
    assert operator["today_usd"] == public["today_usd"]
    # Each figure is rounded to 6 decimals: the sum of two is off by at most 1e-6 from the rounded total.
    assert operator["today_usd"] == pytest.approx(sum(row["cost_usd"] for row in callers), abs=1.5e-6)
    for row in callers:
        assert row["budget_usd"] == CALLER_BUDGET and row["over_budget"] is True and row["override"] is False


def test_a_wrong_admin_key_is_refused_and_counted_towards_the_lockout(make_app, admin):
    client = make_app(AUTH_FAILURE_LIMIT_PER_MINUTE=2).test_client()
    assert_error(client.get("/api/metrics", headers={"X-Admin-Key": "guess-1"}), 401, "UNAUTHORIZED")
    assert_error(client.get("/api/metrics", headers={"X-Admin-Key": "guess-2"}), 401, "UNAUTHORIZED")
    # Locked: the right key is refused too, as on the admin routes; the public summary still answers.
    assert_error(client.get("/api/metrics", headers=admin), 429, "RATE_LIMITED")
    assert "top_callers" not in spend(client)


def test_without_admin_endpoints_the_key_is_ignored(make_app, admin):
    client = make_app(ADMIN_API_KEY="").test_client()
    assert "top_callers" not in spend(client, admin)


def test_the_per_key_budget_gauge_exists_only_with_a_per_key_budget(make_app):
    with_budget = make_app(BUDGET_DAILY_USD_PER_KEY="12.5").test_client().get("/metrics").get_data(as_text=True)
    assert re.search(r"^budget_daily_usd_per_key 12\.5$", with_budget, re.MULTILINE)
    without = make_app().test_client().get("/metrics").get_data(as_text=True)
    assert "budget_daily_usd_per_key" not in without


def test_the_dashboard_has_the_spend_section(client):
    page = client.get("/dashboard").get_data(as_text=True)
    ids = set(re.findall(r'id="([^"]+)"', page))
    assert {"spend-today", "budget-per-caller", "budget-per-key", "budget-refusals", "callers-table",
            "callers-body", "callers-empty"} <= ids
    # Every element the script looks up is on the page (a missing one would stop each refresh with a TypeError).
    script = client.get("/static/dashboard.js").get_data(as_text=True)
    used = set(re.findall(r'(?:\$|setText)\("([a-z0-9-]+)"', script))
    assert used and used <= ids, used - ids
