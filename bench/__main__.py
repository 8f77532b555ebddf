"""`python -m bench` (`make bench`): every benchmark in sequence, then a summary table of figures against targets."""
from __future__ import annotations

import contextlib
import io
import os
import platform
import resource
import subprocess
import sys
import time
import traceback

from bench import harness


class Tee(io.TextIOBase):
    """Print as usual and keep a copy, so the summary can quote each benchmark's last line."""

    def __init__(self, stream):
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.stream.flush()
        return self.copy.write(text)


def figures_of(name: str, r: dict | None, out: str) -> tuple[str, str]:
    """(figures, target) for the summary line of one benchmark."""
    last = [line for line in out.splitlines() if line.strip()][-1:] or [""]
    if r is None:
        return last[0].strip()[:90], "-"
    if name == "local_analysis":
        return (f"CPU p50 {r['cpu_p50_ms']:.1f} / p99 {r['cpu_p99_ms']:.1f} ms; +{r['rss_en_mib']:.0f} MiB en, "
                f"+{r['rss_all_mib']:.0f} MiB all, load {r['load_all_s']:.1f} s"), "CPU p99 <= 20 ms"
    if name == "hit_throughput":
        return f"hit {r['hit_rps']:.0f}, health {r['health_rps']:.0f} req/s; median round {r['ratio']:.2f}", ">= 0.7"
    if name == "miss_overhead":
        return (f"p50 +{r['overhead_p50_ms']:.2f} ms, p99 +{r['overhead_p99_ms']:.2f} ms "
                f"(SDK alone p50 +{r['sdk_p50_ms']:.1f})"), "p50 < 2 ms, p99 < 10 ms"
    if name == "gateway_peer":
        return (f"added p50 {r['service_added_p50_ms']:.1f} vs Portkey {r['portkey_added_p50_ms']:.1f} ms "
                f"{r['latency_ratio']:.2f}x; {r['service_rps']:.0f} vs {r['portkey_rps']:.0f} req/s "
                f"{r['throughput_ratio']:.2f}x; CPU {r['service_cpu_ms']:.1f} ms"), "<=1.0x, >=1.0x, <=5 ms CPU"
    if name == "budgets":
        return (f"hit on/off p50 {r['hit_ratio']:.3f} (in-process {r['inproc_ratio']:.3f}); paid call "
                f"+{r['paid_added_us']:.0f} us"), "hit on/off <= 1.05"
    if name == "conversation":
        dbs = [(label, kind) for label, kind in (("SQLite", "sqlite"), ("PG", "postgresql")) if f"{kind}_met" in r]
        return ("; ".join(f"{label} +{r[f'{kind}_overhead_p50_ms']:.0f}/{r[f'{kind}_overhead_p99_ms']:.0f} ms, "
                          f"{r[f'{kind}_turns_per_s']:.0f}/s, delta {r[f'{kind}_delta_p50_ms']:.1f}"
                          for label, kind in dbs), "p50<15/p99<50 ms, delta<=5")
    if name == "slow_upstream":
        levels = ", ".join(f"N={x['clients']} {x['ratio']:.2f} ({x['errors']} err)" for x in r["levels"])
        return levels, ">= 0.9 up to 200, no errors"
    if name == "fan_in":
        return f"{r['upstream']} upstream call(s), slowest {r['slowest']:.2f} s", "1 call"
    if name == "speech":
        figures = (f"hit/health: memory {r['memory_ratio']:.2f}, Redis {r['redis_ratio']:.2f} "
                   f"({r['clip_bytes'] / 1000:.0f} KB); {r['syntheses']} synthesis for {r['clients']}")
        return figures, ">= 0.5 each; 1 synthesis"
    if name == "outage":
        return f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms", "p99 < 20 ms"
    if name == "redis_outage":
        return f"req/s {r['rps_ratio']:.2f}x, p99 {r['p99_ratio']:.2f}x of Redis up", "no errors"
    if name == "gunicorn_settings":
        best, base = r["rows"][r["best"]], r["rows"][r["base"]]
        return (f"best {r['best']}: slow N=200 {best['slow_ratio']:.2f} vs {base['slow_ratio']:.2f} ({r['base']}), "
                f"hit/health {best['hit_ratio']:.2f}"), "informational"
    if name == "connection_spread":
        miss = r["rows"][("miss", "spread")]
        return (f"busiest worker {r['excess']:.2f}x even; uncached {miss['ratio']:.2f}x gthread's req/s, p99 "
                f"{miss['p99_ratio']:.2f}x; {r['reload_failures']} lost over a reload"), "<=1.25x even, 0 lost"
    if name == "connection_burst":
        return (f"{r['spread_slowest_ms']:.0f} vs {r['gthread_slowest_ms']:.0f} ms slowest, p50 "
                f"{r['p50_ratio']:.2f}x gunicorn's accept"), "slowest <= 1.5x"
    if name == "jobs":
        return (f"enqueue p99 {r['enqueue_p99_ms']:.1f} ms; {r['lessons_per_s']:.2f}/s={r['ratio']:.2f} of bound; "
                f"kill: {r['lost']} lost, {r['paid_twice']}/{r['held']} paid 2x"), "p99<20 ms, >=0.8, 0 lost"
    if name == "load_test":
        figures = f"{r['requests']} req, errors {r['error_ratio']:.2%}, p95 {r['p95_ms']:.0f} ms"
        return figures, "errors <= 1%, p95 <= 3 s"
    return f"ratio {r.get('ratio', float('nan')):.3g}", "-"


def cpu_now() -> tuple[float, float, float]:
    """CPU seconds so far: the machine busy, stolen by the hypervisor, and used by this process's tree."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
    tick = os.sysconf("SC_CLK_TCK")
    busy = (user + nice + system + irq + softirq) / tick
    own = sum(getattr(resource.getrusage(who), attr) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for attr in ("ru_utime", "ru_stime"))
    # Children still alive (the private redis-server) are not in RUSAGE_CHILDREN yet.
    live = [int(p) for t in os.listdir("/proc/self/task")
            for p in open(f"/proc/self/task/{t}/children").read().split()]
    return busy, steal / tick, own + harness.cpu_seconds(live)


def run(name: str, entry) -> tuple[dict | None, str, float, str | None, float]:
    """Run one benchmark's main(), keeping its output, and measure the cores others took meanwhile."""
    # A failure is reported, not fatal to the rest; the machine is shared, so its load is printed with the figures.
    print(f"\n### {name}", flush=True)
    tee, started, error = Tee(sys.stdout), time.monotonic(), None
    busy0, steal0, own0 = cpu_now()
    result = None
    with contextlib.redirect_stdout(tee):
        try:
            result = entry()
        except SystemExit as exc:
            error = str(exc)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            traceback.print_exc(file=sys.stdout)
            error = f"{type(exc).__name__}: {exc}"
    seconds = time.monotonic() - started
    busy1, steal1, own1 = cpu_now()
    others = max(0.0, (busy1 - busy0) - (own1 - own0)) / seconds
    steal = (steal1 - steal0) / seconds
    print(f"(meanwhile other processes kept {others:.2f} and the hypervisor stole {steal:.2f} of "
          f"{os.cpu_count()} cores)")
    return result, tee.copy.getvalue(), seconds, error, others + steal


def main() -> int:
    started = time.monotonic()
    harness.need_wrk()  # checked first: better to stop now than after minutes of other benchmarks
    from bench.load_test import need_locust

    need_locust()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0]
    print(f"machine: {harness.machine()}")
    print(f"load generators: {wrk_version} (1 thread) for throughput; Python asyncio clients in the benchmark "
          f"process for concurrency and latency; Locust for the mixed load test. Fakes run as separate processes; "
          f"Redis is a private redis-server (BENCH_REDIS_URL to use another).")
    print(f"gunicorn layout under test: {'x'.join(map(str, harness.default_layout()))} (WEB_CONCURRENCY x WEB_THREADS)")

    from bench import (
        budgets,
        cache_tiers,
        connection_burst,
        connection_spread,
        conversation,
        fan_in,
        gateway_peer,
        gunicorn_settings,
        hit_throughput,
        jobs,
        load_test,
        local_analysis,
        miss_overhead,
        outage,
        parse_corpus,
        redis_outage,
        slow_upstream,
        speech,
    )

    # Under ten minutes in all: the longest benchmarks run shorter here than their own defaults (which the README's
    # row table quotes where it says so).
    plan = [
        ("cache_tiers", "cache tier lookup latency", cache_tiers.main),
        ("parse_corpus", "model-output parse corpus", lambda: parse_corpus.main([])),
        ("local_analysis", "local analysis (degraded answer)", lambda: local_analysis.main([])),
        ("hit_throughput", "cache-hit throughput / health", lambda: hit_throughput.main([])),
        ("miss_overhead", "overhead on a miss", lambda: miss_overhead.main([])),
        ("gateway_peer", "miss vs the Portkey gateway", lambda: gateway_peer.main(
            ["--samples", "250", "--rounds", "3"])),
        ("budgets", "daily budgets: hit, paid call", lambda: budgets.main([])),
        ("conversation", "conversation turns, SQLite/PG", lambda: conversation.main(
            ["--samples", "60", "--seconds", "5", "--streams", "30"])),
        # Up to the target's N=200 here (each level is 8 s of load); `python -m bench.slow_upstream` adds N=400.
        ("slow_upstream", "slow upstream (1 s), default", lambda: slow_upstream.main(["--levels", "50", "200"])),
        # The layout the workers x threads comparison recommends for a 2-core VM, with the bulkhead sized to it.
        ("slow_upstream", "slow upstream (1 s), 4x64", lambda: slow_upstream.main(
            ["--levels", "50", "200", "--workers", "4", "--threads", "64", "--set", "GEMINI_MAX_CONCURRENCY=64"])),
        ("fan_in", "fan-in, 200 identical", lambda: fan_in.main([])),
        ("speech", "speech: hits / health, fan-in", lambda: speech.main(["--rounds", "3"])),
        ("outage", "provider outage, breaker open", lambda: outage.main([])),
        ("redis_outage", "Redis outage / Redis up", lambda: redis_outage.main(["--seconds", "5"])),
        ("jobs", "lesson jobs, SQLite, SIGKILL", lambda: jobs.main(["--lessons", "120"])),
        # Two short rounds and one reload: the split and the reload are behaviour; `python -m bench.connection_spread`
        # runs five rounds of 5 s and compares reuse_port as well.
        ("connection_spread", "connections over workers", lambda: connection_spread.main(
            ["--variants", "gthread", "spread", "--rounds", "2", "--seconds", "2", "--reloads", "1"])),
        ("connection_burst", "burst of 200 new connections", lambda: connection_burst.main(["--rounds", "3"])),
        # The three layouts worth choosing between (2x8 and 4x8 were a fifth and a third of 2x32's slow-upstream
        # figure in every run): `python -m bench.gunicorn_settings` compares all five.
        ("gunicorn_settings", "workers x threads", lambda: gunicorn_settings.main(
            ["--layouts", "2x32", "2x128", "4x64"])),
        ("load_test", "Locust mixed load", lambda: load_test.main(["--seconds", "20"])),
    ]
    rows = []
    for name, title, entry in plan:
        result, out, seconds, error, others = run(name, entry)
        figures, target = figures_of(name, result, out) if error is None else (f"ERROR {error}"[:90], "-")
        met = "-" if result is None else ("met" if result.get("ok") else "NOT met")
        if error is not None:
            met = "error"
        rows.append((title, figures, target, met, seconds, others))

    wall = time.monotonic() - started
    print("\n" + "=" * 136)
    print(f"SUMMARY ({harness.machine()})")
    print(f"{'benchmark':30s} {'figures':68s} {'target':27s} {'result':7s} {'time':>5s} {'others':>6s}")
    for title, figures, target, met, seconds, others in rows:
        print(f"{title:30s} {figures:68s} {target:27s} {met:7s} {seconds:4.0f}s {others:5.2f}c")
    print(f"total wall time {wall:.0f} s ({wall / 60:.1f} min), Python {platform.python_version()}; "
          f"'others' = cores taken by processes outside the benchmark plus hypervisor steal while it ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
