"""workers x threads compared: cache-hit throughput and the 1 s slow-upstream test (N=200) per gunicorn layout."""
from __future__ import annotations

import argparse

from bench.harness import FakeProcess, default_layout, ratio_line, rss_mib, service, service_env, worker_pids
from bench.hit_throughput import alternate, warm_cache
from bench.slow_upstream import LATENCY_S, run_level

LAYOUTS = ["2x8", "2x32", "4x8", "2x128", "4x64"]


def measure(workers: int, threads: int, rounds: int, seconds: float, clients: int) -> dict:
    """One server per layout; the bulkhead is set to the thread count so that only the layout limits concurrency."""
    gemini = FakeProcess("tests.fakes.gemini")
    try:
        env = service_env(gemini, GEMINI_MAX_CONCURRENCY=threads)
        with service(env, workers, threads) as server:
            hits = alternate(server, warm_cache(server, rounds=2 + workers // 2), rounds=rounds, seconds=seconds,
                             connections=16)
            gemini.configure(latency_ms=int(LATENCY_S * 1000))
            slow = run_level(server, clients, rounds * seconds + LATENCY_S, base=70_000_000)
            rss = [rss_mib(p) for p in worker_pids(server)]
    finally:
        gemini.stop()
    return {"hits": hits, "slow": slow, "rss": rss}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layouts", nargs="+", default=LAYOUTS, help="workers x threads, e.g. 2x32")
    parser.add_argument("--rounds", type=int, default=3, help="alternating /health and hit runs per layout")
    parser.add_argument("--seconds", type=float, default=2, help="per wrk run (whole seconds)")
    parser.add_argument("--clients", type=int, default=200)
    args = parser.parse_args(argv)
    print(f"per layout: wrk 16 connections, {args.rounds} alternating {args.seconds:g} s runs on /health and on cached "
          f"POST /api/analyze; "
          f"{args.clients} closed-loop clients with distinct texts against a {LATENCY_S:g} s upstream; "
          f"GEMINI_MAX_CONCURRENCY = threads")
    print(f"  {'layout':7s} {'health/s':>9s} {'hit/s':>7s} {'hit/health':>10s} {'hit p99':>8s}   "
          f"{'slow/s':>7s} {'ratio':>6s} {'p99 s':>6s} {'errors':>6s} {'CPU ms/req':>10s}  RSS MiB per worker")
    rows = {}
    for layout in args.layouts:
        workers, threads = (int(x) for x in layout.split("x"))
        r = measure(workers, threads, args.rounds, args.seconds, args.clients)
        health, hit, slow = r["hits"]["health"], r["hits"]["hit"], r["slow"]
        rows[layout] = {"hit_rps": hit["rps"], "hit_ratio": r["hits"]["ratio"], "slow_ratio": slow["ratio"],
                        "errors": slow["errors"] + hit["errors"], "rss": r["rss"]}
        print(f"  {layout:7s} {health['rps']:9.0f} {hit['rps']:7.0f} {r['hits']['ratio']:10.2f} {hit['p99']:6.1f}ms   "
              f"{slow['throughput']:7.1f} {slow['ratio']:6.2f} {slow['p99']:6.2f} {slow['errors']:6d} "
              f"{slow['cpu_ms_per_request']:10.1f}  {', '.join(f'{m:.0f}' for m in r['rss'])}")
    # The layout to recommend: the best slow-upstream ratio without errors, then the best hit/health ratio (both
    # measured against their own server: throughput across servers started minutes apart is too noisy here).
    best = max(rows, key=lambda k: (rows[k]["errors"] == 0, round(rows[k]["slow_ratio"], 1), rows[k]["hit_ratio"]))
    current = "x".join(str(v) for v in default_layout())
    base_name = current if current in rows else args.layouts[0]
    print(f"  best layout here: {best}; configured default: {current}")
    ratio = rows[best]["slow_ratio"] / rows[base_name]["slow_ratio"]
    print(ratio_line(f"slow-upstream ratio of {best} / {base_name}", ratio, "informational", True))
    return {"rows": rows, "best": best, "base": base_name, "ratio": ratio, "ok": True}


if __name__ == "__main__":
    main()
