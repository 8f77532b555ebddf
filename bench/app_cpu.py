"""In-process CPU per request of a cache hit and of an uncached call (POST /api/analyze) and of GET /health, through
the whole Flask app.

The full-stack benchmark (bench.hit_throughput) measures throughput through gunicorn and wrk, which share this
machine's cores with whatever else runs; this one times only the app's own work (time.process_time around a loop
of requests handed to the WSGI app as gunicorn hands them), so a lever worth a few microseconds shows above the
noise. An uncached call is a text never sent before, answered by the fake Gemini (a process of its own, so its CPU
is not counted): what is timed is the service's side of a paid miss, the HTTP client to the provider included.
Production settings: auth, rate limits on Redis, JSON access lines (written to /dev/null here), Prometheus in
multiprocess mode, the collector frozen once warm (config/gunicorn.conf.py).

`--compare TREE` measures this tree and another checkout of it (a change and its base) in lockstep: one app per
process, rounds alternating between them, so both sides see the same drift of the host's speed, and the figure is
the median of the per-round differences.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from werkzeug.test import EnvironBuilder

from bench.harness import FakeProcess, auth_headers, learner_text, service_env

TEXTS = 64
# As bench.hit_throughput sends them: the key without an X-User-ID.
HEADERS = {k: v for k, v in auth_headers().items() if k != "X-User-ID"}
MISSES = 16  # fresh texts per round
ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def stderr_to_devnull() -> Iterator[None]:
    """The access lines go where gunicorn's would (a write per line), but not onto the terminal."""
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def environ_of(path: str, **kwargs) -> tuple[dict, bytes]:
    """A WSGI environ (without its body stream) and the body, built once: the loop times the app, not a client."""
    environ = EnvironBuilder(path, **kwargs).get_environ()
    body = environ.pop("wsgi.input").read()
    return environ, body


def per_request_us(app, requests: list[tuple[dict, bytes]], repeat: int) -> float:
    """CPU microseconds per request over `repeat` passes of the given requests, called as gunicorn calls the app."""
    statuses: list[str] = []

    def start_response(status: str, headers: list, exc_info=None) -> None:
        statuses.append(status)

    started = time.process_time()
    for _ in range(repeat):
        for environ, body in requests:
            result = app({**environ, "wsgi.input": io.BytesIO(body)}, start_response)
            for _chunk in result:
                pass
            getattr(result, "close", lambda: None)()
    spent = time.process_time() - started
    failed = [s for s in statuses if not s.startswith("200")]
    if failed:
        raise RuntimeError(f"{len(failed)} requests failed, e.g. {failed[0]}")
    return spent / (repeat * len(requests)) * 1e6


@dataclass(frozen=True)
class HitPath:
    """What is timed: the cached request (TEXTS of them) and a miss (a text never sent before), with the fake
    answering the misses and the settings the app runs under."""

    fake: str
    env: dict
    request: Callable[[str], tuple[str, dict]]  # a text -> (path, JSON body)
    text: Callable[[int], str]
    upstream: Callable[[FakeProcess], int]


def _analysis(text: str) -> tuple[str, dict]:
    return "/api/analyze", {"text": text, "level": "B1"}


def _speech(text: str) -> tuple[str, dict]:
    return "/api/speech", {"text": text, "format": "mp3"}


def _syntheses(azure: FakeProcess) -> int:
    from bench.speech import synthesis_calls

    return synthesis_calls(azure)


def _clip_text(i: int) -> str:
    from bench.speech import clip_text

    return clip_text(i)


# analyze: a cached analysis (JSON); speech-*: a cached ~49 KB mp3 from the memory tier, or from Redis with no
# memory tier (as bench.speech measures them).
PATHS = {
    "analyze": HitPath("tests.fakes.gemini", {}, _analysis, learner_text, FakeProcess.calls),
    "speech-memory": HitPath("tests.fakes.azure_speech", {"CACHE_MODE": "redis"}, _speech, _clip_text, _syntheses),
    "speech-redis": HitPath("tests.fakes.azure_speech", {"CACHE_MODE": "redis_only", "CACHE_MEMORY_MAX_BYTES": "1024"},
                            _speech, _clip_text, _syntheses),
}


def request_of(path: HitPath, text: str) -> tuple[dict, bytes]:
    url, body = path.request(text)
    return environ_of(url, method="POST", headers=HEADERS, data=json.dumps(body))


@contextlib.contextmanager
def warm_app(path: HitPath) -> Iterator[tuple[object, list, list, FakeProcess]]:
    """The app under production settings with TEXTS answers cached, and the hit and health requests."""
    fake = FakeProcess(path.fake)
    try:
        env = (service_env(fake, **path.env) if path.fake.endswith("gemini")
               else service_env(None, azure=fake, **path.env))
        # Before prometheus_client is imported: its value class (multiprocess files) is chosen at import.
        os.environ.update(env, PROMETHEUS_MULTIPROC_DIR=tempfile.mkdtemp(prefix="bench-hit-cpu-"))
        from backend import create_app

        app = create_app()
        hits = [request_of(path, path.text(i)) for i in range(TEXTS)]
        health = [environ_of("/health")] * TEXTS
        with stderr_to_devnull():
            per_request_us(app, hits, 2)  # fill the cache, then warm every code path
            per_request_us(app, fresh_texts(path), 1)
            gc.collect()
            gc.freeze()  # as config/gunicorn.conf.py does once a worker is ready
            yield app, hits, health, fake
    finally:
        fake.stop()


def fresh_texts(path: HitPath) -> list[tuple[dict, bytes]]:
    """MISSES texts nobody sent before (built before the clock starts)."""
    tag = uuid.uuid4().hex[:12]
    return [request_of(path, f"{path.text(i)} ({tag})") for i in range(MISSES)]


def one_round(app, path: HitPath, hits: list, health: list, repeat: int) -> dict[str, float]:
    misses = fresh_texts(path)
    return {"hit": per_request_us(app, hits, repeat), "health": per_request_us(app, health, repeat),
            "miss": per_request_us(app, misses, 1)}


def serve_rounds(path: HitPath, repeat: int) -> None:
    """--lockstep: say "ready", then run one round per line read from stdin and answer it as JSON."""
    with warm_app(path) as (app, hits, health, fake):
        calls = path.upstream(fake)
        print("ready", flush=True)
        for _ in sys.stdin:
            print(json.dumps(one_round(app, path, hits, health, repeat)), flush=True)
        print(json.dumps({"upstream": path.upstream(fake) - calls}), flush=True)


def compare(other: Path, rounds: int, repeat: int, path: str = "analyze") -> dict:
    """This tree and `other` in lockstep; returns per side the median CPU per request, and the paired medians."""
    sides = {"this": ROOT, "other": other.resolve()}
    procs = {name: subprocess.Popen([sys.executable, "-m", "bench.app_cpu", "--lockstep", "--repeat", str(repeat),
                                     *(["--path", path] if path != "analyze" else [])],
                                    cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, text=True,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
             for name, tree in sides.items()}
    out: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    try:
        for name, proc in procs.items():
            if proc.stdout.readline().strip() != "ready":  # type: ignore[union-attr]
                raise RuntimeError(f"the {name} tree's app did not start ({sides[name]})")
        for i in range(rounds):
            order = list(procs) if i % 2 == 0 else list(procs)[::-1]  # neither side always goes first
            for name in order:
                procs[name].stdin.write("go\n")  # type: ignore[union-attr]
                procs[name].stdin.flush()  # type: ignore[union-attr]
                out[name].append(json.loads(procs[name].stdout.readline()))  # type: ignore[union-attr]
        upstream = {}
        for name, proc in procs.items():
            proc.stdin.close()  # type: ignore[union-attr]
            upstream[name] = json.loads(proc.stdout.readline())["upstream"]  # type: ignore[union-attr]
    finally:
        for proc in procs.values():
            proc.wait(30)
    result: dict = {"upstream": upstream}
    for side in ("hit", "health", "miss"):
        for name in sides:
            result[f"{name}_{side}_us"] = statistics.median(r[side] for r in out[name])
        result[f"delta_{side}_us"] = statistics.median(
            a[side] - b[side] for a, b in zip(out["this"], out["other"], strict=True))
    print(f"in-process CPU per request ({path}), lockstep, median of {rounds} rounds of {repeat * TEXTS} each:")
    for name, tree in sides.items():
        print(f"  {name:5s} tree ({tree}): hit {result[f'{name}_hit_us']:7.1f} us, health "
              f"{result[f'{name}_health_us']:7.1f} us, miss {result[f'{name}_miss_us']:7.1f} us")
    print(f"  this - other, median of the rounds' differences: hit {result['delta_hit_us']:+7.1f} us, "
          f"health {result['delta_health_us']:+7.1f} us, miss {result['delta_miss_us']:+7.1f} us; upstream calls "
          f"while timing: {upstream}")
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--repeat", type=int, default=3, help=f"passes over the {TEXTS} cached texts per round")
    parser.add_argument("--compare", type=Path, metavar="TREE", help="another checkout, measured in lockstep")
    parser.add_argument("--path", choices=sorted(PATHS), default="analyze",
                        help="the cached request timed: an analysis, or a speech clip from one tier")
    parser.add_argument("--lockstep", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    path = PATHS[args.path]
    if args.lockstep:
        serve_rounds(path, args.repeat)
        return {}
    if args.compare:
        return compare(args.compare, args.rounds, args.repeat, args.path)
    with warm_app(path) as (app, hits, health, fake):
        calls = path.upstream(fake)
        out = [one_round(app, path, hits, health, args.repeat) for _ in range(args.rounds)]
        upstream = path.upstream(fake) - calls
    hit, health_us, miss = (statistics.median(r[side] for r in out) for side in ("hit", "health", "miss"))
    print(f"in-process CPU per request, {args.path} (median of {args.rounds} rounds of {args.repeat * TEXTS}, "
          f"misses {MISSES}):")
    url = path.request("")[0]
    for label, side, value in ((f"POST {url} (hit)", "hit", hit), ("GET /health", "health", health_us),
                               (f"POST {url} (miss)", "miss", miss)):
        rounds = ", ".join(f"{r[side]:.0f}" for r in out)
        print(f"  {label:24s} {value:7.1f} us   rounds {rounds}")
    print(f"  hit - health            {hit - health_us:7.1f} us; upstream calls while timing: {upstream} "
          f"(expected {args.rounds * MISSES}: the misses alone)")
    return {"hit_us": hit, "health_us": health_us, "miss_us": miss, "upstream": upstream}


if __name__ == "__main__":
    main()
