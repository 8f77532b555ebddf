"""What daily budgets (contract section 12) cost, measured in one run against real Redis:
1. the cache-hit path of POST /api/analyze, budgets off and on, alternated request by request: through gunicorn
   (two services), and through two apps in this process (Flask test client: one process, so without the two
   services' own drift, which swung whole runs by 10-30 % on a busy 2-core host); and, since no setting switches off
   the requests-today counter the rate-limit script increments on every AI request, that script alone with and
   without the counter key (the real "before");
2. a paid call (a cache miss, fake Gemini without latency) through the app's policy chain in this process, with
   nobody paying (no meter: the path before budgets), budgets off (the meter still counts spend) and on; and
   SpendMeter.admit + settle alone, from 1 and from 8 threads (bench/budgets_paid.py).
"""
from __future__ import annotations

import http.client
import json
import shutil
import statistics
import time
import uuid
from contextlib import ExitStack
from typing import Any

import requests
from flask import Flask

from backend import create_app
from backend.http.context import EXTENSION
from backend.resilience.rate_window import MovingWindowLimiter, Quota
from backend.resilience.spend import utc_day
from backend.resilience.spend_meter import requests_key
from backend.resilience.store import MemoryStore
from backend.resilience.store_redis import RedisStore
from bench.budgets_paid import BUDGETS, meter, paid_calls, stats
from bench.databases import migrated
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
from bench.hit_throughput import TEXTS, warm_cache


def env_of(gemini: FakeProcess, database: str, budgets: bool) -> dict[str, str]:
    """The service's settings, with both daily budgets set (on) or both empty (off, the default)."""
    return {**service_env(gemini, DATABASE_URL=database), **{k: v if budgets else "" for k, v in BUDGETS.items()}}


# -- 1. the hit path -----------------------------------------------------------------------------------------------

class OverHttp:
    """Cached analyses sent to a gunicorn service on a keep-alive connection, a new one each round (so that rounds
    land on either worker)."""

    def __init__(self, port: int):
        self.port, self.conn = port, http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def new_round(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def __call__(self, body: str, user: int) -> tuple[float, str]:
        started = time.perf_counter()
        self.conn.request("POST", "/api/analyze", body=body.encode(), headers=auth_headers(user))
        response = self.conn.getresponse()
        response.read()
        return time.perf_counter() - started, f"{response.status} {response.getheader('X-Cache')}"


class InProcess:
    """Cached analyses sent to an app in this process through Flask's test client."""

    def __init__(self, app: Flask):
        self.client = app.test_client()

    def new_round(self) -> None:
        pass

    def __call__(self, body: str, user: int) -> tuple[float, str]:
        started = time.perf_counter()
        response = self.client.post("/api/analyze", data=body, headers=auth_headers(user))
        return time.perf_counter() - started, f"{response.status_code} {response.headers.get('X-Cache')}"


Target = OverHttp | InProcess  # where one configuration's hits go: (seconds, "status X-Cache") for a body and a user


def hit_path(targets: dict[str, Target], bodies: list[str], rounds: int, per_round: int) -> dict[str, Any]:
    """Rounds of ``per_round`` hits on each of off and on, alternated request by request (which goes first
    alternating too), so the host's drift falls on both alike; the figure is the ratio of the pooled p50s."""
    samples: dict[str, list[float]] = {name: [] for name in targets}
    caches: dict[str, dict[str, int]] = {name: {} for name in targets}
    round_ratios = []
    for r in range(rounds):
        this: dict[str, list[float]] = {name: [] for name in targets}
        for target in targets.values():
            target.new_round()
        for i in range(-5, per_round):  # the first few (re)open the connections and are not counted
            n = r * per_round + i
            for name in list(targets) if n % 2 == 0 else list(reversed(targets)):
                seconds, label = targets[name](bodies[n % len(bodies)], n)
                caches[name][label] = caches[name].get(label, 0) + 1
                if i >= 0 and label == "200 HIT":
                    this[name].append(seconds)
        for name in targets:
            samples[name] += this[name]
        round_ratios.append(statistics.median(this["on"]) / statistics.median(this["off"]))
    off, on = stats(samples["off"]), stats(samples["on"])
    return {"off": off, "on": on, "caches": caches, "round_ratios": round_ratios, "ratio": on["p50"] / off["p50"],
            "clean": all(set(c) == {"200 HIT"} for c in caches.values())}


def script_alone(url: str, calls: int) -> dict[str, Any]:
    """MovingWindowLimiter.hit as the AI routes call it (caller and key quotas, the address's lock as a gate),
    without and with the requests-today counter, alternated call by call."""
    prefix = f"bench-{uuid.uuid4().hex[:10]}:"
    limiter = MovingWindowLimiter(MemoryStore(), RedisStore(url, prefix=prefix))
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


# -- the run -------------------------------------------------------------------------------------------------------

def in_process(gemini: FakeProcess, database: str, args) -> dict[str, Any]:
    """The hit path through two apps in this process, then the paid calls through the first one's backend."""
    envs = {name: {**env_of(gemini, database, name == "on"), "LOG_LEVEL": "ERROR"} for name in ("off", "on")}
    apps: dict[str, Flask] = {}
    try:
        apps.update((name, create_app(env)) for name, env in envs.items())
        targets: dict[str, Target] = {name: InProcess(app) for name, app in apps.items()}
        bodies = [json.dumps({"text": learner_text(i), "level": "B1"}) for i in range(TEXTS)]
        for target in targets.values():
            for i, body in enumerate(bodies):  # one process, one memory tier: one miss each caches it for good
                target(body, i)
        started, calls_before = time.monotonic(), gemini.calls()
        hits = hit_path(targets, bodies, args.rounds, args.per_round)
        hits.update(upstream=gemini.calls() - calls_before, seconds=time.monotonic() - started,
                    budget={name: app.extensions[EXTENSION].budgets.per_caller for name, app in apps.items()})
        started = time.monotonic()
        paid = paid_calls(apps["off"].extensions[EXTENSION], args.paid_calls, args.warmup)
        return {"hits": hits, "paid": {**paid, "seconds": time.monotonic() - started}}
    finally:
        for app in apps.values():
            app.extensions[EXTENSION].close()
        for env in envs.values():
            shutil.rmtree(env["CACHE_DIR"], ignore_errors=True)
            drop_redis_prefix(env["REDIS_URL"], env["REDIS_KEY_PREFIX"])


def measure(args) -> dict[str, Any]:
    url = redis_url()
    gemini = FakeProcess("tests.fakes.gemini")
    try:
        with migrated("sqlite") as database:
            with ExitStack() as stack:  # the services stop before what follows: nothing idles beside it
                servers = {name: stack.enter_context(service(env_of(gemini, database, name == "on"), args.workers,
                                                             args.threads)) for name in ("off", "on")}
                bodies = [warm_cache(server, rounds=2) for server in servers.values()][0]
                started, calls_before = time.monotonic(), gemini.calls()
                targets: dict[str, Target] = {name: OverHttp(s.port) for name, s in servers.items()}
                hits = hit_path(targets, bodies, args.rounds, args.per_round)
                hits.update(upstream=gemini.calls() - calls_before, seconds=time.monotonic() - started)
                # What each service says the caller's budget is: None with budgets off, the setting with them on.
                hits["budget"] = {name: requests.get(f"{s.url}/api/me/usage", headers=auth_headers(0), timeout=10)
                                  .json()["data"]["today"]["budget_usd"] for name, s in servers.items()}
            started = time.monotonic()
            script = {**script_alone(url, args.script_calls), "seconds": time.monotonic() - started}
            inner = in_process(gemini, database, args)
    finally:
        gemini.stop()
    meters = {n: meter(url, n, args.meter_seconds) for n in (1, 8)}
    return {"hits": hits, "script": script, "inner": inner["hits"], "paid": inner["paid"], "meter": meters}


def main(argv: list[str] | None = None) -> dict:
    parser = layout_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=100, help="hits on each of off and on per round")
    parser.add_argument("--script-calls", type=int, default=4000, help="rate-limit script calls per variant")
    parser.add_argument("--paid-calls", type=int, default=200, help="paid calls per configuration")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--meter-seconds", type=float, default=1.5)
    args = parser.parse_args(argv)
    r = measure(args)
    hits, inner, script, paid, one, eight = r["hits"], r["inner"], r["script"], r["paid"], r["meter"][1], r["meter"][8]
    print(f"Redis {redis_url()}; SQLite (migrated); budgets on = {', '.join(f'{k}={v}' for k, v in BUDGETS.items())}; "
          f"{args.rounds} rounds x {args.per_round} hits on each, off and on alternated request by request")
    for title, x in ((f"1. cache hits, POST /api/analyze, gunicorn {args.workers}x{args.threads} per service", hits),
                     ("   the same through two apps in this process (Flask test client, logs at ERROR)", inner)):
        print(f"{title}, {x['seconds']:.0f} s (status X-Cache: off {x['caches']['off']}, on {x['caches']['on']}; "
              f"caller's budget: off {x['budget']['off']}, on {x['budget']['on']})")
        for name in ("off", "on"):
            y = x[name]
            print(f"  budgets {name:4s} p50 {y['p50']:7.0f} us  p99 {y['p99']:7.0f} us  mean {y['mean']:7.0f} us  "
                  f"({y['n']})")
        print(f"  on / off     p50 {x['ratio']:7.3f}     p99 {x['on']['p99'] / x['off']['p99']:7.3f}   per-round p50 "
              f"ratios {', '.join(f'{v:.2f}' for v in x['round_ratios'])}; upstream calls: {x['upstream']}")
    w, c = script["without"], script["with"]
    print(f"   the part no setting switches off: the rate-limit script alone (MovingWindowLimiter.hit, 2 quotas + "
          f"a gate), {w['n']} calls each, alternated, {script['seconds']:.0f} s")
    for name, y in (("without counter", w), ("with counter", c)):
        print(f"  {name:15s} p50 {y['p50']:6.1f} us  p99 {y['p99']:6.1f} us  mean {y['mean']:6.1f} us")
    print(f"  with / without p50 {script['ratio']:.3f} ({c['p50'] - w['p50']:+.1f} us); refused {script['refused']}")
    base = paid["nobody pays"]
    print(f"2. paid calls: distinct analyses through the app's policy chain in this process (fake Gemini, no "
          f"latency), 3 configurations rotated call by call, {paid['seconds']:.0f} s (cache: {paid['caches']})")
    for name in ("nobody pays", "budgets off", "budgets on"):
        x = paid[name]
        print(f"  {name:12s} p50 {x['p50']:7.0f} us  p99 {x['p99']:7.0f} us  mean {x['mean']:7.0f} us  "
              f"added: p50 {x['p50'] - base['p50']:+6.0f} us, median paired {x['paired']:+6.0f} us  "
              f"ratio p50 {x['p50'] / base['p50']:.3f}")
    print("  (nobody pays = no meter, the path before budgets; budgets off still meters: spend is counted for "
          "/api/me/usage and the top callers)")
    print(f"  SpendMeter.admit + settle alone: p50 {one['pair_us']:.0f} us per pair from 1 thread "
          f"({one['rate']:.0f}/s), two Redis PINGs timed beside each p50 {one['pings_us']:.0f} us "
          f"(pair / 2 PINGs {one['pair_us'] / one['pings_us']:.2f}); {eight['rate']:.0f}/s from 8 threads")
    added, on_off = paid["budgets on"]["paired"], paid["budgets on"]["p50"] / paid["budgets off"]["p50"]
    configured = all(x["budget"] == {"off": None, "on": float(BUDGETS["BUDGET_DAILY_USD_PER_CALLER"])}
                     for x in (hits, inner))
    clean = (configured and hits["clean"] and inner["clean"] and hits["upstream"] == 0 and inner["upstream"] == 0
             and script["refused"] == 0 and set(paid["caches"]) == {"MISS"})
    met = hits["ratio"] <= 1.05 and clean
    print(f"budgets: hit p50 on/off {hits['ratio']:.3f} (in process {inner['ratio']:.3f}), script +counter "
          f"{script['ratio']:.3f}; paid call {added:+.0f} us (on/off {on_off:.3f}); meter {one['rate']:.0f}/s "
          f"(1 thread), {eight['rate']:.0f}/s (8)")
    print(ratio_line("hit p50 budgets on / off (gunicorn)", hits["ratio"], "<= 1.05", met))
    return {"ok": met, "ratio": hits["ratio"], "hit_ratio": hits["ratio"], "inproc_ratio": inner["ratio"],
            "hit_p99_ratio": hits["on"]["p99"] / hits["off"]["p99"], "hit_off_p50_us": hits["off"]["p50"],
            "script_ratio": script["ratio"], "script_added_us": c["p50"] - w["p50"], "paid_added_us": added,
            "paid_on_off_ratio": on_off, "meter_1_per_s": one["rate"], "meter_8_per_s": eight["rate"],
            "meter_pair_us": one["pair_us"], "meter_pings_us": one["pings_us"]}


if __name__ == "__main__":
    main()
