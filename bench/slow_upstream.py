"""Slow upstream (1 s): throughput of N concurrent clients with distinct requests, relative to N / 1 s."""
from __future__ import annotations

import requests

from bench.harness import (
    FakeProcess,
    auth_headers,
    cpu_seconds,
    layout_parser,
    learner_text,
    ratio_line,
    rss_mib,
    service,
    service_env,
    worker_pids,
)
from bench.load import closed_loop, http_request, percentile

LATENCY_S = 1.0


def run_level(server, clients: int, seconds: float, base: int) -> dict:
    """One closed-loop run: each client sends a new distinct text as soon as its previous answer arrives."""
    def make(client: int, n: int) -> bytes:
        return http_request("/api/analyze", {"text": learner_text(base + client * 1000 + n)}, auth_headers(client))

    pids = worker_pids(server)
    cpu0 = cpu_seconds(pids)
    load = closed_loop(server.port, make, clients=clients, seconds=seconds)
    cpu = cpu_seconds(pids) - cpu0
    ok = load.latencies()
    # Completions in the steady state only: after the first wave, before clients stop sending.
    throughput = load.rate(LATENCY_S, seconds)
    return {"clients": clients, "throughput": throughput, "ratio": throughput / (clients / LATENCY_S),
            "statuses": load.statuses, "errors": load.errors, "p50": percentile(ok, 0.5),
            "p99": percentile(ok, 0.99), "rss": [rss_mib(p) for p in worker_pids(server)],
            "cpu_ms_per_request": cpu / max(1, len(load.samples)) * 1000, "client_cpu": load.client_cpu_share}


def measure(workers: int, threads: int, levels: list[int], seconds: float, env_extra: dict | None = None) -> list[dict]:
    gemini = FakeProcess("tests.fakes.gemini", latency_ms=int(LATENCY_S * 1000))
    try:
        with service(service_env(gemini, **(env_extra or {})), workers, threads) as server:
            for i in range(4 * workers):  # each worker builds its SDK client before the clock starts
                requests.post(f"{server.url}/api/analyze", json={"text": learner_text(-1 - i)},
                              headers=auth_headers(i), timeout=30)
            return [run_level(server, n, seconds, base=(k + 1) * 10_000_000) for k, n in enumerate(levels)]
    finally:
        gemini.stop()


def print_levels(results: list[dict]) -> None:
    for r in results:
        rss = ", ".join(f"{m:.0f}" for m in r["rss"])
        print(f"  N={r['clients']:4d}  {r['throughput']:7.1f} req/s  / {r['clients'] / LATENCY_S:5.0f} = "
              f"{r['ratio']:5.2f}   p50 {r['p50']:5.2f} s  p99 {r['p99']:5.2f} s  errors {r['errors']:5d} "
              f"{r['statuses']}  service CPU {r['cpu_ms_per_request']:.1f} ms/answer  RSS per worker MiB [{rss}]  "
              f"client CPU {r['client_cpu']:.0%}")


def main(argv: list[str] | None = None) -> dict:
    parser = layout_parser(__doc__)
    parser.add_argument("--levels", type=int, nargs="+", default=[50, 200, 400])
    parser.add_argument("--seconds", type=float, default=7)
    parser.add_argument("--set", nargs="*", default=[], metavar="VAR=VALUE", help="extra service settings")
    args = parser.parse_args(argv)
    extra = dict(item.split("=", 1) for item in args.set)
    results = measure(args.workers, args.threads, args.levels, args.seconds, extra)
    print(f"gunicorn {' '.join([f'{args.workers}x{args.threads}', *args.set])}, fake Gemini latency {LATENCY_S:g} s, "
          f"closed-loop asyncio clients (one process), {args.seconds:g} s per level, distinct texts; throughput "
          f"counted from {LATENCY_S:g} s to the end")
    print_levels(results)
    upto_200 = [r for r in results if r["clients"] <= 200]
    worst = min(r["ratio"] for r in upto_200)
    met = worst >= 0.9 and all(r["errors"] == 0 for r in upto_200)
    print(ratio_line("slow-upstream throughput / (N / 1 s), worst N <= 200", worst, ">= 0.9 and no errors", met))
    return {"levels": results, "ratio": worst, "ok": met}


if __name__ == "__main__":
    main()
