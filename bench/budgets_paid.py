"""What a paid call costs with daily budgets (bench.budgets, part 2): a cache miss through the app's policy chain
with nobody paying, budgets off and on, and SpendMeter.admit + settle alone, from 1 and from 8 threads."""
from __future__ import annotations

import statistics
import threading
import time
import uuid
from typing import Any, Callable

from backend.composition import Backend
from backend.resilience import spend
from backend.resilience.spend import Account, Limits
from backend.resilience.spend_meter import SpendMeter
from backend.resilience.store import MemoryStore
from backend.resilience.store_redis import RedisStore
from backend.schemas.caller import Caller
from backend.schemas.requests import AnalyzeRequest
from backend.services.budgets import BudgetService
from backend.settings import load_settings
from bench.harness import drop_redis_prefix, learner_text
from bench.load import percentile

# Far above what any caller here spends, so nothing is refused: what is measured is the admission, not a refusal.
BUDGETS = {"BUDGET_DAILY_USD_PER_CALLER": "1000", "BUDGET_DAILY_USD_PER_KEY": "1000000"}
PAYERS = 8  # callers of the paid calls: few, so each one's budgets are read from the database once, as in steady use
US = 1e6


def stats(seconds: list[float]) -> dict[str, float]:
    return {"p50": percentile(seconds, 0.5) * US, "p99": percentile(seconds, 0.99) * US,
            "mean": statistics.fmean(seconds) * US, "n": len(seconds)}


# -- the miss path ----------------------------------------------------------------------------------------------

def paid_calls(backend: Backend, calls: int, warmup: int) -> dict[str, Any]:
    """Distinct analyses (each a miss, so a paid call) through the backend of the app with budgets off, three
    configurations rotated call by call: nobody paying, its own BudgetService, and beside it the one the app builds
    with budgets on, on the same meter. All three go through the very same policy chain and clients, differing
    only in the account that pays (two backends differ by more than that, by a millisecond at times)."""
    on = load_settings(BUDGETS)
    configs = {"nobody pays": None, "budgets off": backend.budgets,
               "budgets on": BudgetService(backend.database, backend.budgets.meter,
                                           per_caller=on.budget_daily_usd_per_caller,
                                           per_key=on.budget_daily_usd_per_key)}
    times: dict[str, list[float]] = {name: [] for name in configs}
    caches: dict[str, int] = {}
    names = list(configs)
    for i in range(warmup + calls):
        for name in names[i % 3:] + names[:i % 3]:
            budgets = configs[name]
            account = budgets.account(Caller("bench", f"payer-{i % PAYERS}")) if budgets is not None else None
            request = AnalyzeRequest(text=learner_text(3_000_000 + i * 3 + names.index(name)), level="B1")
            started = time.perf_counter()
            with spend.paying(account):
                outcome = backend.analysis.analyze(request)
            seconds = time.perf_counter() - started
            caches[outcome.cache] = caches.get(outcome.cache, 0) + 1
            if i >= warmup and outcome.cache == "MISS":
                times[name].append(seconds)
    out: dict[str, Any] = {name: stats(values) for name, values in times.items()}
    base = times["nobody pays"]
    for name in names:
        # The same call's three configurations ran back to back: their difference is the least drifted figure.
        paired = [(x - y) * US for x, y in zip(times[name], base, strict=True)] if len(times[name]) == len(base) else []
        out[name]["paired"] = percentile(paired, 0.5)
    out["caches"] = caches
    return out


def meter(url: str, threads: int, seconds: float) -> dict[str, float]:
    """SpendMeter.admit + settle pairs per second, each thread a caller of the same key (whose document they share);
    from one thread, each pair is timed beside two Redis PINGs on the same client (the round trips it costs at
    least), so the host's drift falls on both alike, and the rate is the pairs over their own time."""
    prefix = f"bench-{uuid.uuid4().hex[:10]}:"
    store = RedisStore(url, prefix=prefix)
    spend_meter = SpendMeter(MemoryStore(), store)
    limits: Callable[[str | None], Limits] = lambda version: Limits(1000.0, 1e6, version or "0")  # noqa: E731
    done, pairs, pings = [0] * threads, [], []
    stop = time.perf_counter() + seconds

    def work(n: int) -> None:
        account = Account(f"bench:meter-{n}", "bench", limits, spend_meter)
        while time.perf_counter() < stop:
            started = time.perf_counter()
            spend_meter.settle(spend_meter.admit(account, 0.02, 60.0, provider="gemini", operation="analyze"), 4e-4)
            done[n] += 1
            if threads == 1:
                pinged = time.perf_counter()
                store.client.ping()
                store.client.ping()
                pairs.append(pinged - started)
                pings.append(time.perf_counter() - pinged)

    try:
        spend_meter.admit(Account("bench:warm", "bench", limits, spend_meter), 0.0, 1.0)  # loads the script
        started = time.perf_counter()
        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        rate = sum(done) / (time.perf_counter() - started)
    finally:
        drop_redis_prefix(url, prefix)
    if threads > 1:
        return {"rate": rate}
    return {"rate": len(pairs) / sum(pairs), "pair_us": percentile(pairs, 0.5) * US,
            "pings_us": percentile(pings, 0.5) * US}
