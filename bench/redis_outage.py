"""Redis outage: cache-hit throughput and p99 (and misses) with Redis stopped, relative to Redis up, same server."""
from __future__ import annotations

import json
import time

import requests

from bench.harness import (
    FakeProcess,
    PrivateRedis,
    auth_headers,
    layout_parser,
    learner_text,
    ratio_line,
    service,
    service_env,
)
from bench.load import closed_loop, http_request, percentile, wrk

TEXTS = 64
MISSES = 100


def phase(server, bodies: list[str], seconds: float, connections: int, base: int) -> dict:
    """Cached requests under wrk, then sequential distinct (uncached) ones."""
    headers = {k: v for k, v in auth_headers().items() if k != "X-User-ID"}
    hits = wrk(f"{server.url}/api/analyze", seconds=seconds, connections=connections, method="POST",
               bodies=bodies, headers=headers)
    misses = closed_loop(server.port, lambda c, n: http_request(
        "/api/analyze", {"text": learner_text(base + n)}, auth_headers(n)), clients=1, per_client=MISSES)
    every = misses.latencies(None)
    return {"hits": hits, "misses": misses, "miss_p50": percentile(every, 0.5), "miss_p99": percentile(every, 0.99)}


def measure(workers: int, threads: int, seconds: float, connections: int) -> dict:
    gemini = FakeProcess("tests.fakes.gemini")
    redis = PrivateRedis()  # its own server: this benchmark stops it
    try:
        with service(service_env(gemini, redis=redis.url), workers, threads) as server:
            bodies = [json.dumps({"text": learner_text(i), "level": "B1"}) for i in range(TEXTS)]
            for _ in range(3):  # cached, and promoted to every worker's memory tier
                for i, body in enumerate(bodies):
                    requests.post(f"{server.url}/api/analyze", data=body, headers=auth_headers(i),
                                  timeout=30).raise_for_status()
            up = phase(server, bodies, seconds, connections, base=50_000_000)
            redis.stop()
            time.sleep(0.5)
            down = phase(server, bodies, seconds, connections, base=60_000_000)
            health = requests.get(f"{server.url}/health/ready", timeout=5).status_code
    finally:
        redis.stop()
        gemini.stop()
    return {"up": up, "down": down, "ready_while_down": health}


def main(argv: list[str] | None = None) -> dict:
    parser = layout_parser(__doc__)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args(argv)
    r = measure(args.workers, args.threads, args.seconds, args.connections)
    print(f"gunicorn {args.workers}x{args.threads}, CACHE_MODE auto (memory -> disk -> Redis), a private redis-server "
          f"stopped between the phases; hits by wrk ({args.connections} connections, {args.seconds:g} s), "
          f"{MISSES} sequential misses")
    for name in ("up", "down"):
        p = r[name]
        hits, misses = p["hits"], p["misses"]
        print(f"  Redis {name:4s}  hits {hits.rps:7.0f} req/s  p50 {hits.p50_ms:6.2f} ms  p99 {hits.p99_ms:6.2f} ms  "
              f"errors {hits.errors}   misses {misses.statuses} p50 {p['miss_p50'] * 1000:6.2f} ms  "
              f"p99 {p['miss_p99'] * 1000:6.2f} ms")
    print(f"  /health/ready while Redis is down: {r['ready_while_down']}")
    up, down = r["up"]["hits"], r["down"]["hits"]
    rps_ratio, p99_ratio = down.rps / up.rps, down.p99_ms / up.p99_ms
    print(f"  p99 down / up: {p99_ratio:.2f}   miss p99 down / up: {r['down']['miss_p99'] / r['up']['miss_p99']:.2f}")
    clean = down.errors == 0 and r["down"]["misses"].statuses == {200: MISSES}
    print(ratio_line("hit req/s with Redis down / up", rps_ratio, "no errors while Redis is down", clean))
    return {"rps_ratio": rps_ratio, "p99_ratio": p99_ratio, "ratio": rps_ratio, "ok": clean}


if __name__ == "__main__":
    main()
