"""Cache-hit throughput of POST /api/analyze over the full stack, relative to GET /health on the same server."""
from __future__ import annotations

import json
import statistics

import requests

from bench.harness import (
    FakeProcess,
    auth_headers,
    cpu_seconds,
    layout_parser,
    learner_text,
    ratio_line,
    service,
    service_env,
    worker_pids,
)
from bench.load import WrkResult, wrk

TEXTS = 64  # distinct cached requests, cycled, so the hit path hashes and looks up real keys


def warm_cache(server, rounds: int = 3) -> list[str]:
    """Cache TEXTS analyses and let every worker promote them to its memory tier; returns the bodies."""
    bodies = [json.dumps({"text": learner_text(i), "level": "B1"}) for i in range(TEXTS)]
    for _ in range(rounds):
        for i, body in enumerate(bodies):
            requests.post(f"{server.url}/api/analyze", data=body, headers=auth_headers(i),
                          timeout=30).raise_for_status()
    return bodies


def alternate(server, bodies: list[str], *, rounds: int, seconds: float, connections: int) -> dict:
    """Short /health and cached-analyze wrk runs in turn, aggregated per side, with each round's ratio."""
    # The host's CPU steal drifts within seconds: alternating puts both sides of the ratio under the same drift.
    headers = {k: v for k, v in auth_headers().items() if k != "X-User-ID"}
    pids = worker_pids(server)
    runs: dict[str, list[WrkResult]] = {"health": [], "hit": []}
    cpu = {"health": 0.0, "hit": 0.0}
    wrk(f"{server.url}/health", seconds=1, connections=connections)  # warm connections and code paths
    for _ in range(rounds):
        for name, url, extra in (("health", "/health", {}),
                                 ("hit", "/api/analyze", {"method": "POST", "bodies": bodies, "headers": headers})):
            before = cpu_seconds(pids)
            runs[name].append(wrk(server.url + url, seconds=seconds, connections=connections, **extra))
            cpu[name] += cpu_seconds(pids) - before
    out = {}
    for name, results in runs.items():
        count = sum(r.requests for r in results)
        out[name] = {"rps": count / sum(r.seconds for r in results), "errors": sum(r.errors for r in results),
                     "p50": statistics.median(r.p50_ms for r in results), "p99": max(r.p99_ms for r in results),
                     "cpu_us": cpu[name] / max(1, count) * 1e6,
                     "wrk_cpu": max(r.wrk_cpu_share for r in results)}
    out["round_ratios"] = [h.rps / g.rps for h, g in zip(runs["hit"], runs["health"], strict=True)]
    # The median round: one run that the host starved (or spared) cannot swing the figure.
    out["ratio"] = statistics.median(out["round_ratios"])
    return out


def measure(workers: int, threads: int, rounds: int, seconds: float, connections: int) -> dict:
    gemini = FakeProcess("tests.fakes.gemini")
    try:
        with service(service_env(gemini), workers, threads) as server:
            bodies = warm_cache(server)
            calls_before = gemini.calls()
            r = alternate(server, bodies, rounds=rounds, seconds=seconds, connections=connections)
            r["upstream_during_hits"] = gemini.calls() - calls_before
    finally:
        gemini.stop()
    return r


def main(argv: list[str] | None = None) -> dict:
    parser = layout_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2, help="per wrk run (whole seconds)")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args(argv)
    r = measure(args.workers, args.threads, args.rounds, args.seconds, args.connections)
    print(f"gunicorn {args.workers}x{args.threads}, wrk 1 thread {args.connections} connections, "
          f"{args.rounds} alternating rounds of {args.seconds:g} s each")
    for name, label in (("health", "GET /health"), ("hit", "POST /api/analyze (hit)")):
        x = r[name]
        print(f"  {label:24s} {x['rps']:8.0f} req/s  p50 {x['p50']:6.2f} ms  p99 {x['p99']:6.2f} ms  "
              f"errors {x['errors']}  service CPU {x['cpu_us']:6.0f} us/req  wrk CPU <= {x['wrk_cpu']:.0%} of a core")
    print(f"  per-round ratios: {', '.join(f'{v:.2f}' for v in r['round_ratios'])} (the figure is their median)")
    print(f"  upstream calls during the hit runs: {r['upstream_during_hits']} (0 = every answer came from the cache)")
    clean = r["hit"]["errors"] == 0 and r["health"]["errors"] == 0 and r["upstream_during_hits"] == 0
    met = r["ratio"] >= 0.7 and clean
    print(ratio_line("cache_hit_rps / health_rps (median round)", r["ratio"], ">= 0.7", met))
    return {"ratio": r["ratio"], "hit_rps": r["hit"]["rps"], "health_rps": r["health"]["rps"], "ok": met,
            "cpu_us_hit": r["hit"]["cpu_us"], "cpu_us_health": r["health"]["cpu_us"]}


if __name__ == "__main__":
    main()
