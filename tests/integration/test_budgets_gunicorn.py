"""Daily budgets through real gunicorn (contract section 12): two instances x 3 gthread workers share one Redis and
one PostgreSQL database (where overrides live); requests alternate between them.

One call's cost c: every ``text()`` costs the same, computed once from the fake's own answer
(tests/integration/budget_servers.py); every call these tests pay for is checked to cost c.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.fakes.gemini import FakeGemini
from tests.integration.budget_servers import (
    KEY_NAME,
    NUMBERS,
    Pair,
    call_cost,
    running_pair,
    text,
    usage_of,
)
from tests.integration.servers import Gunicorn

pytestmark = pytest.mark.gunicorn
ADMIN = {"X-Admin-Key": ADMIN_KEY}
CONCURRENT = 12


@pytest.fixture(scope="module")
def pair(fake_gemini: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with running_pair(fake_gemini, tmp_path_factory.mktemp("budgets")) as servers:
        yield servers


# -- requests ----------------------------------------------------------------------------------------------------

def caller(name: str) -> tuple[str, dict[str, str]]:
    """A caller of the key nobody used before: (its name as admin paths write it, its headers)."""
    user = f"{name}-{next(NUMBERS)}"
    return f"{KEY_NAME}:{user}", {"X-API-Key": CLIENT_KEY, "X-User-ID": user}


def analyze(server: Gunicorn, headers: dict[str, str], words: str) -> requests.Response:
    return requests.post(f"{server.url}/api/analyze", json={"text": words}, headers=headers, timeout=30)


def data(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()["data"]


def usage(server: Gunicorn, headers: dict[str, str]) -> dict[str, Any]:
    return data(requests.get(f"{server.url}/api/me/usage", headers=headers, timeout=10))["today"]


def set_budget(server: Gunicorn, name: str, daily_usd: float | None) -> dict[str, Any]:
    return data(requests.put(f"{server.url}/api/admin/budgets/{quote(name, safe='')}", json={"daily_usd": daily_usd},
                             headers=ADMIN, timeout=10))


def assert_paid(response: requests.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["X-Cache"] == "MISS"


def assert_refused(response: requests.Response, budget: float) -> dict[str, Any]:
    """A 429 BUDGET_EXCEEDED of the caller's budget, with a Retry-After; returns the error."""
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "BUDGET_EXCEEDED", error
    assert error["details"]["scope"] == "caller" and error["details"]["budget_usd"] == pytest.approx(budget), error
    assert float(response.headers["Retry-After"]) > 0
    return error


def spend_until_refused(pair: Pair, headers: dict[str, str], sent: list[str], limit: int = 20) -> requests.Response:
    """Distinct texts, alternating instances, until the first refusal; ``sent`` gets the texts answered."""
    for n in range(limit):
        words = text()
        response = analyze(pair.both[n % 2], headers, words)
        if response.status_code != 200:
            return response
        assert_paid(response)
        sent.append(words)
    raise AssertionError(f"no refusal in {limit} paid calls")


def assert_each_cost_c(fake: FakeGemini, calls: int, cost: float) -> None:
    """The fake's last ``calls`` answers each cost c (so spend is paid calls x c)."""
    logged = fake.requests()[-calls:] if calls else []
    assert len(logged) == calls and all(call_cost(usage_of(entry)) == pytest.approx(cost) for entry in logged)


# -- 1-3, 5: refusal at the budget, cached answers, other callers, usage ----------------------------------------

def test_paid_calls_stop_at_the_budget_across_instances_and_cached_answers_still_come(pair: Pair,
                                                                                       fake_gemini: FakeGemini) -> None:
    name, ann = caller("ann")
    before = fake_gemini.calls
    sent: list[str] = []
    refusal = spend_until_refused(pair, ann, sent)
    paid = len(sent)
    assert paid == math.ceil(pair.budget / pair.cost) == 6  # 5 calls spend 5c < 5.5c: the sixth crosses the budget
    assert fake_gemini.calls - before == paid  # the refused request reached no provider
    error = assert_refused(refusal, pair.budget)
    assert error["details"]["spent_usd"] == pytest.approx(paid * pair.cost, abs=1e-6)
    assert_each_cost_c(fake_gemini, paid, pair.cost)

    # A cached answer (an earlier text, asked on the other instance than the first time) still comes, free.
    for n, words in enumerate(sent[:2]):
        hit = analyze(pair.both[(n + 1) % 2], ann, words)
        assert hit.status_code == 200 and hit.headers["X-Cache"] == "HIT", hit.text
    assert_refused(analyze(pair.b, ann, text()), pair.budget)
    assert fake_gemini.calls - before == paid

    # Another caller of the same key (no key budget) is unaffected.
    _, bob = caller("bob")
    for server in (pair.a, pair.b, pair.a):
        assert_paid(analyze(server, bob, text()))
    assert fake_gemini.calls - before == paid + 3

    # Usage, asked where the last request did not go: every AI request counted (paid, refused, hits).
    today = usage(pair.a, ann)
    assert today["paid_calls"] == paid and today["requests"] == paid + 1 + 2 + 1
    assert today["cost_usd"] == pytest.approx(paid * pair.cost, abs=1e-6)
    assert today["budget_usd"] == pytest.approx(pair.budget) and today["remaining_usd"] == 0
    assert usage(pair.b, bob)["cost_usd"] == pytest.approx(3 * pair.cost, abs=1e-6)
    top = data(requests.get(f"{pair.b.url}/api/admin/callers", params={"limit": 100}, headers=ADMIN, timeout=10))
    rows = {row["caller"]: row for row in top["callers"]}
    assert rows[name]["cost_usd"] == pytest.approx(paid * pair.cost, abs=1e-6) and rows[name]["over_budget"] is True
    assert rows[f"{KEY_NAME}:{bob['X-User-ID']}"]["over_budget"] is False


# -- 4, 5: overrides reach both instances at once; the admin's top spenders --------------------------------------

def test_an_override_lets_the_caller_through_on_both_instances_at_once(pair: Pair, fake_gemini: FakeGemini) -> None:
    name, carl = caller("carl")
    before = fake_gemini.calls
    sent: list[str] = []
    assert_refused(spend_until_refused(pair, carl, sent), pair.budget)
    paid = len(sent)
    assert paid == 6

    # 7.5c: room for exactly two more calls (6c and 7c are below it), the very next one on each instance.
    raised = set_budget(pair.a, name, 7.5 * pair.cost)
    assert raised["override"] is True and raised["daily_usd"] == pytest.approx(7.5 * pair.cost)
    assert_paid(analyze(pair.a, carl, text()))
    assert_paid(analyze(pair.b, carl, text()))
    for server in pair.both:
        assert_refused(analyze(server, carl, text()), 7.5 * pair.cost)
    paid += 2

    # null: no budget at all for this caller, at once on both.
    set_budget(pair.b, name, None)
    assert_paid(analyze(pair.a, carl, text()))
    assert_paid(analyze(pair.b, carl, text()))
    paid += 2

    # DELETE: the default again, already spent on both.
    removed = data(requests.delete(f"{pair.a.url}/api/admin/budgets/{quote(name, safe='')}", headers=ADMIN,
                                   timeout=10))
    assert removed["removed"] is True and removed["daily_usd"] == pytest.approx(pair.budget)
    for server in pair.both:
        assert_refused(analyze(server, carl, text()), pair.budget)
    hit = analyze(pair.b, carl, sent[0])
    assert hit.status_code == 200 and hit.headers["X-Cache"] == "HIT", hit.text
    assert fake_gemini.calls - before == paid == 10
    assert_each_cost_c(fake_gemini, paid, pair.cost)

    today = usage(pair.b, carl)
    refused, hits = 1 + 2 + 2, 1
    assert today["paid_calls"] == paid and today["requests"] == paid + refused + hits
    assert today["cost_usd"] == pytest.approx(paid * pair.cost, abs=1e-6)
    # The top spender of the module (10 calls; no other test's caller reaches 7), listed by either instance.
    top = data(requests.get(f"{pair.a.url}/api/admin/callers", params={"limit": 5}, headers=ADMIN, timeout=10))
    first = top["callers"][0]
    assert first["caller"] == name and first["cost_usd"] == pytest.approx(paid * pair.cost, abs=1e-6)
    assert first["over_budget"] is True and first["override"] is False
    assert [row["cost_usd"] for row in top["callers"]] == sorted((row["cost_usd"] for row in top["callers"]),
                                                                  reverse=True)


def budgets_seen(server: Gunicorn, headers: dict[str, str], times: int = 12) -> set[tuple[Any, Any]]:
    """(budget_usd, remaining_usd) as /api/me/usage reported them over ``times`` fresh connections (the 3 workers of
    the instance take them as they come: a worker left out only makes the check weaker, never wrong)."""
    return {(today["budget_usd"], today["remaining_usd"]) for today in (usage(server, headers) for _ in range(times))}


def test_usage_reports_an_override_at_once_on_every_worker_of_both_instances(pair: Pair) -> None:
    """Like admissions, a caller's usage shows an override the moment it is written, whichever worker answers."""
    name, erin = caller("erin")
    for server in pair.both:  # every worker that answers reads (and keeps) the default budget
        assert budgets_seen(server, erin) == {(pair.budget, round(pair.budget, 6))}
    set_budget(pair.a, name, 2 * pair.cost)
    for server in pair.both:
        assert budgets_seen(server, erin) == {(2 * pair.cost, round(2 * pair.cost, 6))}
    set_budget(pair.b, name, None)
    for server in pair.both:
        assert budgets_seen(server, erin) == {(None, None)}


# -- 6: concurrent requests ------------------------------------------------------------------------------------

def test_concurrent_requests_never_spend_more_than_the_budget_and_one_call(pair: Pair, fake_gemini: FakeGemini) -> None:
    """12 distinct texts at once, alternating instances, from a caller whose budget is 3.5 calls (3.5c).

    A call is admitted, in one atomic step on Redis, only while spend + holds < budget, and then holds an upper bound
    B >= c of its cost (the prompt's bytes at the input price plus the output limit at the output price, twice: a
    re-ask is allowed within one admission; no thinking tokens). Take the last call admitted: the spend plus what
    the calls then in flight held was below the budget, and they cost at most what they held, so the final spend is
    below budget + c (that call's own cost). With n answered calls of c each, n * c < 3.5c + c: n <= 4 = ceil(3.5)
    however the requests interleave (tighter than ceil(budget / c) + 1). A call refused only because of holds waits
    up to HOLD_WAIT (3 s) for them to settle, then gets Retry-After 2 s; once spent, Retry-After runs to midnight.
    Then, one at a time (nothing held), the caller gets exactly ceil(3.5) = 4 paid calls in all, burst included.
    """
    name, dana = caller("dana")
    budget = 3.5 * pair.cost
    set_budget(pair.b, name, budget)
    before = fake_gemini.calls
    fake_gemini.configure(latency_ms=300)  # the calls overlap: holds, not only spend, decide who is admitted
    gate = threading.Barrier(CONCURRENT)

    def attempt(n: int) -> requests.Response:
        words = text()
        gate.wait()
        return analyze(pair.both[n % 2], dana, words)

    with ThreadPoolExecutor(CONCURRENT) as pool:
        responses = list(pool.map(attempt, range(CONCURRENT)))
    fake_gemini.configure(latency_ms=0)
    answered = [response for response in responses if response.status_code == 200]
    for response in responses:
        if response.status_code != 200:
            assert_refused(response, budget)
    for response in answered:
        assert_paid(response)
    burst = len(answered)
    assert 1 <= burst <= math.ceil(budget / pair.cost) == 4, [r.status_code for r in responses]
    assert fake_gemini.calls - before == burst  # the refused reached no provider
    today = usage(pair.a, dana)
    assert today["paid_calls"] == burst and today["requests"] == CONCURRENT
    assert today["cost_usd"] == pytest.approx(burst * pair.cost, abs=1e-6)
    assert today["cost_usd"] <= budget + pair.cost

    # One at a time now (nothing held): exactly ceil(3.5) = 4 paid calls in all, then refused until midnight.
    sent: list[str] = []
    refusal = spend_until_refused(pair, dana, sent)
    assert assert_refused(refusal, budget)["details"]["spent_usd"] >= budget  # spent (not held): until 00:00 UTC
    assert burst + len(sent) == 4
    assert fake_gemini.calls - before == 4
    assert_each_cost_c(fake_gemini, 4, pair.cost)
    assert usage(pair.b, dana)["cost_usd"] == pytest.approx(4 * pair.cost, abs=1e-6)
