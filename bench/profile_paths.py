"""Where a worker's CPU goes on the cache-hit and the miss path: py-spy samples of a live gunicorn worker under load."""
from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import requests

from bench.harness import ADMIN_KEY, FakeProcess, auth_headers, learner_text, service, service_env, worker_pids
from bench.load import closed_loop, http_request, wrk

HIT_TEXTS = 64
# Who owns a sample: the innermost frame of the stack that matches one of these (checked in this order per frame).
OWNERS = [
    ("model_json_schema", "gemini adapter: response JSON schema built per call (pydantic)"),
    ("Client.send (httpx2", "gemini adapter: HTTP exchange with the provider (httpx2, the SDK's path)"),
    ("GeminiHttp.post", "gemini adapter: HTTP exchange with the provider (urllib3)"),
    ("_read_answer", "gemini adapter: answer read into the SDK's response model"),
    ("Models.generate_content", "gemini adapter: google-genai request/response conversion"),
    ("_from_response (genai", "gemini adapter: google-genai response models"),
    ("RequestTemplates.", "gemini adapter: request from its template"),
    ("GeminiClient.generate_json", "gemini adapter: request config"),
    ("parse_model_output", "model output parsing and validation"),
    ("CircuitBreaker.", "circuit breaker (Redis Lua)"),
    ("TieredCache.store", "cache store (memory, disk, Redis tiers)"),
    ("TieredCache.lookup", "cache lookup (generation + tiers)"),
    ("SynthesisService.", "speech service (cache key, policy)"),
    ("SpendMeter.", "budgets: admission and settlement (Redis Lua)"),
    ("SingleFlight.", "single-flight lock (Redis)"),
    ("RetryPolicy.call", "retry policy (tenacity)"),
    ("cache_key", "cache key (canonical JSON + sha256)"),
    ("json_body", "request JSON parsing + validation"),
    ("_refuse_after_too_many_failures", "auth: failed-auth counter (Redis GET)"),
    ("identify_client", "auth: key check"),
    ("MovingWindowLimiter.", "AI rate limits (one Lua script on Redis)"),
    ("Limiter.", "default rate limit (flask-limiter)"),
    ("_log_access", "access log line + HTTP metrics"),
    ("record_decision", "policy decision metric/log"),
    ("envelope.py", "response envelope (jsonify)"),
    ("_security_headers", "security headers"),
    ("request_id.py", "request id"),
    ("prometheus_client", "other metrics"),
    ("Logger.access (gunicorn", "gunicorn access log atoms (discarded)"),
    ("Flask.", "Flask/werkzeug request handling"),
    ("gunicorn/", "gunicorn gthread (parse, write, keep-alive, poller)"),
]


def need_py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("profiling needs py-spy: `.venv/bin/pip install -r requirements-bench.txt`")
    return found


def record(pid: int, seconds: int, load: threading.Thread, wall: bool = False) -> list[tuple[list[str], int]]:
    """py-spy samples (stack outermost first, count) of the GIL holder, or with wall=True of request threads."""
    # GIL holder: where CPU goes (throughput); request threads with waits included: where latency goes.
    out = Path(tempfile.mkstemp(suffix=".txt")[1])
    load.start()
    mode = ["--idle"] if wall else ["--gil"]
    subprocess.run([need_py_spy(), "record", "-p", str(pid), "-d", str(seconds), "-r", "250", *mode,
                    "--nonblocking", "-f", "raw", "-o", str(out)], check=True, capture_output=True)
    load.join()
    stacks = []
    for line in out.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if not wall or "Flask.wsgi_app" in frames:
            stacks.append((frames.split(";"), int(count)))
    out.unlink()
    return stacks


def short(frame: str) -> str:
    """`function (path:line)` -> `function (module path)` without the line, so calls from several lines merge."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def owner(frames: list[str]) -> str:
    for frame in reversed(frames):
        for marker, label in OWNERS:
            if marker in frame:
                return label
    return "other (threads, idle poller)"


def report(title: str, stacks: list[tuple[list[str], int]], top: int) -> None:
    """Inclusive and self shares of the busiest functions."""
    total = sum(n for _, n in stacks) or 1
    inclusive, own = collections.Counter(), collections.Counter()
    for frames, n in stacks:
        names = [short(f) for f in frames]
        for name in set(names):
            inclusive[name] += n
        own[names[-1]] += n
    print(f"== {title}: {total} samples")
    owners = collections.Counter()
    for frames, n in stacks:
        owners[owner(frames)] += n
    print("   by component:")
    for name, n in owners.most_common():
        print(f"   {n / total:6.1%}  {name}")
    print("   inclusive (function and what it calls):")
    for name, n in inclusive.most_common(top):
        print(f"   {n / total:6.1%}  {name}")
    print("   self:")
    for name, n in own.most_common(top // 2):
        print(f"   {n / total:6.1%}  {name}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--only", nargs="*", help="scenarios: hit-cpu hit-wall miss-cpu miss-wall health-cpu "
                                                  f"open-cpu open-wall {' '.join(SPEECH)} (default: all)")
    args = parser.parse_args(argv)
    if args.only and all(name in SPEECH for name in args.only):
        profile_speech(args)
        return
    gemini = FakeProcess("tests.fakes.gemini")
    try:
        # One worker, so the profiled process serves every request.
        with service(service_env(gemini), 1, args.threads) as server:
            pid = worker_pids(server)[0]
            bodies = [json.dumps({"text": learner_text(i), "level": "B1"}) for i in range(HIT_TEXTS)]
            for i, body in enumerate(bodies * 2):
                requests.post(f"{server.url}/api/analyze", data=body, headers=auth_headers(i), timeout=30)
            headers = {k: v for k, v in auth_headers().items() if k != "X-User-ID"}
            seconds = args.seconds + 1

            def misses(base: int):
                return lambda client, n: http_request(
                    "/api/analyze", {"text": learner_text(base + client * 100_000 + n)}, auth_headers(client))

            def hits(client: int, n: int) -> bytes:
                return http_request("/api/analyze", json.loads(bodies[n % HIT_TEXTS]), auth_headers(client))

            scenarios = {
                "hit-cpu": ("cache-hit path CPU, POST /api/analyze, wrk 16 connections (GIL holder)", False,
                            lambda: wrk(f"{server.url}/api/analyze", seconds=seconds, connections=16,
                                        method="POST", bodies=bodies, headers=headers)),
                "hit-wall": ("cache-hit path latency, 1 client (wall clock inside the request)", True,
                             lambda: closed_loop(server.port, hits, clients=1, seconds=seconds)),
                "miss-cpu": ("miss path CPU, POST /api/analyze, 8 clients (GIL holder)", False,
                             lambda: closed_loop(server.port, misses(10_000_000), clients=8, seconds=seconds)),
                "miss-wall": ("miss path latency, 1 client (wall clock inside the request)", True,
                              lambda: closed_loop(server.port, misses(20_000_000), clients=1, seconds=seconds)),
                "health-cpu": ("GET /health CPU, wrk 16 connections (GIL holder)", False,
                               lambda: wrk(f"{server.url}/health", seconds=seconds, connections=16)),
                "open-cpu": ("breaker open: 503 path CPU, 16 clients with distinct texts (GIL holder)", False,
                             lambda: closed_loop(server.port, misses(30_000_000), clients=16, seconds=seconds)),
                "open-wall": ("breaker open: 503 path latency, 1 client (wall clock inside the request)", True,
                              lambda: closed_loop(server.port, misses(40_000_000), clients=1, seconds=seconds)),
            }
            for name, (title, wall, load) in scenarios.items():
                if name.startswith("open-") and (not args.only or name in args.only):
                    requests.post(f"{server.url}/api/circuit-breaker/open", json={"name": "gemini"},
                                  headers={"X-Admin-Key": ADMIN_KEY}, timeout=5).raise_for_status()
                if not args.only or name in args.only:
                    report(title, record(pid, args.seconds, threading.Thread(target=load), wall=wall), args.top)
    finally:
        gemini.stop()
    if not args.only or any(name in SPEECH for name in args.only):
        profile_speech(args)


def profile_speech(args: argparse.Namespace) -> None:
    """POST /api/speech cache hits (a ~49 KB mp3, as bench.speech sends them), one tier per service."""
    from bench.speech import FORMAT, NO_MEMORY_TIER, TEXTS, clip_text, warm_cache

    azure = FakeProcess("tests.fakes.azure_speech")
    try:
        for name, (title, overrides) in SPEECH.items():
            if args.only and name not in args.only:
                continue
            env = service_env(None, azure=azure, **overrides, **({"CACHE_MEMORY_MAX_BYTES": str(NO_MEMORY_TIER)}
                                                                 if overrides["CACHE_MODE"] == "redis_only" else {}))
            with service(env, 1, args.threads) as server:
                bodies, _ = warm_cache(server)
                headers = {k: v for k, v in auth_headers().items() if k != "X-User-ID"}
                load = threading.Thread(target=wrk, args=(f"{server.url}/api/speech",), kwargs={
                    "seconds": args.seconds + 1, "connections": 16, "method": "POST", "bodies": bodies,
                    "headers": headers})
                report(f"{title}, {TEXTS} {FORMAT} clips of {len(clip_text(0))} characters, wrk 16 connections "
                       "(GIL holder)", record(worker_pids(server)[0], args.seconds, load), args.top)
    finally:
        azure.stop()


# Speech cache hits per tier: what each costs a worker (bench.speech measures their throughput).
SPEECH = {"speech-redis-cpu": ("speech cache hit, Redis tier (redis_only, no memory tier)",
                               {"CACHE_MODE": "redis_only"}),
          "speech-memory-cpu": ("speech cache hit, memory tier", {"CACHE_MODE": "redis"})}


if __name__ == "__main__":
    main()
