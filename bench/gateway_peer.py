"""The uncached path measured against a peer: our service and the Portkey AI gateway (Node) proxying one fake Gemini.

In one run, on one fake: (a) a generateContent call straight to the fake, (b) the same call through Portkey, (c) an
uncached POST /api/analyze through the service (the call `bench.miss_overhead` times), interleaved one at a time so
the host's drift lands on all three; then throughput with distinct bodies at a fixed concurrency, service and Portkey
in alternating rounds; CPU per call from the service's workers and from Portkey's node process.

Portkey route: its Gemini-native passthrough, `POST /v1/proxy/<path>` with `x-portkey-provider: google` and
`x-portkey-custom-host: <the fake>`. The gateway strips `/v1/proxy`, appends the rest of the path to the custom host and
forwards the JSON body and the caller's headers (minus its own `x-portkey-*`), so it calls the fake's
`/v1beta/models/{model}:generateContent` with the very body our SDK sent for the same text: both proxies forward the
same request. Its OpenAI-compatible `/v1/chat/completions` with provider google would add Portkey's OpenAI-to-Gemini
mapping both ways: a different workload from ours, so it is not the comparison. Portkey's cache stays off (no config;
every answer says `x-portkey-cache-status: DISABLED`, which the run checks).

Install: bench/peers/portkey/ pins @portkey-ai/gateway 1.15.2 with a lock; the first run copies both into
var/bench/portkey/ (not in git) and runs `npm ci`. The lock overrides @hono/node-server to 1.14.1: later releases hand
the fetch() answer's immutable headers to the gateway, whose node runtime then fails every proxied call with
"TypeError: immutable" (Portkey issue #1389; 1.14.2 fails here too). Without node or npm the benchmark prints a skip
line; `make bench` installs them through scripts/system-deps.sh.
"""
from __future__ import annotations

import http.client
import json
import re
import shutil
import statistics
import subprocess

from bench.harness import (
    FakeProcess,
    answers_within,
    auth_headers,
    cpu_seconds,
    layout_parser,
    learner_text,
    ratio_line,
    service,
    service_env,
    worker_pids,
)
from bench.load import WrkResult, percentile, wrk
from bench.miss_overhead import PATH, WARMUP, timed
from tests.integration.servers import ROOT, free_port

PEER = ROOT / "bench" / "peers" / "portkey"
HOME = ROOT / "var" / "bench" / "portkey"
ENTRY = HOME / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
CPU_TARGET_MS = 5.0
PORTKEY_POOL = 2000  # distinct upstream bodies cycled by wrk; Portkey caches nothing, so a repeat costs it the same
SERVICE_POOL_PER_S = 600  # distinct texts per second of a service round: above any miss rate this host reaches


def install() -> str | None:
    """None when the pinned gateway is ready under var/bench/portkey/, else why it cannot be (a skip reason)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        return "node and npm are missing (`make bench` installs them, or `sudo apt-get install nodejs npm`)"
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    if tuple(int(x) for x in re.findall(r"\d+", version)[:2]) < (18, 18):
        return f"node {version or '?'} is too old: the gateway and its --import preload need node >= 18.18"
    lock = PEER / "package-lock.json"
    pinned = [name for name in ("package.json", "package-lock.json") if (PEER / name).exists()]
    if ENTRY.exists() and all((HOME / name).exists() and (HOME / name).read_bytes() == (PEER / name).read_bytes()
                              for name in pinned):
        return None  # installed from exactly these files
    print(f"installing the Portkey gateway into {HOME.relative_to(ROOT)}/ (npm, once)", flush=True)
    HOME.mkdir(parents=True, exist_ok=True)
    for name in pinned:
        shutil.copyfile(PEER / name, HOME / name)
    # Install scripts stay off: the package's only one is patch-package, and it ships no patches.
    flags = ["--ignore-scripts", "--no-audit", "--no-fund", "--omit-lockfile-registry-resolved"]
    done = subprocess.run([npm, "ci" if lock.exists() else "install", *flags], cwd=HOME, capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0 or not ENTRY.exists():
        lines = (done.stderr or done.stdout).strip().splitlines()
        return f"npm could not install the gateway: {' | '.join(lines[:2])} (see `npm ci` in {HOME})"
    return None


class Portkey:
    """The gateway as its own node process on a free loopback port, headless (no UI, no log stream)."""

    def __init__(self, upstream: str):
        self.port = free_port()
        self.upstream = upstream
        self.log_path = HOME / "gateway.log"
        with open(self.log_path, "wb") as log:  # stdout is a spinner and a banner; errors go to stderr
            self.process = subprocess.Popen(
                ["node", "--import", (PEER / "loopback.mjs").as_uri(), str(ENTRY), "--headless", f"--port={self.port}"],
                cwd=HOME, stdout=subprocess.DEVNULL, stderr=log)
        if not answers_within(f"http://127.0.0.1:{self.port}/", 30, self.process):
            self.stop()
            raise RuntimeError(f"the Portkey gateway did not start; see {self.log_path}")

    @property
    def path(self) -> str:
        return "/v1/proxy" + PATH

    def headers(self) -> dict[str, str]:
        # Host spelled out: wrk's request builder omits it, and node refuses an HTTP/1.1 request without it (400).
        return {"Host": f"127.0.0.1:{self.port}", "Content-Type": "application/json", "x-portkey-provider": "google",
                "x-portkey-custom-host": self.upstream, "x-goog-api-key": "fake-key"}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def latencies(server, gemini: FakeProcess, portkey: Portkey, samples: int) -> dict:
    """Per step: a distinct text through the service, then its exact upstream body direct and through Portkey (the
    order of those two alternating), each on its own keep-alive connection."""
    svc = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    fake = http.client.HTTPConnection("127.0.0.1", gemini.port, timeout=30)
    gate = http.client.HTTPConnection("127.0.0.1", portkey.port, timeout=30)
    plain, via, headers = {"Content-Type": "application/json"}, portkey.headers(), auth_headers()
    times: dict[str, list[float]] = {"service": [], "direct": [], "portkey": []}
    seen: dict[str, int] = {}
    pids, node = worker_pids(server), [portkey.process.pid]
    cpu0 = (0.0, 0.0)
    for i in range(WARMUP + samples):
        if i == WARMUP:
            cpu0 = (cpu_seconds(pids), cpu_seconds(node))
        body = json.dumps({"text": learner_text(30_000_000 + i), "level": "B1"}).encode()
        s, status, answer = timed(svc, "/api/analyze", body, headers)
        upstream = json.dumps(gemini.stats()["last_request"]).encode()  # what the SDK sent for this text
        legs = [("direct", fake, PATH, plain), ("portkey", gate, portkey.path, via)]
        results = {name: timed(conn, path, upstream, h) for name, conn, path, h in (legs if i % 2 else legs[::-1])}
        (d, d_status, _), (p, p_status, p_answer) = results["direct"], results["portkey"]
        key = (f"service {status} {answer.get('X-Cache')}, direct {d_status}, portkey {p_status} "
               f"cache {p_answer.get('x-portkey-cache-status')}")
        seen[key] = seen.get(key, 0) + 1
        clean = (status, answer.get("X-Cache"), d_status, p_status) == (200, "MISS", 200, 200) and \
            p_answer.get("x-portkey-cache-status") == "DISABLED"
        if i >= WARMUP and clean:
            for name, seconds in (("service", s), ("direct", d), ("portkey", p)):
                times[name].append(seconds)
    service_cpu, node_cpu = cpu_seconds(pids) - cpu0[0], cpu_seconds(node) - cpu0[1]
    for conn in (svc, fake, gate):
        conn.close()
    return {**times, "seen": seen, "service_cpu_ms": service_cpu / samples * 1000,
            "portkey_cpu_ms": node_cpu / samples * 1000, "template": upstream.decode(),
            "template_text": learner_text(30_000_000 + WARMUP + samples - 1)}


def throughput(server, gemini: FakeProcess, portkey: Portkey, template: str, text: str, *, rounds: int,
               seconds: float, connections: int) -> dict:
    """wrk rounds alternating service and Portkey, distinct bodies; CPU of each side and upstream calls counted."""
    service_headers = {k: v for k, v in auth_headers().items() if k != "X-User-ID"}
    if template.count(text) != 1:
        raise RuntimeError("the service's upstream body should carry the learner text exactly once")
    pool = [template.replace(text, learner_text(40_000_000 + n)) for n in range(PORTKEY_POOL)]
    per_round = int(SERVICE_POOL_PER_S * seconds)
    pids, node = worker_pids(server), [portkey.process.pid]
    runs: dict[str, list[WrkResult]] = {"service": [], "portkey": []}
    cpu = {"service": 0.0, "portkey": 0.0}
    fake_cpu = {"service": 0.0, "portkey": 0.0}  # the fake shares the two cores: what it takes is not the proxy's
    upstream = {"service": 0, "portkey": 0}
    for r in range(rounds):
        bodies = [json.dumps({"text": learner_text(50_000_000 + r * per_round + n), "level": "B1"})
                  for n in range(per_round)]  # a new range per round: nothing the service has cached
        sides = [("service", f"{server.url}/api/analyze", bodies, service_headers, pids),
                 ("portkey", f"http://127.0.0.1:{portkey.port}{portkey.path}", pool, portkey.headers(), node)]
        for name, url, sent, headers, who in sides if r % 2 == 0 else sides[::-1]:  # ABBA: no side always first
            cpu0, fake0, calls0 = cpu_seconds(who), cpu_seconds([gemini.process.pid]), gemini.calls()
            runs[name].append(wrk(url, seconds=seconds, connections=connections, method="POST", bodies=sent,
                                  headers=headers))
            cpu[name] += cpu_seconds(who) - cpu0
            fake_cpu[name] += cpu_seconds([gemini.process.pid]) - fake0
            upstream[name] += gemini.calls() - calls0
    out: dict = {"round_ratios": [s.rps / p.rps for s, p in zip(runs["service"], runs["portkey"], strict=True)]}
    for name, results in runs.items():
        count, wall = sum(x.requests for x in results), sum(x.seconds for x in results)
        out[name] = {"rps": count / wall, "requests": count, "errors": sum(x.errors for x in results),
                     "upstream": upstream[name], "cpu_ms": cpu[name] / max(1, count) * 1000,
                     "cpu_cores": cpu[name] / wall, "fake_cpu_ms": fake_cpu[name] / max(1, count) * 1000,
                     "p50": statistics.median(x.p50_ms for x in results),
                     "p99": max(x.p99_ms for x in results), "wrk_cpu": max(x.wrk_cpu_share for x in results)}
    out["overall"] = out["service"]["rps"] / out["portkey"]["rps"]
    # The median round: one round the shared host starved (or spared) cannot swing the figure.
    out["ratio"] = statistics.median(out["round_ratios"])
    out["service"]["wrapped"] = any(x.requests > per_round for x in runs["service"])
    return out


def measure(args) -> dict:
    gemini = FakeProcess("tests.fakes.gemini")
    portkey = None
    try:
        portkey = Portkey(gemini.base)
        with service(service_env(gemini), args.workers, args.threads) as server:
            lat = latencies(server, gemini, portkey, args.samples)
            thr = throughput(server, gemini, portkey, lat["template"], lat["template_text"], rounds=args.rounds,
                             seconds=args.seconds, connections=args.connections)
    finally:
        if portkey is not None:
            portkey.stop()
        gemini.stop()
    return {"lat": lat, "thr": thr}


def report(args, r: dict) -> dict:
    lat, thr = r["lat"], r["thr"]
    ms = lambda values, share: percentile(values, share) * 1000  # noqa: E731
    added = {name: (ms(lat[name], 0.5) - ms(lat["direct"], 0.5), ms(lat[name], 0.99) - ms(lat["direct"], 0.99))
             for name in ("service", "portkey")}
    print(f"gunicorn {args.workers}x{args.threads} vs the Portkey gateway 1.15.2 (one node process, passthrough "
          f"/v1/proxy, provider google, custom host = the fake); fake Gemini without latency")
    print(f"  {len(lat['service'])} interleaved sequential calls, distinct texts, after {WARMUP} warm-up ones: "
          f"{lat['seen']}")
    print(f"  direct to the fake        p50 {ms(lat['direct'], 0.5):6.2f} ms  p99 {ms(lat['direct'], 0.99):6.2f} ms")
    for name, label in (("portkey", "through Portkey"), ("service", "through the service")):
        print(f"  {label:25s} p50 {ms(lat[name], 0.5):6.2f} ms  p99 {ms(lat[name], 0.99):6.2f} ms   added "
              f"p50 {added[name][0]:6.2f} ms  p99 {added[name][1]:6.2f} ms   CPU {lat[f'{name}_cpu_ms']:5.2f} ms/call")
    latency_ratio = added["service"][0] / added["portkey"][0]
    print(f"  added latency service / Portkey: p50 {latency_ratio:.2f}x, "
          f"p99 {added['service'][1] / added['portkey'][1]:.2f}x")
    print(f"  throughput, wrk 1 thread {args.connections} connections, {args.rounds} alternating rounds of "
          f"{args.seconds:g} s each (per-round ratios {', '.join(f'{v:.2f}' for v in thr['round_ratios'])}, "
          f"the figure is their median; all rounds pooled {thr['overall']:.2f}):")
    for name, label in (("portkey", "Portkey"), ("service", "service")):
        x = thr[name]
        print(f"    {label:8s} {x['rps']:7.0f} req/s  p50 {x['p50']:6.2f} ms  p99 {x['p99']:7.2f} ms  errors "
              f"{x['errors']}  upstream calls {x['upstream']}/{x['requests']}  CPU {x['cpu_ms']:5.2f} ms/call "
              f"({x['cpu_cores']:.2f} cores)  fake {x['fake_cpu_ms']:4.2f} ms/call  "
              f"wrk <= {x['wrk_cpu']:.0%} of a core")
    if thr["service"]["wrapped"]:
        print("    (the service's texts ran out and repeated: some answers came from its cache; "
              "raise SERVICE_POOL_PER_S)")
    cpu_ms = max(lat["service_cpu_ms"], thr["service"]["cpu_ms"])
    print(f"  service CPU per uncached call: {lat['service_cpu_ms']:.2f} ms one at a time, "
          f"{thr['service']['cpu_ms']:.2f} ms under load (the target holds the larger)")
    clean = thr["service"]["errors"] == thr["portkey"]["errors"] == 0 and not thr["service"]["wrapped"] and \
        thr["service"]["upstream"] >= thr["service"]["requests"] and len(lat["service"]) == args.samples
    ok = {"latency": latency_ratio <= 1.0, "throughput": thr["ratio"] >= 1.0, "cpu": cpu_ms <= CPU_TARGET_MS}
    print(ratio_line("miss added latency service / Portkey (p50)", latency_ratio, "<= 1.0", ok["latency"] and clean))
    print(ratio_line("miss throughput service / Portkey (median round)", thr["ratio"], ">= 1.0",
                     ok["throughput"] and clean))
    print(ratio_line("service CPU ms per uncached call", cpu_ms, f"<= {CPU_TARGET_MS:g} ms", ok["cpu"] and clean))
    return {"ratio": latency_ratio, "latency_ratio": latency_ratio, "throughput_ratio": thr["ratio"],
            "service_added_p50_ms": added["service"][0], "service_added_p99_ms": added["service"][1],
            "portkey_added_p50_ms": added["portkey"][0], "portkey_added_p99_ms": added["portkey"][1],
            "service_rps": thr["service"]["rps"], "portkey_rps": thr["portkey"]["rps"],
            "service_cpu_ms": cpu_ms, "service_cpu_ms_sequential": lat["service_cpu_ms"],
            "portkey_cpu_ms": thr["portkey"]["cpu_ms"], "portkey_cpu_ms_sequential": lat["portkey_cpu_ms"],
            "clean": clean, "ok": clean and all(ok.values())}


def main(argv: list[str] | None = None) -> dict | None:
    parser = layout_parser(__doc__)
    parser.add_argument("--samples", type=int, default=400, help="interleaved sequential triples")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3, help="per wrk run (whole seconds)")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args(argv)
    reason = install()
    if reason:
        print(f"SKIP gateway_peer: {reason}")
        return None
    return report(args, measure(args))


if __name__ == "__main__":
    main()
