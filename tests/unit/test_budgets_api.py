"""Daily budgets through the API (contract section 12): refusals on paid calls only, hits still answered, other
callers unaffected, overrides, usage, the admin's views; on SQLite and PostgreSQL (overrides live in the database)."""
from __future__ import annotations

import threading
import time
from urllib.parse import quote

import pytest

from backend.errors import BudgetExceeded
from backend.resilience.singleflight import SingleFlight
from tests.envelope import assert_error, assert_ok
from tests.redis_helpers import MAIN_REDIS_URL, purge, unique_prefix

# Output tokens only, at a price that makes every fake answer cost well under a cent.
PRICES = {"PRICE_GEMINI_INPUT_PER_MTOK": 0, "PRICE_GEMINI_OUTPUT_PER_MTOK": 10}


@pytest.fixture
def budget_app(make_app, database_url):
    """An app whose callers may spend 0.0025 USD a day (a few fake answers), counted in Redis."""
    prefix = unique_prefix("budgets")
    yield make_app(DATABASE_URL=database_url, REDIS_URL=MAIN_REDIS_URL, REDIS_KEY_PREFIX=prefix, CACHE_MODE="redis",
                   BUDGET_DAILY_USD_PER_CALLER="0.0025", **PRICES)
    purge(prefix)


def user(auth: dict, name: str) -> dict:
    return {**auth, "X-User-ID": name}


def spend_until_refused(client, headers: dict, limit: int = 40) -> tuple[int, object]:
    """Distinct texts (each a cache miss) until the first refusal: (paid answers, the refusal)."""
    for n in range(limit):
        response = client.post("/api/analyze", json={"text": f"I has {n} apples and she go home."}, headers=headers)
        if response.status_code != 200:
            return n, response
    raise AssertionError("the budget never refused")


def test_paid_calls_stop_at_the_budget_and_cached_answers_keep_coming(budget_app, auth, fake_gemini):
    client = budget_app.test_client()
    ann = user(auth, "ann")
    paid, refusal = spend_until_refused(client, ann)
    body = assert_error(refusal, 429, "BUDGET_EXCEEDED")
    assert int(refusal.headers["Retry-After"]) >= 1 and body["details"]["scope"] == "caller"
    assert paid >= 1 and fake_gemini.calls == paid  # the refused request reached no provider
    usage = assert_ok(client.get("/api/me/usage", headers=ann))["today"]
    assert usage["budget_usd"] == 0.0025 and usage["remaining_usd"] == 0
    assert 0.0025 <= usage["cost_usd"] and usage["paid_calls"] == paid
    # The answer to an earlier text is in the cache: still answered, free.
    hit = client.post("/api/analyze", json={"text": "I has 0 apples and she go home."}, headers=ann)
    assert hit.status_code == 200 and hit.headers["X-Cache"] == "HIT"
    assert fake_gemini.calls == paid
    after = assert_ok(client.get("/api/me/usage", headers=ann))["today"]
    assert after["cost_usd"] == usage["cost_usd"] and after["requests"] == paid + 2  # every AI request counted


def test_another_caller_is_unaffected_and_an_override_lets_the_caller_through(budget_app, auth, admin, fake_gemini):
    client = budget_app.test_client()
    ann, bob = user(auth, "ann"), user(auth, "bob")
    spend_until_refused(client, ann)
    assert client.post("/api/analyze", json={"text": "Bob write a letter."}, headers=bob).status_code == 200
    path = f"/api/admin/budgets/{quote('tester:ann')}"
    raised = assert_ok(client.put(path, json={"daily_usd": 1.0}, headers=admin))
    assert raised["daily_usd"] == 1.0 and raised["override"] is True
    assert client.post("/api/analyze", json={"text": "Ann is back today."}, headers=ann).status_code == 200
    assert assert_ok(client.get("/api/me/usage", headers=ann))["today"]["budget_usd"] == 1.0
    # null: no budget at all for this caller; DELETE: the default again (already spent: refused).
    assert_ok(client.put(path, json={"daily_usd": None}, headers=admin))
    assert assert_ok(client.get("/api/me/usage", headers=ann))["today"]["remaining_usd"] is None
    assert client.post("/api/analyze", json={"text": "Unlimited Ann."}, headers=ann).status_code == 200
    removed = assert_ok(client.delete(path, headers=admin))
    assert removed["removed"] is True and removed["daily_usd"] == 0.0025
    assert_error(client.post("/api/analyze", json={"text": "Refused Ann."}, headers=ann), 429, "BUDGET_EXCEEDED")
    listing = assert_ok(client.get("/api/admin/budgets", headers=admin))
    assert listing["overrides"] == [] and listing["per_caller_default_usd"] == 0.0025


def test_the_admin_sees_today_s_top_spenders(budget_app, auth, admin):
    client = budget_app.test_client()
    client.post("/api/analyze", json={"text": "One text from Bob."}, headers=user(auth, "bob"))
    spend_until_refused(client, user(auth, "ann"))
    top = assert_ok(client.get("/api/admin/callers?limit=5", headers=admin))
    names = [row["caller"] for row in top["callers"]]
    assert names == ["tester:ann", "tester:bob"]
    assert top["callers"][0]["over_budget"] is True and top["callers"][1]["over_budget"] is False
    assert top["total_usd"] == pytest.approx(sum(row["cost_usd"] for row in top["callers"]))


def test_the_admin_endpoints_need_the_admin_key_and_valid_input(budget_app, auth, admin):
    client = budget_app.test_client()
    assert_error(client.get("/api/admin/callers", headers=auth), 401, "UNAUTHORIZED")
    assert_error(client.put("/api/admin/budgets/tester:ann", json={"daily_usd": 1}, headers=auth), 401,
                 "UNAUTHORIZED")
    assert_error(client.put("/api/admin/budgets/tester:ann", json={"daily_usd": -1}, headers=admin), 422,
                 "VALIDATION_ERROR")
    assert_error(client.put("/api/admin/budgets/tester:ann", json={}, headers=admin), 422, "VALIDATION_ERROR")
    for wrong in (False, "1", [1]):
        assert_error(client.put("/api/admin/budgets/tester:ann", json={"daily_usd": wrong}, headers=admin), 422,
                     "VALIDATION_ERROR")
    assert_error(client.put(f"/api/admin/budgets/{quote('tester:bad id')}", json={"daily_usd": 1}, headers=admin),
                 422, "VALIDATION_ERROR")
    assert_error(client.get("/api/admin/callers?limit=0", headers=admin), 422, "VALIDATION_ERROR")


def test_a_conversation_turn_over_budget_is_refused_and_stores_nothing(budget_app, auth):
    client = budget_app.test_client()
    ann = user(auth, "ann")
    spend_until_refused(client, ann)
    conversation = assert_ok(client.post("/api/conversations", json={}, headers=ann), 201)
    refused = client.post(f"/api/conversations/{conversation['id']}/messages", json={"text": "Hello!"}, headers=ann)
    assert_error(refused, 429, "BUDGET_EXCEEDED")
    streamed = client.post(f"/api/conversations/{conversation['id']}/messages", json={"text": "Hello!"},
                           headers={**ann, "Accept": "text/event-stream"})
    assert_error(streamed, 429, "BUDGET_EXCEEDED")
    assert assert_ok(client.get(f"/api/conversations/{conversation['id']}", headers=ann))["messages"] == []
    assert assert_ok(client.get("/api/me/usage", headers=ann))["conversations"] == 1


def test_a_turn_s_calls_are_charged_to_its_caller(budget_app, auth, admin):
    client = budget_app.test_client()
    ann = user(auth, "ann")
    conversation = assert_ok(client.post("/api/conversations", json={}, headers=ann), 201)
    turn = assert_ok(client.post(f"/api/conversations/{conversation['id']}/messages", json={"text": "I goes home."},
                                 headers=ann), 201)
    assert turn["tutor"]["text"]
    usage = assert_ok(client.get("/api/me/usage", headers=ann))["today"]
    assert usage["paid_calls"] == 2 and usage["cost_usd"] > 0  # the reply and its corrections
    assert assert_ok(client.get("/api/me/usage", headers=user(auth, "bob")))["today"]["cost_usd"] == 0


def test_a_streamed_turn_is_charged_when_its_stream_ends(budget_app, auth):
    client = budget_app.test_client()
    ann = user(auth, "ann")
    conversation = assert_ok(client.post("/api/conversations", json={}, headers=ann), 201)
    streamed = client.post(f"/api/conversations/{conversation['id']}/messages", json={"text": "I goes home."},
                           headers={**ann, "Accept": "text/event-stream"})
    assert streamed.status_code == 200 and "event: done" in streamed.get_data(as_text=True)
    usage = assert_ok(client.get("/api/me/usage", headers=ann))["today"]
    assert usage["paid_calls"] == 2 and usage["cost_usd"] > 0  # its corrections, and the reply settled at its end
    top = budget_app.extensions["backend"].budgets.meter.top(5)[0]
    assert top[0][0] == "tester:ann" and top[0][1] == pytest.approx(usage["cost_usd"], abs=1e-6)


def test_a_lesson_is_refused_at_once_when_the_budget_is_spent(budget_app, auth):
    client = budget_app.test_client()
    ann = user(auth, "ann")
    spend_until_refused(client, ann)
    assert_error(client.post("/api/lessons", json={"topic": "Travel"}, headers=ann), 429, "BUDGET_EXCEEDED")
    assert assert_ok(client.get("/api/me/usage", headers=ann))["jobs"] == 0


def test_a_leader_s_budget_refusal_is_not_handed_to_the_followers_of_its_flight():
    flights = SingleFlight(None)
    leader_in, release = threading.Event(), threading.Event()
    answers: list[object] = []

    def refused() -> str:
        leader_in.set()
        release.wait(5)
        raise BudgetExceeded("the leader's budget is spent")

    def leader() -> None:
        with pytest.raises(BudgetExceeded):
            flights.run("k", refused, lambda: None, deadline=time.monotonic() + 10)

    thread = threading.Thread(target=leader)
    thread.start()
    leader_in.wait(5)
    follower = threading.Thread(target=lambda: answers.append(
        flights.run("k", lambda: "the follower's own answer", lambda: None, deadline=time.monotonic() + 10)))
    follower.start()
    release.set()
    thread.join(5)
    follower.join(5)
    assert answers == [("the follower's own answer", True)]


def test_without_any_override_no_caller_s_budget_is_read_from_the_database(budget_app, auth, admin):
    from prometheus_client import REGISTRY

    def reads(statement: str) -> float:
        return REGISTRY.get_sample_value("db_query_duration_seconds_count", {"statement": statement}) or 0.0

    client = budget_app.test_client()
    before = reads("budgets.get")
    for name in ("ann", "bob", "cid"):
        assert client.post("/api/analyze", json={"text": f"{name} write a letter."},
                           headers=user(auth, name)).status_code == 200
        if name == "ann":
            looked = reads("budgets.any")
    assert reads("budgets.get") == before and reads("budgets.any") == looked > 0  # one look for them all
    assert_ok(client.put("/api/admin/budgets/tester:dan", json={"daily_usd": 1.0}, headers=admin))
    client.post("/api/analyze", json={"text": "Dan write a letter."}, headers=user(auth, "dan"))
    assert reads("budgets.get") > before  # an override exists now: the caller's own is read
