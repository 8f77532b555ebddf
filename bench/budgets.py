"""What daily budgets (contract section 12) cost, measured in one run against real Redis:
1. the cache-hit path of POST /api/analyze through gunicorn, budgets off and on (two services, alternated in rounds);
   and, since no setting switches off the requests-today counter the rate-limit script increments on every AI
   request, that script alone with and without the counter key (the real "before");
2. a paid call (a cache miss, fake Gemini without latency) through the real policy chain built in this process, with
   nobody paying (no meter: the path before budgets), budgets off (the meter still counts spend) and on; and
   SpendMeter.admit + settle alone, from 1 and from 8 threads.
"""
from __future__ import annotations

import http.client
import shutil
import statistics
import threading
import time
import uuid
from contextlib import ExitStack
from typing import Any, Callable

from backend.composition import Backend, build_backend
from backend.resilience import spend
from backend.resilience.rate_window import MovingWindowLimiter, Quota
from backend.resilience.spend import Account, Limits, utc_day
from backend.resilience.spend_meter import SpendMeter, requests_key
from backend.resilience.store import MemoryStore
from backend.resilience.store_redis import RedisStore
from backend.schemas.caller import Caller
from backend.schemas.requests import AnalyzeRequest
from backend.services.budgets import BudgetService
from backend.settings import load_settings
from bench.conversation import migrated
from bench.harness import (
    HIGH_LIMIT,
    USERS,
    FakeProcess,
    auth_headers,
    drop_redis_prefix,
    layout_parser,
    learner_text,
    ratio_line,
    redis_url,
    service,
    service_env,
)
from bench.hit_throughput import warm_cache
from bench.load import percentile

# Far above what any caller here spends, so nothing is refused: what is measured is the admission, not a refusal.
PER_CALLER_USD, PER_KEY_USD = "1000", "1000000"
PAYERS = 8  # callers of the paid calls: few, so each one's budgets are read from the database once, as in steady use
US = 1e6


def env_of(gemini: FakeProcess, database: str, budgets: bool) -> dict[str, str]:
    """The service's settings, with both daily budgets set (on) or both empty (off, the default)."""
    return service_env(gemini, DATABASE_URL=database, BUDGET_DAILY_USD_PER_CALLER=PER_CALLER_USD if budgets else "",
                       BUDGET_DAILY_USD_PER_KEY=PER_KEY_USD if budgets else "")


def stats(seconds: list[float]) -> dict[str, float]:
    return {"p50": percentile(seconds, 0.5) * US, "p99": percentile(seconds, 0.99) * US,
            "mean": statistics.fmean(seconds) * US, "n": len(seconds)}


# -- 1. the hit path -----------------------------------------------------------------------------------------------

def timed_hit(conn: http.client.HTTPConnection, body: str, user: int) -> tuple[float, str]:
    """One cached analysis on a keep-alive connection: (seconds, "status X-Cache")."""
    started = time.perf_counter()
    conn.request("POST", "/api/analyze", body=body.encode(), headers=auth_headers(user))
    response = conn.getresponse()
    response.read()
    return time.perf_counter() - started, f"{response.status} {response.getheader('X-Cache')}"


def hit_path(ports: dict[str, int], bodies: list[str], rounds: int, per_round: int) -> dict[str, Any]:
    """Rounds of ``per_round`` hits on each service, the services alternated request by request (which goes first
    alternating too), so the host's drift, which swings a whole round by a third here, falls on both alike. Each
    round opens new connections, landing on either worker of each service."""
    samples: dict[str, list[float]] = {name: [] for name in ports}
    caches: dict[str, dict[str, int]] = {name: {} for name in ports}
    round_ratios = []
    for r in range(rounds):
        conns = {name: http.client.HTTPConnection("127.0.0.1", port, timeout=30) for name, port in ports.items()}
        this: dict[str, list[float]] = {name: [] for name in ports}
        for i in range(-5, per_round):  # the first few open the connections and are not counted
            n = r * per_round + i
            for name in list(ports) if n % 2 == 0 else list(reversed(ports)):
                seconds, label = timed_hit(conns[name], bodies[n % len(bodies)], n)
                caches[name][label] = caches[name].get(label, 0) + 1
                if i >= 0 and label == "200 HIT":
                    this[name].append(seconds)
        for name, conn in conns.items():
            conn.close()
            samples[name] += this[name]
        round_ratios.append(statistics.median(this["on"]) / statistics.median(this["off"]))
    return {"off": stats(samples["off"]), "on": stats(samples["on"]), "caches": caches,
            "round_ratios": round_ratios}


def script_alone(url: str, calls: int) -> dict[str, Any]:
    """MovingWindowLimiter.hit as the AI routes call it (caller and key quotas, the address's lock as a gate),
    without and with the requests-today counter, alternated call by call."""
    prefix = f"bench-{uuid.uuid4().hex[:10]}:"
    store = RedisStore(url, prefix=prefix)
    limiter = MovingWindowLimiter(MemoryStore(), store)
    amount, window = int(HIGH_LIMIT.split("/")[0]), 60.0
    day, gates = utc_day(time.time()), ("authlock:127.0.0.1",)
    times: dict[str, list[float]] = {"without": [], "with": []}
    refused = 0
    try:
        for i in range(-200, calls):
            user = f"user-{i % USERS}"
            quotas = [Quota(f"ai:key:bench|{user}", amount, window), Quota("ai-key:key:bench", amount, window)]
            counter = (requests_key(day, f"bench:{user}"),)
            for name in ("without", "with") if i % 2 == 0 else ("with", "without"):
                started = time.perf_counter()
                verdict = limiter.hit(quotas, gates, counter if name == "with" else ())
                seconds = time.perf_counter() - started
                refused += not verdict.allowed or not verdict.gates_checked
                if i >= 0:
                    times[name].append(seconds)
    finally:
        drop_redis_prefix(url, prefix)
    without, with_ = stats(times["without"]), stats(times["with"])
    return {"without": without, "with": with_, "ratio": with_["p50"] / without["p50"], "refused": refused}


# -- 2. the miss path ----------------------------------------------------------------------------------------------

def paid_calls(backend: Backend, configs: dict[str, BudgetService | None], calls: int,
               warmup: int) -> dict[str, Any]:
    """Distinct analyses (each a miss, so a paid call) through each configuration in turn, rotated every call."""
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
    least), so the host's drift falls on both alike."""
    prefix = f"bench-{uuid.uuid4().hex[:10]}:"
    store = RedisStore(url, prefix=prefix)
    meter = SpendMeter(MemoryStore(), store)
    limits: Callable[[str | None], Limits] = lambda version: Limits(1000.0, 1e6, version or "0")  # noqa: E731
    done, pairs, pings = [0] * threads, [], []
    stop = time.perf_counter() + seconds

    def work(n: int) -> None:
        account = Account(f"bench:meter-{n}", "bench", limits, meter)
        while time.perf_counter() < stop:
            started = time.perf_counter()
            meter.settle(meter.admit(account, 0.02, 60.0, provider="gemini", operation="analyze"), 0.0004)
            if threads == 1:
                pinged = time.perf_counter()
                store.client.ping()
                store.client.ping()
                pairs.append(pinged - started)
                pings.append(time.perf_counter() - pinged)
            done[n] += 1

    try:
        meter.settle(meter.admit(Account("bench:warm", "bench", limits, meter), 0.0, 1.0), 0.0)  # load the script
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
    # From one thread the pings are not the meter's: its rate is the pairs over their own time.
    return {"rate": len(pairs) / sum(pairs), "pair_us": percentile(pairs, 0.5) * US,
            "pings_us": percentile(pings, 0.5) * US}


def miss_path(gemini: FakeProcess, database: str, calls: int, warmup: int) -> dict[str, Any]:
    """One backend as the service builds it (budgets off), and beside its BudgetService the one the service builds
    with budgets on, on the same meter: all three configurations go through the very same policy chain and clients,
    differing only in the account that pays (two backends differ by more than that, by a millisecond at times)."""
    env = env_of(gemini, database, False)
    backend = build_backend(load_settings(env))
    try:
        on = load_settings({**env, "BUDGET_DAILY_USD_PER_CALLER": PER_CALLER_USD,
                            "BUDGET_DAILY_USD_PER_KEY": PER_KEY_USD})
        budgets_on = BudgetService(backend.database, backend.budgets.meter, per_caller=on.budget_daily_usd_per_caller,
                                   per_key=on.budget_daily_usd_per_key)
        return paid_calls(backend, {"nobody pays": None, "budgets off": backend.budgets, "budgets on": budgets_on},
                          calls, warmup)
    finally:
        backend.close()
        shutil.rmtree(env["CACHE_DIR"], ignore_errors=True)
        drop_redis_prefix(env["REDIS_URL"], env["REDIS_KEY_PREFIX"])


# -- the run -------------------------------------------------------------------------------------------------------

def measure(args) -> dict[str, Any]:
    url = redis_url()
    marks = [time.monotonic()]

    def lap() -> float:
        """Seconds since the last lap: where the run's time went (it is to stay near a minute)."""
        marks.append(time.monotonic())
        return marks[-1] - marks[-2]

    gemini = FakeProcess("tests.fakes.gemini")
    try:
        with migrated("sqlite") as database, ExitStack() as stack:
            servers = {name: stack.enter_context(service(env_of(gemini, database, name == "on"), args.workers,
                                                         args.threads))
                       for name in ("off", "on")}
            bodies: list[str] = []
            for server in servers.values():
                bodies = warm_cache(server)
            calls_before = gemini.calls()
            started = lap()
            hits = hit_path({name: s.port for name, s in servers.items()}, bodies, args.rounds, args.per_round)
            hits.update(upstream=gemini.calls() - calls_before, seconds=lap(), start_seconds=started)
            for server in servers.values():  # two idle services must not compete with what follows
                server.stop()
            lap()
            script = script_alone(url, args.script_calls)
            script["seconds"] = lap()
            paid = miss_path(gemini, database, args.paid_calls, args.warmup)
            paid["seconds"] = lap()
    finally:
        gemini.stop()
    meters = {n: meter(url, n, args.meter_seconds) for n in (1, 8)}
    return {"hits": hits, "script": script, "paid": paid, "meter": meters}


def main(argv: list[str] | None = None) -> dict:
    parser = layout_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--per-round", type=int, default=100, help="sequential hits per service per round")
    parser.add_argument("--script-calls", type=int, default=4000, help="rate-limit script calls per variant")
    parser.add_argument("--paid-calls", type=int, default=200, help="paid calls per configuration")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--meter-seconds", type=float, default=1.5)
    args = parser.parse_args(argv)
    r = measure(args)
    hits, script, paid, meters = r["hits"], r["script"], r["paid"], r["meter"]
    one, eight = meters[1], meters[8]
    off, on = hits["off"], hits["on"]
    hit_ratio, hit_p99_ratio = on["p50"] / off["p50"], on["p99"] / off["p99"]
    print(f"Redis {redis_url()}; gunicorn {args.workers}x{args.threads} per service, SQLite (migrated); "
          f"budgets on = BUDGET_DAILY_USD_PER_CALLER={PER_CALLER_USD}, BUDGET_DAILY_USD_PER_KEY={PER_KEY_USD}")
    print(f"1. cache hits, POST /api/analyze, one client, {args.rounds} rounds x {args.per_round} per service "
          f"alternated request by request, {hits['seconds']:.0f} s (after {hits['start_seconds']:.0f} s starting, "
          f"warming) "
          f"(status X-Cache: off {hits['caches']['off']}, on {hits['caches']['on']})")
    for name, x in (("budgets off", off), ("budgets on", on)):
        print(f"  {name:12s} p50 {x['p50']:7.0f} us  p99 {x['p99']:7.0f} us  mean {x['mean']:7.0f} us  ({x['n']})")
    print(f"  on / off     p50 {hit_ratio:7.3f}     p99 {hit_p99_ratio:7.3f}   per-round p50 ratios "
          f"{', '.join(f'{v:.2f}' for v in hits['round_ratios'])}; upstream calls during hits: {hits['upstream']}")
    w, c = script["without"], script["with"]
    print(f"  the part no setting switches off: the rate-limit script alone (MovingWindowLimiter.hit, 2 quotas + "
          f"a gate), {w['n']} calls each, alternated, {script['seconds']:.0f} s")
    print(f"  without counter p50 {w['p50']:6.1f} us  p99 {w['p99']:6.1f} us  mean {w['mean']:6.1f} us")
    print(f"  with counter    p50 {c['p50']:6.1f} us  p99 {c['p99']:6.1f} us  mean {c['mean']:6.1f} us   "
          f"ratio p50 {script['ratio']:.3f} ({c['p50'] - w['p50']:+.1f} us); refused {script['refused']}")
    base = paid["nobody pays"]
    print(f"2. paid calls: distinct analyses through the app's policy chain in this process (fake Gemini, no "
          f"latency), 3 configurations rotated call by call, {paid['seconds']:.0f} s (cache: {paid['caches']})")
    for name in ("nobody pays", "budgets off", "budgets on"):
        x = paid[name]
        print(f"  {name:12s} p50 {x['p50']:7.0f} us  p99 {x['p99']:7.0f} us  mean {x['mean']:7.0f} us  "
              f"added: p50 {x['p50'] - base['p50']:+6.0f} us, median paired {x['paired']:+6.0f} us  "
              f"ratio p50 {x['p50'] / base['p50']:.3f}")
    added = paid["budgets on"]["p50"] - base["p50"]
    on_vs_off = paid["budgets on"]["p50"] / paid["budgets off"]["p50"]
    print("  (nobody pays = no meter, the path before budgets; budgets off still meters: spend is counted for "
          "/api/me/usage and the top callers)")
    print(f"  SpendMeter.admit + settle alone: p50 {one['pair_us']:.0f} us per pair from 1 thread "
          f"({one['rate']:.0f}/s), two Redis PINGs timed beside each p50 {one['pings_us']:.0f} us "
          f"(pair / 2 PINGs {one['pair_us'] / one['pings_us']:.2f}); {eight['rate']:.0f}/s from 8 threads")
    clean = (set(hits["caches"]["off"]) == {"200 HIT"} and set(hits["caches"]["on"]) == {"200 HIT"}
             and hits["upstream"] == 0 and script["refused"] == 0 and set(paid["caches"]) == {"MISS"})
    met = hit_ratio <= 1.05 and clean
    print(f"budgets: hit p50 on/off {hit_ratio:.3f}, script +counter {script['ratio']:.3f}; paid call "
          f"{added:+.0f} us ({on_vs_off:.3f} on/off); meter {one['rate']:.0f}/s (1 thread), {eight['rate']:.0f}/s (8)")
    print(ratio_line("hit p50 budgets on / off", hit_ratio, "<= 1.05", met))
    return {"ok": met, "ratio": hit_ratio, "hit_ratio": hit_ratio, "hit_p99_ratio": hit_p99_ratio,
            "hit_off_p50_us": off["p50"], "hit_on_p50_us": on["p50"], "script_ratio": script["ratio"],
            "script_added_us": c["p50"] - w["p50"], "paid_added_us": added, "paid_on_off_ratio": on_vs_off,
            "meter_1_per_s": one["rate"], "meter_8_per_s": eight["rate"], "meter_pair_us": one["pair_us"],
            "meter_pings_us": one["pings_us"]}


if __name__ == "__main__":
    main()
