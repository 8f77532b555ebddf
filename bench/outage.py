"""Provider outage: the fake hangs; once the breaker is open, how fast callers get their answer: a 503, or the
in-process stand-in's degraded analysis (a 200 with X-Provider: local, counted as status 299 by bench.load)."""
from __future__ import annotations

import time

import requests

from bench.harness import (
    ADMIN_KEY,
    FakeProcess,
    auth_headers,
    layout_parser,
    learner_text,
    ratio_line,
    service,
    service_env,
)
from bench.load import STAND_IN, closed_loop, http_request, open_loop, percentile

TIMEOUT_S = 1  # GEMINI_TIMEOUT_SECONDS: each hanging attempt costs this much before the breaker opens


def breaker_state(url: str) -> str:
    answer = requests.get(f"{url}/api/circuit-breaker/state", headers={"X-Admin-Key": ADMIN_KEY}, timeout=5)
    return answer.json()["data"]["breakers"]["gemini"]["state"]


def measure(workers: int, threads: int, rate: float, clients: int, seconds: float) -> dict:
    gemini = FakeProcess("tests.fakes.gemini")
    env = service_env(gemini, GEMINI_TIMEOUT_SECONDS=TIMEOUT_S)
    try:
        with service(env, workers, threads) as server:
            for i in range(2 * workers):  # SDK clients built while the provider still answers
                requests.post(f"{server.url}/api/analyze", json={"text": learner_text(-1 - i)},
                              headers=auth_headers(i), timeout=30)
            gemini.configure(error="hang")

            def distinct(base: int):
                return lambda c, n: http_request("/api/analyze", {"text": learner_text(base + c * 1000 + n)},
                                                 auth_headers(c))

            started = time.monotonic()
            tripping = closed_loop(server.port, distinct(1_000_000), clients=8, per_client=1)
            deadline = time.monotonic() + 30
            while breaker_state(server.url) != "open" and time.monotonic() < deadline:
                tripping.samples += closed_loop(server.port, distinct(2_000_000), clients=2, per_client=1).samples
            to_open = time.monotonic() - started
            state = breaker_state(server.url)
            calls_before = gemini.calls()
            load = open_loop(server.port, distinct(3_000_000), rate=rate, seconds=seconds)
            saturated = closed_loop(server.port, distinct(4_000_000), clients=clients, seconds=seconds)
            upstream_while_open = gemini.calls() - calls_before
    finally:
        gemini.stop()
    fast = load.latencies(None)
    return {"state": state, "to_open": to_open, "tripping": tripping, "load": load, "upstream": upstream_while_open,
            "p50": percentile(fast, 0.5), "p99": percentile(fast, 0.99), "saturated": saturated}


def main(argv: list[str] | None = None) -> dict:
    parser = layout_parser(__doc__)
    parser.add_argument("--rate", type=float, default=100, help="requests per second while the breaker is open")
    parser.add_argument("--clients", type=int, default=16, help="closed-loop clients for the capacity figure")
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args(argv)
    r = measure(args.workers, args.threads, args.rate, args.clients, args.seconds)
    before = r["tripping"].latencies(None)
    load = r["load"]
    print(f"gunicorn {args.workers}x{args.threads}, fake Gemini hanging, GEMINI_TIMEOUT_SECONDS={TIMEOUT_S}, "
          f"default retries and breaker threshold")
    print(f"  before the breaker opened: {len(before)} requests {r['tripping'].statuses}, "
          f"p50 {percentile(before, 0.5):.2f} s, max {max(before):.2f} s; open after {r['to_open']:.1f} s "
          f"(state now: {r['state']})")
    sat = r["saturated"]
    sat_times = sat.latencies(None)
    print(f"  breaker open, {args.rate:g} req/s for {args.seconds:g} s (open loop): {load.statuses}; "
          f"upstream calls while open {r['upstream']}")
    print(f"  response time p50 {r['p50'] * 1000:.2f} ms  p99 {r['p99'] * 1000:.2f} ms  (target p99 < 20 ms)")
    print(f"  capacity while open, {args.clients} closed-loop clients: {len(sat.samples) / sat.seconds:.0f} "
          f"answers/s {sat.statuses}, p50 {percentile(sat_times, 0.5) * 1000:.1f} ms  "
          f"p99 {percentile(sat_times, 0.99) * 1000:.1f} ms")
    ratio = r["p99"] / percentile(before, 0.5)
    fast_answers = {503, STAND_IN}  # refused at once, or answered in process without the provider
    met = (r["state"] == "open" and r["p99"] < 0.020 and set(load.statuses) <= fast_answers
           and set(sat.statuses) <= fast_answers and r["upstream"] == 0)
    print(ratio_line("open-breaker p99 / response time before it opened (p50)", ratio,
                     "p99 < 20 ms, every answer a 503 or the stand-in's (299), no upstream call", met))
    return {"p50_ms": r["p50"] * 1000, "p99_ms": r["p99"] * 1000, "ratio": ratio, "ok": met}


if __name__ == "__main__":
    main()
