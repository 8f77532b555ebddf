"""The spend meter's twins (Lua on Redis, Python on a local store) through the same cases: admission within daily
budgets, holds that bound what calls running at once can spend, settlement, usage, the top list, override versions."""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator

import pytest

from backend.errors import BudgetExceeded
from backend.resilience import spend
from backend.resilience.spend import Account, Limits
from backend.resilience.spend_meter import HOLD_RETRY_AFTER, VERSION_KEY, SpendMeter, requests_key
from backend.resilience.store import MemoryStore
from backend.resilience.store_redis import RedisStore
from tests.redis_helpers import MAIN_REDIS_URL, purge, unique_prefix


@pytest.fixture(params=["redis", "local"])
def meter(request) -> Iterator[SpendMeter]:
    """A meter on Redis (the Lua twin) or on this process's memory (the Python twin)."""
    if request.param == "local":
        yield SpendMeter(MemoryStore())
        return
    prefix = unique_prefix("spend")
    redis = RedisStore(MAIN_REDIS_URL, prefix=prefix)
    yield SpendMeter(MemoryStore(), redis)
    redis.close()
    purge(prefix)


class Budgets:
    """A stand-in for BudgetService.limits: fixed budgets, stamped with the version asked for, and a count of reads."""

    def __init__(self, caller: float | None, key: float | None = None):
        self.caller, self.key, self.reads = caller, key, 0

    def __call__(self, version: str | None) -> Limits:
        self.reads += 1
        return Limits(self.caller, self.key, version or "0")


def account(meter: SpendMeter, caller: str = "app:ann", budgets: Budgets | None = None) -> Account:
    return Account(caller, caller.partition(":")[0], budgets or Budgets(None), meter)


def paid(meter: SpendMeter, who: Account, cost: float, bound: float | None = None) -> None:
    """One paid call of ``cost`` admitted with an upper bound of ``bound`` (its cost by default)."""
    hold = meter.admit(who, cost if bound is None else bound, 30)
    meter.settle(hold, cost)


def test_without_a_budget_every_call_is_admitted_and_counted(meter):
    ann = account(meter)
    for _ in range(5):
        paid(meter, ann, 0.01)
    mine, key, *_ = meter.usage(ann)
    assert mine.spent == pytest.approx(0.05) and mine.calls == 5 and mine.held == 0
    assert key.spent == pytest.approx(0.05)


@pytest.mark.parametrize("budget,cost", [(0.055, 0.01), (0.05, 0.01), (0.001, 0.003)])
def test_calls_are_admitted_until_the_spend_reaches_the_budget(meter, budget, cost):
    ann = account(meter, budgets=Budgets(budget))
    admitted = 0
    with pytest.raises(BudgetExceeded) as refused:
        for _ in range(100):
            paid(meter, ann, cost)
            admitted += 1
    # Admitted while spent < budget: the last one crosses it by at most its own cost.
    assert admitted == math.ceil(round(budget / cost, 9))
    assert refused.value.details["scope"] == "caller" and refused.value.status == 429
    assert refused.value.code == "BUDGET_EXCEEDED"
    assert abs(refused.value.retry_after - spend.seconds_to_midnight(time.time())) <= 2  # until 00:00 UTC
    assert meter.usage(ann)[0].spent < budget + cost


def test_a_zero_budget_refuses_the_first_call(meter):
    with pytest.raises(BudgetExceeded):
        meter.admit(account(meter, budgets=Budgets(0.0)), 0.01, 30)


def test_the_key_budget_covers_every_caller_of_the_key(meter):
    budgets = Budgets(None, key=0.03)
    ann, bob = account(meter, "app:ann", budgets), account(meter, "app:bob", budgets)
    paid(meter, ann, 0.02)
    paid(meter, bob, 0.02)  # admitted: 0.02 < 0.03; crosses it
    with pytest.raises(BudgetExceeded) as refused:
        meter.admit(ann, 0.01, 30)
    assert refused.value.details["scope"] == "key"
    other_key = account(meter, "other:ann", budgets)
    paid(meter, other_key, 0.01)  # another key's callers are unaffected


def test_a_refusal_by_the_key_leaves_nothing_held_on_the_caller(meter):
    budgets = Budgets(1.0, key=0.01)
    ann = account(meter, "app:ann", budgets)
    paid(meter, account(meter, "app:bob", budgets), 0.02)
    with pytest.raises(BudgetExceeded):
        meter.admit(ann, 0.5, 30)
    assert meter.usage(ann)[0].held == 0


def test_calls_in_flight_hold_their_bound_so_together_they_cannot_pass_the_budget(meter):
    ann = account(meter, budgets=Budgets(0.10))
    first = meter.admit(ann, 0.06, 30)
    second = meter.admit(ann, 0.06, 30)  # 0 + 0.06 < 0.10: admitted; the two may cross by one call's cost
    with pytest.raises(BudgetExceeded) as refused:
        meter.admit(ann, 0.06, 1)  # 0.12 held, and no time to wait for them: refused, but only for a moment
    assert refused.value.retry_after == HOLD_RETRY_AFTER
    assert meter.usage(ann)[0].held == pytest.approx(0.12)
    meter.settle(first, 0.01)
    meter.settle(second, 0.01)
    usage = meter.usage(ann)[0]
    assert usage.held == 0 and usage.spent == pytest.approx(0.02)
    meter.admit(ann, 0.06, 30)  # the holds are gone: admitted again


def test_many_threads_at_once_spend_at_most_one_call_past_the_budget(meter):
    budget, cost = 0.05, 0.01
    ann = account(meter, budgets=Budgets(budget))
    results: list[str] = []

    def call() -> None:
        try:
            hold = meter.admit(ann, cost, 30)
        except BudgetExceeded:
            results.append("refused")
            return
        time.sleep(0.01)
        meter.settle(hold, cost)
        results.append("paid")

    for _ in range(4):  # rounds of 8 concurrent calls until the budget is spent
        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    spent = meter.usage(ann)[0].spent
    assert results.count("paid") == round(spent / cost)
    assert budget <= spent < budget + cost + 1e-9


def test_a_hold_whose_call_never_settled_expires(meter):
    ann = account(meter, budgets=Budgets(0.05))
    meter.admit(ann, 0.05, 1)  # its process died: no settle
    with pytest.raises(BudgetExceeded):
        meter.admit(ann, 0.01, 1)
    time.sleep(1.1)
    meter.admit(ann, 0.01, 1)


def test_an_admission_waits_for_calls_in_flight_to_settle_when_they_hold_the_rest(meter):
    ann = account(meter, budgets=Budgets(0.05))
    first = meter.admit(ann, 0.05, 30)  # holds the whole budget; will cost far less
    settler = threading.Timer(0.3, lambda: meter.settle(first, 0.01))
    settler.start()
    meter.admit(ann, 0.02, 30)  # waited for the settle: 0.01 spent leaves room
    settler.join()
    assert meter.usage(ann)[0].spent == pytest.approx(0.01)


def test_a_settle_without_cost_only_frees_the_hold(meter):
    ann = account(meter, budgets=Budgets(0.05))
    meter.settle(meter.admit(ann, 0.05, 30), 0.0)  # the call failed before it was billed
    mine = meter.usage(ann)[0]
    assert mine.spent == 0 and mine.calls == 0 and mine.held == 0


def test_the_top_list_ranks_today_s_callers_by_spend(meter):
    for caller, calls in (("app:ann", 1), ("app:bob", 3), ("app", 2)):
        for _ in range(calls):
            paid(meter, account(meter, caller), 0.01)
    ranked, total = meter.top(2)
    assert [name for name, _ in ranked] == ["app:bob", "app"]
    assert ranked[0][1] == pytest.approx(0.03) and total == pytest.approx(0.06)


def test_a_changed_override_makes_every_meter_read_the_budgets_again(meter):
    budgets = Budgets(0.01)
    ann = account(meter, budgets=budgets)
    paid(meter, ann, 0.01)
    with pytest.raises(BudgetExceeded):
        meter.admit(ann, 0.01, 30)
    reads = budgets.reads
    budgets.caller = 1.0
    meter.overrides_changed()
    paid(meter, ann, 0.01)  # the version moved: the budgets were read again, and the new one admits
    assert budgets.reads > reads


def test_a_stored_document_of_another_shape_reads_as_an_empty_day(meter, caplog):
    ann = account(meter, budgets=Budgets(0.05))
    key = f"spend:{spend.utc_day(time.time())}:caller:app:ann"
    store = meter.redis if meter.redis is not None else meter.local
    store.set(key, '{"spent": "lots"}')
    paid(meter, ann, 0.01)
    assert meter.usage(ann)[0].spent == pytest.approx(0.01)
    assert "unexpected shape" in caplog.text


def test_requests_counted_by_the_rate_limits_show_in_the_usage(meter):
    ann = account(meter)
    store = meter.redis if meter.redis is not None else meter.local
    for _ in range(3):
        store.incr(requests_key(spend.utc_day(time.time()), "app:ann"), 1, 60)
    assert meter.usage(ann)[2] == 3


def test_while_redis_is_down_the_local_store_counts_and_says_so_once(caplog):
    meter = SpendMeter(MemoryStore(), RedisStore("redis://127.0.0.1:1/0", prefix=unique_prefix("down")))
    budgets = Budgets(0.02)
    ann = account(meter, budgets=budgets)
    paid(meter, ann, 0.02)
    with pytest.raises(BudgetExceeded):
        meter.admit(ann, 0.01, 30)
    budgets.caller = None
    meter.overrides_changed()
    assert meter.local.get(VERSION_KEY) == "1"
    paid(meter, ann, 0.01)
    assert caplog.text.count("counted by this host (or process) alone") == 1
