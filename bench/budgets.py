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
BUDGETS = {"BUDGET_DAILY_USD_PER_CALLER": "1000", "BUDGET_DAILY_USD_PER_KEY": "1000000"}
OFF = {"BUDGET_DAILY_USD_PER_CALLER": "", "BUDGET_DAILY_USD_PER_KEY": ""}
PAYERS = 8  # callers of the paid calls: few, so each one's budgets are read from the database once, as in steady use
US = 1e6


def stats(seconds: list[float]) -> dict[str, float]:
    return {"p50": percentile(seconds, 0.5) * US, "p99": percentile(seconds, 0.99) * US,
            "mean": statistics.fmean(seconds) * US, "n": len(seconds)}


# -- 1. the hit path -----------------------------------------------------------------------------------------------

def hit_round(port: int, bodies: list[str], count: int, offset: int, caches: dict[str, int]) -> list[float]:
    """``count`` sequential cached analyses on one fresh keep-alive connection (a few untimed first)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for i in range(-5, count):
        body = bodies[(offset + i) % len(bodies)].encode()
        started = time.perf_counter()
        conn.request("POST", "/api/analyze", body=body, headers=auth_headers(offset + i))
        response = conn.getresponse()
        response.read()
        seconds = time.perf_counter() - started
        label = f"{response.status} {response.getheader('X-Cache')}"
        caches[label] = caches.get(label, 0) + 1
        if i >= 0 and label == "200 HIT":
            times.append(seconds)
    conn.close()
    return times


def hit_path(ports: dict[str, int], bodies: list[str], rounds: int, per_round: int) -> dict[str, Any]:
    """Rounds of ``per_round`` hits on each service in turn, the first of each round alternating, so that the host's
    drift falls on both alike; the figure is the ratio of the pooled p50s (each round's ratio shown too)."""
    samples: dict[str, list[float]] = {name: [] for name in ports}
    caches: dict[str, dict[str, int]] = {name: {} for name in ports}
    round_ratios = []
    for r in range(rounds):
        order = list(ports) if r % 2 == 0 else list(reversed(ports))
        this = {name: hit_round(ports[name], bodies, per_round, r * per_round, caches[name]) for name in order}
        for name, times in this.items():
            samples[name] += times
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

def paid_calls(backends: dict[str, Backend], calls: int, warmup: int) -> dict[str, Any]:
    """Distinct analyses (each a miss, so a paid call) through each configuration in turn, rotated every call."""
    configs: dict[str, tuple[Backend, bool]] = {"nobody pays": (backends["off"], False),
                                                "budgets off": (backends["off"], True),
                                                "budgets on": (backends["on"], True)}
    times: dict[str, list[float]] = {name: [] for name in configs}
    caches: dict[str, int] = {}
    names = list(configs)
    for i in range(warmup + calls):
        for name in names[i % 3:] + names[:i % 3]:
            backend, pays = configs[name]
            account = backend.budgets.account(Caller("bench", f"payer-{i % PAYERS}")) if pays else None
            request = AnalyzeRequest(text=learner_text(3_000_000 + i * 3 + names.index(name)), level="B1")
            started = time.perf_counter()
            with spend.paying(account):
                outcome = backend.analysis.analyze(request)
            seconds = time.perf_counter() - started
            caches[outcome.cache] = caches.get(outcome.cache, 0) + 1
            if i >= warmup and outcome.cache == "MISS":
                times[name].append(seconds)
    out: dict[str, Any] = {name: stats(values) for name, values in times.items()}
    out["caches"] = caches
    return out


def meter_rate(url: str, threads: int, seconds: float) -> float:
    """SpendMeter.admit + settle pairs per second, each thread a caller of the same key (its document is shared)."""
    prefix = f"bench-{uuid.uuid4().hex[:10]}:"
    meter = SpendMeter(MemoryStore(), RedisStore(url, prefix=prefix))
    limits: Callable[[str | None], Limits] = lambda version: Limits(1000.0, 1e6, version or "0")  # noqa: E731
    done = [0] * threads
    stop = time.perf_counter() + seconds

    def work(n: int) -> None:
        account = Account(f"bench:meter-{n}", "bench", limits, meter)
        while time.perf_counter() < stop:
            hold = meter.admit(account, 0.02, 60.0, provider="gemini", operation="analyze")
            meter.settle(hold, 0.0004)
            done[n] += 1

    try:
        meter.settle(meter.admit(Account("bench:warm", "bench", limits, meter), 0.0, 1.0), 0.0)  # load the script
        started = time.perf_counter()
        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return sum(done) / (time.perf_counter() - started)
    finally:
        drop_redis_prefix(url, prefix)


def miss_path(gemini: FakeProcess, database: str, calls: int, warmup: int) -> dict[str, Any]:
    backends: dict[str, Backend] = {}
    envs = {"off": service_env(gemini, DATABASE_URL=database, **OFF),
            "on": service_env(gemini, DATABASE_URL=database, **BUDGETS)}
    try:
        for name, env in envs.items():
            backends[name] = build_backend(load_settings(env))
        return paid_calls(backends, calls, warmup)
    finally:
        for name, backend in backends.items():
            backend.close()
        for env in envs.values():
            shutil.rmtree(env["CACHE_DIR"], ignore_errors=True)
            drop_redis_prefix(env["REDIS_URL"], env["REDIS_KEY_PREFIX"])


# -- the run -------------------------------------------------------------------------------------------------------

def measure(args) -> dict[str, Any]:
    url = redis_url()
    gemini = FakeProcess("tests.fakes.gemini")
    try:
        with migrated("sqlite") as database, ExitStack() as stack:
            servers = {name: stack.enter_context(service(service_env(gemini, DATABASE_URL=database, **extra),
                                                         args.workers, args.threads))
                       for name, extra in (("off", OFF), ("on", BUDGETS))}
            bodies: list[str] = []
            for server in servers.values():
                bodies = warm_cache(server)
            calls_before = gemini.calls()
            hits = hit_path({name: s.port for name, s in servers.items()}, bodies, args.rounds, args.per_round)
            hits["upstream"] = gemini.calls() - calls_before
            for server in servers.values():  # two idle services must not compete with what follows
                server.stop()
            script = script_alone(url, args.script_calls)
            paid = miss_path(gemini, database, args.paid_calls, args.warmup)
    finally:
        gemini.stop()
    meter = {n: meter_rate(url, n, args.meter_seconds) for n in (1, 8)}
    return {"hits": hits, "script": script, "paid": paid, "meter": meter}


def main(argv: list[str] | None = None) -> dict:
    parser = layout_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=200, help="sequential hits per service per round")
    parser.add_argument("--script-calls", type=int, default=6000, help="rate-limit script calls per variant")
    parser.add_argument("--paid-calls", type=int, default=300, help="paid calls per configuration")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--meter-seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    r = measure(args)
    hits, script, paid, meter = r["hits"], r["script"], r["paid"], r["meter"]
    off, on = hits["off"], hits["on"]
    hit_ratio, hit_p99_ratio = on["p50"] / off["p50"], on["p99"] / off["p99"]
    print(f"Redis {redis_url()}; gunicorn {args.workers}x{args.threads} per service, SQLite (migrated); "
          f"budgets on = {', '.join(f'{k}={v}' for k, v in BUDGETS.items())}")
    print(f"1. cache hits, POST /api/analyze, one client, {args.rounds} rounds x {args.per_round} per service, "
          f"first alternating (status X-Cache: off {hits['caches']['off']}, on {hits['caches']['on']})")
    for name, x in (("budgets off", off), ("budgets on", on)):
        print(f"  {name:12s} p50 {x['p50']:7.0f} us  p99 {x['p99']:7.0f} us  mean {x['mean']:7.0f} us  ({x['n']})")
    print(f"  on / off     p50 {hit_ratio:7.3f}     p99 {hit_p99_ratio:7.3f}   per-round p50 ratios "
          f"{', '.join(f'{v:.2f}' for v in hits['round_ratios'])}; upstream calls during hits: {hits['upstream']}")
    w, c = script["without"], script["with"]
    print(f"  the part no setting switches off: the rate-limit script alone (MovingWindowLimiter.hit, 2 quotas + "
          f"a gate), {w['n']} calls each, alternated")
    print(f"  without counter p50 {w['p50']:6.1f} us  p99 {w['p99']:6.1f} us  mean {w['mean']:6.1f} us")
    print(f"  with counter    p50 {c['p50']:6.1f} us  p99 {c['p99']:6.1f} us  mean {c['mean']:6.1f} us   "
          f"ratio p50 {script['ratio']:.3f} ({c['p50'] - w['p50']:+.1f} us); refused {script['refused']}")
    base = paid["nobody pays"]
    print(f"2. paid calls: distinct analyses through the app's policy chain in this process (fake Gemini, no "
          f"latency), 3 configurations rotated call by call (cache: {paid['caches']})")
    for name in ("nobody pays", "budgets off", "budgets on"):
        x = paid[name]
        print(f"  {name:12s} p50 {x['p50']:7.0f} us  p99 {x['p99']:7.0f} us  mean {x['mean']:7.0f} us  "
              f"added p50 {x['p50'] - base['p50']:+6.0f} us  ratio {x['p50'] / base['p50']:.3f}")
    added = paid["budgets on"]["p50"] - base["p50"]
    on_vs_off = paid["budgets on"]["p50"] / paid["budgets off"]["p50"]
    print(f"  (nobody pays = no meter, the path before budgets; budgets off still meters: spend is counted for "
          f"/api/me/usage and the top callers)")
    print(f"  SpendMeter.admit + settle alone: {meter[1]:.0f}/s from 1 thread ({US / meter[1]:.0f} us per pair), "
          f"{meter[8]:.0f}/s from 8 threads")
    clean = (set(hits["caches"]["off"]) == {"200 HIT"} and set(hits["caches"]["on"]) == {"200 HIT"}
             and hits["upstream"] == 0 and script["refused"] == 0 and set(paid["caches"]) == {"MISS"})
    met = hit_ratio <= 1.05 and clean
    print(f"budgets: hit p50 on/off {hit_ratio:.3f}, script +counter {script['ratio']:.3f}; paid call "
          f"{added:+.0f} us ({on_vs_off:.3f} on/off); meter {meter[1]:.0f}/s (1 thread), {meter[8]:.0f}/s (8)")
    print(ratio_line("hit p50 budgets on / off", hit_ratio, "<= 1.05", met))
    return {"ok": met, "ratio": hit_ratio, "hit_ratio": hit_ratio, "hit_p99_ratio": hit_p99_ratio,
            "hit_off_p50_us": off["p50"], "hit_on_p50_us": on["p50"], "script_ratio": script["ratio"],
            "script_added_us": c["p50"] - w["p50"], "paid_added_us": added, "paid_on_off_ratio": on_vs_off,
            "meter_1_per_s": meter[1], "meter_8_per_s": meter[8]}


if __name__ == "__main__":
    main()
