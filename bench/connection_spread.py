"""How keep-alive connections spread over gunicorn's workers, and what an even spread is worth in throughput.

One gunicorn per variant, all running at once, their rounds interleaved (the order rotating) so that the shared
host's drift lands on every variant alike:
  gthread     gunicorn's own accept: every idle worker wakes for a new connection and the first to run takes it
  reuse_port  gunicorn's reuse_port: a listening socket per worker, the kernel hashes new connections over them
  spread      the service's worker: each accepts only while it holds no more than the others (serving/spread.py)
Per round and variant: wrk -c16 on cached analyses, then wrk -c16 with distinct bodies (each an uncached call to
the fake Gemini), then 8 Python keep-alive clients connecting together, sending cached analyses, then distinct
ones; while each runs, the established connections of every worker are counted (/proc/net/tcp matched to each
worker's socket descriptors: what `ss -tnp` shows). Figures are ratios to gthread measured in the same rounds,
never absolute times. Then, per variant, --reloads SIGHUPs under keep-alive clients (cached and uncached analyses,
the fake answering in 300 ms, no drain window): requests failed, a count.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import statistics
import threading
import time
from contextlib import ExitStack

import requests

from backend.serving.worker import BoundedThreadWorker
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
from bench.hit_throughput import warm_cache
from bench.load import WrkResult, percentile, wrk
from tests.integration.worker_connections import held_by_worker


class GthreadAccept(BoundedThreadWorker):
    """The service's worker accepting as gunicorn does: whenever it wakes first (the baseline)."""

    def within_share(self) -> bool:
        return True


# Each variant's gunicorn settings on top of config/gunicorn.conf.py (GUNICORN_CMD_ARGS overrides the file).
VARIANTS: dict[str, str] = {
    "gthread": "--worker-class bench.connection_spread.GthreadAccept",
    "reuse_port": "--worker-class bench.connection_spread.GthreadAccept --reuse-port",
    "spread": "",
}
BASELINE = "gthread"
MISS_POOL_PER_S = 600  # distinct texts per second of a miss run: above any miss rate this host reaches
QUIET_S = 1.0  # before each run: the last run's connections closed and their requests done, so none is counted


def split(server) -> list[int]:
    """Established connections on the service's port held by each worker, most first."""
    return sorted(held_by_worker(server.port, worker_pids(server)).values(), reverse=True)


def while_running(server, run, seconds: float):
    """run() in a thread on a quiet server, the split sampled at a third and two thirds of its time; (its result,
    both splits, the workers' CPU seconds meanwhile)."""
    time.sleep(QUIET_S)
    out: dict = {}
    pids = worker_pids(server)
    cpu = cpu_seconds(pids)
    thread = threading.Thread(target=lambda: out.update(result=run()))
    thread.start()
    splits = []
    for _ in range(2):
        time.sleep(seconds / 3)
        splits.append(split(server))
    thread.join()
    return out["result"], splits, cpu_seconds(pids) - cpu


def python_clients(server, body, *, clients: int, seconds: float) -> WrkResult:
    """`clients` threads with one keep-alive connection each, connecting together (as a pool after a reload), each
    sending body(client, n) for this long; every answer must be 200."""
    barrier, latencies, lock = threading.Barrier(clients), [], threading.Lock()
    headers = auth_headers()

    def client(c: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        barrier.wait()
        conn.connect()
        deadline, mine = time.monotonic() + seconds, []
        while (started := time.monotonic()) < deadline:
            conn.request("POST", "/api/analyze", body=body(c, len(mine)), headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"status {response.status}")
            mine.append(time.monotonic() - started)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return WrkResult(len(latencies), seconds, 0, percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000,
                     0.0)


def one_round(server, bodies: list[str], base: int, args) -> dict:
    """wrk on hits, wrk on misses, Python clients on hits, then on misses; with the splits seen during each."""
    headers = {k: v for k, v in auth_headers().items() if k != "X-User-ID"}
    seconds, url = args.seconds, f"{server.url}/api/analyze"
    misses = [miss_body(base + n) for n in range(int(MISS_POOL_PER_S * seconds))]
    runs = {
        "hit": lambda: wrk(url, seconds=seconds, connections=args.connections, method="POST", bodies=bodies,
                           headers=headers),
        "miss": lambda: wrk(url, seconds=seconds, connections=args.connections, method="POST", bodies=misses,
                            headers=headers),
        "py_hit": lambda: python_clients(server, lambda c, n: bodies[(c + n) % len(bodies)], clients=args.clients,
                                         seconds=seconds),
        "py_miss": lambda: python_clients(server, lambda c, n: miss_body(base + 5_000_000 + c * 100_000 + n),
                                          clients=args.clients, seconds=seconds),
    }
    out: dict = {"splits": {}, "cpu": {}}
    for kind, run in runs.items():
        out[kind], out["splits"][kind], out["cpu"][kind] = while_running(server, run, seconds)
    return out


def miss_body(i: int) -> str:
    return json.dumps({"text": learner_text(i), "level": "B1"})


def reload_failures(server, workers: int, reloads: int, clients: int = 6) -> tuple[int, int]:
    """Keep-alive clients sending without pause through `reloads` SIGHUPs: (requests sent, requests failed)."""
    stop, lock, counts = threading.Event(), threading.Lock(), {"sent": 0, "failed": 0}

    def client(c: int) -> None:
        with requests.Session() as session:
            n = 0
            while not stop.is_set():
                body = miss_body(80_000_000 + c * 1_000_000 + n) if n % 2 else miss_body(0)  # uncached, cached
                try:
                    ok = session.post(f"{server.url}/api/analyze", data=body, headers=auth_headers(c),
                                      timeout=60).status_code == 200
                except requests.RequestException:
                    ok = False
                with lock:
                    counts["sent"] += 1
                    counts["failed"] += not ok
                n += 1

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    for thread in threads:
        thread.start()
    for _ in range(reloads):
        time.sleep(1)
        ready = server.ready_workers() + workers
        os.kill(server.process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 60
        while (server.ready_workers() < ready or len(worker_pids(server)) != workers) and time.monotonic() < deadline:
            time.sleep(0.05)  # until the new workers serve and the old ones are gone
    time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join(70)
    return counts["sent"], counts["failed"]


def measure(args) -> dict:
    """Every variant's rounds (a list each), then its reload counts under "reloads <variant>"."""
    gemini = FakeProcess("tests.fakes.gemini")
    try:
        with ExitStack() as stack:
            servers = {name: stack.enter_context(service(service_env(gemini, GUNICORN_CMD_ARGS=VARIANTS[name]),
                                                         args.workers, args.threads)) for name in args.variants}
            bodies = {name: warm_cache(server, rounds=2 + args.workers) for name, server in servers.items()}
            out: dict = {name: [] for name in args.variants}
            for r in range(args.rounds):
                shift = r % len(args.variants)
                for i, name in enumerate(args.variants[shift:] + args.variants[:shift]):
                    base = 90_000_000 + (r * len(args.variants) + i) * 10_000_000  # fresh texts: nothing cached
                    out[name].append(one_round(servers[name], bodies[name], base, args))
            gemini.configure(latency_ms=300)  # requests in flight at each reload
            for name, server in servers.items():
                if args.reloads:
                    out[f"reloads {name}"] = reload_failures(server, args.workers, args.reloads)
    finally:
        gemini.stop()
    return out


def split_figures(rounds: list[dict], kind: str, workers: int) -> tuple[str, float]:
    """The median split as text ("10/6") and the mean of (most held by one worker / an even share)."""
    samples = [s + [0] * (workers - len(s)) for r in rounds for s in r["splits"][kind]]
    median = [int(statistics.median(s[i] for s in samples)) for i in range(workers)]
    excess = statistics.mean(s[0] / (sum(s) / workers) for s in samples if sum(s))
    return "/".join(map(str, median)), excess


KINDS = {"hit": "wrk, cached", "miss": "wrk, uncached", "py_hit": "Python clients, cached",
         "py_miss": "Python clients, uncached"}


def main(argv: list[str] | None = None) -> dict:
    parser = layout_parser(__doc__)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5, help="per run (whole seconds for wrk)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--clients", type=int, default=8, help="Python keep-alive clients")
    parser.add_argument("--reloads", type=int, default=3, help="SIGHUPs per variant under load (0: none)")
    args = parser.parse_args(argv)
    args.variants = [BASELINE] + [v for v in args.variants if v != BASELINE]
    out = measure(args)
    print(f"gunicorn {args.workers}x{args.threads} per variant, {args.rounds} interleaved rounds of {args.seconds:g} s "
          f"runs: wrk -c{args.connections} and {args.clients} Python keep-alive clients, cached and uncached")
    print(f"  {'run':25s} {'variant':11s} {'split':>9s} {'max/even':>8s} {'req/s':>6s} {'p50 ms':>7s} "
          f"{'p99 ms':>7s} {'CPU us/req':>10s} {'err':>3s}   {'rps/base':>8s} {'p99/base':>8s} {'CPU/base':>8s}  "
          "rps/base per round")
    rows: dict = {}
    for kind, label in KINDS.items():
        for name in args.variants:
            results: list[WrkResult] = [r[kind] for r in out[name]]
            pairs = list(zip(out[name], out[BASELINE], strict=True))
            ratios = [a[kind].rps / b[kind].rps for a, b in pairs]
            p99_ratio = statistics.median(a[kind].p99_ms / b[kind].p99_ms for a, b in pairs)
            cpu_ratio = statistics.median((a["cpu"][kind] / a[kind].requests) / (b["cpu"][kind] / b[kind].requests)
                                          for a, b in pairs)
            text, excess = split_figures(out[name], kind, args.workers)
            count = sum(x.requests for x in results)
            rps = count / sum(x.seconds for x in results)
            cpu_us = sum(r["cpu"][kind] for r in out[name]) / max(1, count) * 1e6
            rows[(kind, name)] = {"rps": rps, "ratio": statistics.median(ratios), "p99_ratio": p99_ratio,
                                  "excess": excess, "cpu_us": cpu_us, "cpu_ratio": cpu_ratio}
            print(f"  {label:25s} {name:11s} {text:>9s} {excess:8.2f} {rps:6.0f} "
                  f"{statistics.median(x.p50_ms for x in results):7.1f} "
                  f"{statistics.median(x.p99_ms for x in results):7.1f} {cpu_us:10.0f} "
                  f"{sum(x.errors for x in results):3d}   {statistics.median(ratios):8.2f} {p99_ratio:8.2f} "
                  f"{cpu_ratio:8.2f}  "
                  f"{', '.join(f'{v:.2f}' for v in ratios)}")
    print("  (split: median connections per worker, most first, two samples per run; max/even: the busiest worker's "
          "connections over an even share, mean of the samples, 1.00 = even; rps/base, p99/base, CPU/base (CPU per "
          "request): median of the per-round ratios to gthread; p50, p99: median of the rounds; CPU: the service's "
          "workers, user + system)")
    for name in args.variants if args.reloads else []:
        sent, failed = out[f"reloads {name}"]
        print(f"  {args.reloads} reloads (SIGHUP) under 6 keep-alive clients, {name:11s}: {failed} of {sent} requests "
              "failed")
    if "spread" not in args.variants:
        return {"rows": rows, "ratio": 1.0, "ok": True}
    # The check: the service's worker holds an even share of wrk's connections (the busiest at most a quarter over
    # it) and loses no request across a reload; throughput is the figure, not the target (the host is shared).
    figure = rows[("miss", "spread")]["ratio"]
    excess = max(rows[(kind, "spread")]["excess"] for kind in ("hit", "miss"))
    failed = out["reloads spread"][1] if args.reloads else 0
    met = excess <= 1.25 and failed == 0
    print(ratio_line("uncached throughput under wrk, spread / gthread (median round)", figure,
                     "busiest worker <= 1.25x an even share, no request lost across reloads", met))
    return {"rows": rows, "ratio": figure, "excess": excess, "reload_failures": failed, "ok": met}


if __name__ == "__main__":
    main()
