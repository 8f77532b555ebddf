"""Speech synthesis: cache-hit throughput of a ~50 KB clip (memory tier, Redis tier) relative to GET /health, and 20
concurrent identical POST /api/speech across the workers costing one synthesis, every answer the same bytes."""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import statistics
import time

import requests

from bench.harness import (
    FakeProcess,
    auth_headers,
    cpu_seconds,
    layout_parser,
    ratio_line,
    service,
    service_env,
    worker_pids,
)
from bench.load import WrkResult, http_request, percentile, wrk

FORMAT = "mp3"  # the API's default; with the fake, two sentences of mp3 make ~50 KB (wav: ~2.4 KB per character)
TEXTS = 16  # distinct cached clips, cycled, so the hit path hashes and looks up real keys
FAN_IN_CLIENTS = 20
FAN_IN_LATENCY_MS = 500  # long enough that every request arrives while the one synthesis is in flight
FAN_IN_BURSTS = 3  # tries at a burst that reaches both workers
# The service's smallest memory tier: a ~50 KB clip does not fit, so in redis_only every hit is a Redis GET.
NO_MEMORY_TIER = 1024
# Both with Redis for the rate limits and lockouts, so only the tier answering differs. (CACHE_MODE=disk would put
# the lockout check of every keyed request on SQLite: a cost of that mode, not of the memory tier.)
TIERS = {"memory": ("CACHE_MODE=redis (memory, disk, Redis), memory tier warm", {"CACHE_MODE": "redis"}),
         "redis": (f"CACHE_MODE=redis_only, CACHE_MEMORY_MAX_BYTES={NO_MEMORY_TIER} (every hit a Redis GET)",
                   {"CACHE_MODE": "redis_only", "CACHE_MEMORY_MAX_BYTES": NO_MEMORY_TIER})}


def clip_text(i: int) -> str:
    """Two sentences, distinct per index, that the fake speaks as a ~50 KB mp3."""
    return (f"Lesson {i:02d}. The train to the coast leaves at nine, so we should pack our bags tonight and go to "
            f"sleep early. Tomorrow will be a long day, and the sea will be cold and grey.")


def synthesis_calls(azure: FakeProcess) -> int:
    """Synthesis calls the fake answered so far (``/_fake/calls`` counts recognition only)."""
    return int(requests.get(f"{azure.base}/_fake/stats", timeout=5).json()["synthesis_calls"])


def tier_hits(server) -> dict[str, float]:
    """Speech cache hits so far per tier, over every worker (from /metrics)."""
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    hits: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("cache_tier_lookups_total{") and 'namespace="speech"' in line and 'result="hit"' in line:
            tier = re.search(r'tier="([^"]+)"', line)
            if tier:
                hits[tier[1]] = hits.get(tier[1], 0.0) + float(line.rsplit(" ", 1)[1])
    return hits


def warm_cache(server, rounds: int = 4) -> tuple[list[str], list[int]]:
    """Cache the TEXTS clips and let every worker promote them to its memory tier; returns bodies and clip sizes."""
    bodies = [json.dumps({"text": clip_text(i), "format": FORMAT}) for i in range(TEXTS)]
    sizes: list[int] = []
    for n in range(rounds):
        for i, body in enumerate(bodies):
            answer = requests.post(f"{server.url}/api/speech", data=body, headers=auth_headers(i), timeout=30)
            answer.raise_for_status()
            if n == rounds - 1:
                if answer.headers["X-Cache"] != "HIT" or answer.headers["Content-Type"] != "audio/mpeg":
                    raise RuntimeError(f"warm clip {i}: X-Cache {answer.headers['X-Cache']}, "
                                       f"{answer.headers['Content-Type']}")
                sizes.append(len(answer.content))
    return bodies, sizes


def alternate(servers: dict, bodies: list[str], *, rounds: int, seconds: float, connections: int) -> dict:
    """Per round, /health then the cached clip on each tier's server in turn: every side under the same drift."""
    headers = {k: v for k, v in auth_headers().items() if k != "X-User-ID"}
    pids = {tier: worker_pids(server) for tier, server in servers.items()}
    runs: dict[tuple[str, str], list[WrkResult]] = {(t, s): [] for t in servers for s in ("health", "hit")}
    cpu = dict.fromkeys(runs, 0.0)
    for server in servers.values():
        wrk(f"{server.url}/health", seconds=1, connections=connections)  # warm connections and code paths
        wrk(f"{server.url}/api/speech", seconds=1, connections=connections, method="POST", bodies=bodies,
            headers=headers)
    hits_before = {tier: tier_hits(server) for tier, server in servers.items()}
    for _ in range(rounds):
        for tier, server in servers.items():
            for side, path, extra in (("health", "/health", {}),
                                      ("hit", "/api/speech", {"method": "POST", "bodies": bodies,
                                                              "headers": headers})):
                before = cpu_seconds(pids[tier])
                runs[tier, side].append(wrk(server.url + path, seconds=seconds, connections=connections, **extra))
                cpu[tier, side] += cpu_seconds(pids[tier]) - before
    out: dict = {}
    for (tier, side), results in runs.items():
        count = sum(r.requests for r in results)
        out.setdefault(tier, {})[side] = {
            "rps": count / sum(r.seconds for r in results), "errors": sum(r.errors for r in results),
            "p50": statistics.median(r.p50_ms for r in results), "p99": max(r.p99_ms for r in results),
            "cpu_us": cpu[tier, side] / max(1, count) * 1e6, "wrk_cpu": max(r.wrk_cpu_share for r in results),
            "requests": count}
    for tier in servers:
        ratios = [h.rps / g.rps for h, g in zip(runs[tier, "hit"], runs[tier, "health"], strict=True)]
        out[tier]["round_ratios"] = ratios
        out[tier]["ratio"] = statistics.median(ratios)  # one starved (or spared) round cannot swing the figure
        after = tier_hits(servers[tier])
        out[tier]["tier_hits"] = {t: after[t] - hits_before[tier].get(t, 0.0) for t in after}
    return out


def measure_hits(workers: int, threads: int, rounds: int, seconds: float, connections: int) -> dict:
    """Both tiers' services up at once, warmed, then measured in alternating rounds."""
    azure = FakeProcess("tests.fakes.azure_speech")
    try:
        memory_env, redis_env = (service_env(None, azure=azure, **TIERS[tier][1]) for tier in ("memory", "redis"))
        with service(memory_env, workers, threads) as memory, service(redis_env, workers, threads) as redis:
            servers = {"memory": memory, "redis": redis}
            sizes: dict[str, list[int]] = {}
            for tier, server in servers.items():
                bodies, sizes[tier] = warm_cache(server)
            calls_before = synthesis_calls(azure)
            r = alternate(servers, bodies, rounds=rounds, seconds=seconds, connections=connections)
            r["upstream_during_hits"] = synthesis_calls(azure) - calls_before
            r["sizes"] = sizes
    finally:
        azure.stop()
    return r


async def _burst(port: int, raw: bytes, clients: int) -> list[tuple[int, str, bytes, float]]:
    """clients connections opened first, then the same request sent on all at once: (status, X-Cache, body, s)."""
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(clients)]

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[int, str, bytes, float]:
        started = time.monotonic()
        writer.write(raw)
        head = await reader.readuntil(b"\r\n\r\n")
        fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
        fields = {k.strip().lower(): v.strip() for k, v in fields.items()}
        body = await reader.readexactly(int(fields.get(b"content-length", b"0")))
        writer.close()
        return (int(head.split(b" ", 2)[1]), fields.get(b"x-cache", b"-").decode(), body,
                time.monotonic() - started)

    return list(await asyncio.gather(*(one(r, w) for r, w in connections)))


def _answers_per_worker(log_path, offset: int) -> dict[str, int]:
    """How many /api/speech answers each worker gave after ``offset`` in the service's JSON log, by cache result."""
    counts: dict[str, int] = {}
    with open(log_path, "rb") as log:
        log.seek(offset)
        for line in log:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # gunicorn's own lines are not JSON
            if isinstance(entry, dict) and entry.get("route") == "/api/speech":
                name = f"pid {entry.get('process')} {entry.get('cache')}"
                counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def measure_fan_in(threads: int, clients: int) -> dict:
    """Production cache settings (memory, disk, Redis shared), 2 workers, the fake slowed down, one burst (again,
    with a new text, when the kernel handed every connection to the same worker)."""
    azure = FakeProcess("tests.fakes.azure_speech")
    # The bulkhead holds a slot for each request waiting on the flight too: at its default (16 per worker) a burst
    # the kernel crowds onto one worker gets fast 503s past 16. Sized to the burst, the figure is de-duplication's.
    env = service_env(None, azure=azure, CACHE_MODE="redis", AZURE_TTS_MAX_CONCURRENCY=max(16, clients))
    try:
        with service(env, 2, threads) as server:
            for i in range(8):  # each worker's synthesizer built, so the burst measures de-duplication only
                requests.post(f"{server.url}/api/speech", json={"text": f"Warm up number {i}.", "format": FORMAT},
                              headers=auth_headers(i), timeout=30).raise_for_status()
            requests.get(f"{azure.base}/_fake/config", params={"latency_ms": FAN_IN_LATENCY_MS},
                         timeout=5).raise_for_status()
            for attempt in range(1, FAN_IN_BURSTS + 1):
                f = _burst_once(server, azure, clip_text(TEXTS + attempt), clients)  # same size, not cached yet
                if len({name.split()[1] for name in f["per_worker"]}) == 2:
                    break
    finally:
        azure.stop()
    return {**f, "bursts": attempt, "bulkhead": max(16, clients)}


def _burst_once(server, azure: FakeProcess, text: str, clients: int) -> dict:
    """One burst of identical requests: syntheses it cost, answers, bodies, latencies, and who answered."""
    before = synthesis_calls(azure)
    headers = {k: v for k, v in auth_headers().items() if k != "X-User-ID"}
    log_from = server.log_path.stat().st_size
    started = time.monotonic()
    raw = http_request("/api/speech", {"text": text, "format": FORMAT}, headers)
    answers = asyncio.run(_burst(server.port, raw, clients))
    wall = time.monotonic() - started
    time.sleep(0.2)  # a synthesis answered after the last client would still be counted
    statuses: dict[int, int] = {}
    caches: dict[str, int] = {}
    for status, cache, _, _ in answers:
        statuses[status] = statuses.get(status, 0) + 1
        caches[cache] = caches.get(cache, 0) + 1
    audio = [body for status, _, body, _ in answers if status == 200]
    seconds = [s for *_, s in answers]
    return {"syntheses": synthesis_calls(azure) - before, "statuses": statuses, "x_cache": caches,
            "distinct_bodies": len({hashlib.sha256(body).hexdigest() for body in audio}),
            "bytes": len(audio[0]) if audio else 0, "per_worker": _answers_per_worker(server.log_path, log_from),
            "fastest": min(seconds), "p50": percentile(seconds, 0.5), "slowest": max(seconds), "wall": wall}


def main(argv: list[str] | None = None) -> dict:
    parser = layout_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2, help="per wrk run (whole seconds)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--clients", type=int, default=FAN_IN_CLIENTS)
    args = parser.parse_args(argv)
    r = measure_hits(args.workers, args.threads, args.rounds, args.seconds, args.connections)
    sizes = [size for tier in r["sizes"].values() for size in tier]
    print(f"gunicorn {args.workers}x{args.threads} per tier (both up at once), wrk 1 thread {args.connections} "
          f"connections, {args.rounds} alternating rounds of {args.seconds:g} s per side and tier")
    print(f"  clip: POST /api/speech {FORMAT}, {TEXTS} distinct texts of {len(clip_text(0))} characters, "
          f"{min(sizes)}-{max(sizes)} bytes (mean {statistics.mean(sizes):.0f})")
    for tier, (how, _) in TIERS.items():
        print(f"  {tier} tier: {how}")
        for side, label in (("health", "GET /health"), ("hit", "POST /api/speech (hit)")):
            x = r[tier][side]
            print(f"    {label:24s} {x['rps']:8.0f} req/s  p50 {x['p50']:6.2f} ms  p99 {x['p99']:6.2f} ms  "
                  f"errors {x['errors']}  service CPU {x['cpu_us']:6.0f} us/req  wrk CPU <= {x['wrk_cpu']:.0%}")
        hits = ", ".join(f"{t} {n:.0f}" for t, n in sorted(r[tier]["tier_hits"].items()) if n) or "none"
        print(f"    hits by tier: {hits} (of {r[tier]['hit']['requests']} hit requests)")
        print(f"    per-round ratios: {', '.join(f'{v:.2f}' for v in r[tier]['round_ratios'])}; "
              f"median {r[tier]['ratio']:.2f}")
        # Steadier than req/s on a shared host: what each request cost the workers, whoever else took the cores.
        cpu_ratio = r[tier]["health"]["cpu_us"] / r[tier]["hit"]["cpu_us"]
        print(f"    service CPU per request, /health / hit: {cpu_ratio:.2f}")
    print(f"  syntheses during the hit runs: {r['upstream_during_hits']} (0 = every answer came from the cache)")

    f = measure_fan_in(args.threads, args.clients)
    workers = {name.split()[1] for name in f["per_worker"]}
    print(f"fan-in: gunicorn 2x{args.threads}, cache memory+disk+Redis (shared), AZURE_TTS_MAX_CONCURRENCY="
          f"{f['bulkhead']}, fake synthesis latency {FAN_IN_LATENCY_MS} ms, {args.clients} concurrent identical "
          f"POST /api/speech (asyncio, a connection each)")
    print(f"  burst {f['bursts']} of at most {FAN_IN_BURSTS} (each a new text): answered by {len(workers)} worker(s)")
    print(f"  syntheses {f['syntheses']} (target 1)  answers {f['statuses']}  X-Cache {f['x_cache']}  "
          f"distinct bodies {f['distinct_bodies']} ({f['bytes']} bytes)")
    print(f"  answers per worker (access log): {', '.join(f'{k}: {n}' for k, n in f['per_worker'].items())}")
    print(f"  latency fastest {f['fastest']:.3f} s  p50 {f['p50']:.3f} s  slowest {f['slowest']:.3f} s  "
          f"spread {f['slowest'] - f['fastest']:.3f} s  (burst wall {f['wall']:.3f} s)")

    clean = (r["upstream_during_hits"] == 0 and all(r[t][s]["errors"] == 0 for t in TIERS for s in ("health", "hit"))
             and r["memory"]["tier_hits"].get("memory", 0) > 0.9 * r["memory"]["hit"]["requests"]
             and r["redis"]["tier_hits"].get("redis", 0) >= r["redis"]["hit"]["requests"])
    fan_in_ok = (f["syntheses"] == 1 and f["statuses"] == {200: args.clients} and f["distinct_bodies"] == 1
                 and len(workers) == 2)  # both workers answered: the flight was shared through Redis
    ratio = min(r["memory"]["ratio"], r["redis"]["ratio"])
    met = ratio >= 0.5 and clean and fan_in_ok
    print(f"SUMMARY speech: memory-tier hit {r['memory']['hit']['rps']:.0f} req/s = {r['memory']['ratio']:.2f} of "
          f"/health, Redis-tier hit {r['redis']['hit']['rps']:.0f} req/s = {r['redis']['ratio']:.2f}; "
          f"{f['syntheses']} synthesis for {args.clients} identical, {f['distinct_bodies']} distinct body")
    print(ratio_line("speech cache_hit_rps / health_rps (lower tier, median round)", ratio,
                     ">= 0.5 both tiers, 1 synthesis, identical 200s", met))
    return {"ratio": ratio, "memory_ratio": r["memory"]["ratio"], "redis_ratio": r["redis"]["ratio"],
            "memory_rps": r["memory"]["hit"]["rps"], "redis_rps": r["redis"]["hit"]["rps"],
            "health_rps": r["memory"]["health"]["rps"], "clip_bytes": round(statistics.mean(sizes)),
            "syntheses": f["syntheses"], "clients": args.clients, "spread": f["slowest"] - f["fastest"],
            "slowest": f["slowest"], "ok": met}


if __name__ == "__main__":
    main()
