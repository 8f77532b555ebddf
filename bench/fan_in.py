"""Fan-in: 200 concurrent identical requests across the workers cost one upstream call, and /health keeps answering.

Every thread waiting for the flight holds a bulkhead slot, as its leader does: beyond the bulkhead (per worker) a
request gets a fast 503 instead of a thread, so health checks and cached answers keep theirs.
"""
from __future__ import annotations

import threading
import time

import requests

from bench.harness import FakeProcess, auth_headers, layout_parser, learner_text, ratio_line, service, service_env
from bench.load import STAND_IN, closed_loop, http_request, percentile

LATENCY_MS = 1000  # long enough that every request arrives while the first upstream call is in flight


def measure(workers: int, threads: int, clients: int) -> dict:
    gemini = FakeProcess("tests.fakes.gemini", latency_ms=LATENCY_MS)
    try:
        with service(service_env(gemini), workers, threads) as server:
            for i in range(4 * workers):  # SDK clients built, so the burst measures de-duplication only
                requests.post(f"{server.url}/api/analyze", json={"text": learner_text(-1 - i)},
                              headers=auth_headers(i), timeout=30)
            before = gemini.calls()
            body = {"text": "Every one of these learners sent exactly the same sentence at the same moment."}
            health = _HealthProbe(server.url)
            health.start()
            try:
                load = closed_loop(server.port, lambda c, n: http_request("/api/analyze", body, auth_headers(c)),
                                   clients=clients, per_client=1)
            finally:
                health.stop()
            upstream = gemini.calls() - before
    finally:
        gemini.stop()
    every = load.latencies(None)
    return {"upstream": upstream, "statuses": load.statuses, "slowest": max(every), "p50": percentile(every, 0.5),
            "fastest": min(every), "wall": load.seconds, "health": health.seconds, "health_failed": health.failed}


class _HealthProbe(threading.Thread):
    """GET /health every 50 ms during the burst; how long each took."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.seconds, self.failed = url, [], 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.05):
            started = time.monotonic()
            try:
                ok = requests.get(f"{self.url}/health", timeout=10).status_code == 200
            except requests.RequestException:
                ok = False
            self.seconds.append(time.monotonic() - started)
            self.failed += not ok

    def stop(self) -> None:
        self._stop_event.set()
        self.join(15)


def main(argv: list[str] | None = None) -> dict:
    parser = layout_parser(__doc__)
    parser.add_argument("--clients", type=int, default=200)
    args = parser.parse_args(argv)
    r = measure(args.workers, args.threads, args.clients)
    print(f"gunicorn {args.workers}x{args.threads}, fake Gemini latency {LATENCY_MS} ms, {args.clients} concurrent "
          f"identical POST /api/analyze (asyncio clients, one connection each)")
    print(f"  answers {r['statuses']}  upstream calls {r['upstream']} (target 1)")
    print(f"  fastest {r['fastest']:.3f} s  p50 {r['p50']:.3f} s  slowest {r['slowest']:.3f} s  "
          f"(one upstream call takes {LATENCY_MS / 1000:g} s)")
    health = r["health"] or [float("nan")]
    print(f"  /health during the burst: {len(r['health'])} probes, slowest {max(health) * 1000:.0f} ms, "
          f"failed {r['health_failed']}")
    ratio = r["slowest"] / (LATENCY_MS / 1000)
    met = (r["upstream"] == 1 and set(r["statuses"]) <= {200, STAND_IN, 503} and r["statuses"].get(200, 0) > 0
           and r["health_failed"] == 0)
    print(ratio_line(f"slowest answer / upstream latency ({r['upstream']} upstream call(s) for {args.clients})",
                     ratio, "1 upstream call, only 200 (or the stand-in's 299) or a fast 503, /health answering",
                     met))
    return {"upstream": r["upstream"], "slowest": r["slowest"], "ratio": ratio, "ok": met}


if __name__ == "__main__":
    main()
