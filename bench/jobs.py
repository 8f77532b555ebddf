"""Lesson jobs on the embedded default (SQLite database and queue, disk cache): how long POST /api/lessons takes to
answer 202, how close 2 real worker processes come to their bound draining lessons from a slow fake, and what a
worker SIGKILLed mid-run costs (jobs lost, upstream calls paid twice) once a replacement takes over."""
from __future__ import annotations

import http.client
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

from backend.jobs.worker import DEFAULT_THREADS
from bench.databases import migrated
from bench.harness import FakeProcess, auth_headers, layout_parser, ratio_line, service, service_env
from bench.load import percentile
from tests.integration.servers import ROOT, _base_env

MS = 1000.0
MAX_PARALLEL = 3  # LessonGenerator's max_parallel in backend/composition.py: steps one lesson runs at once
FINISHED = ("succeeded", "failed", "cancelled")


class Worker:
    """One `python -m backend.jobs.worker` process in its own session, so SIGKILL reaches all of it."""

    def __init__(self, env: dict[str, str], threads: int):
        self.log = Path(tempfile.mkstemp(prefix="bench-worker-", suffix=".log")[1])
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "backend.jobs.worker", "-w", str(threads)],
                                            cwd=ROOT, env={**_base_env(), **env}, stdout=log, stderr=log,
                                            start_new_session=True)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        self.kill()
        if not os.environ.get("BENCH_KEEP_LOGS"):
            self.log.unlink(missing_ok=True)


def rows(db_path: str, ids: list[str]) -> dict[str, tuple]:
    """(status, steps_done, steps_total, attempts, created_at, finished_at) by job id, read straight from SQLite
    (polling through the API would add its own load to the run it measures)."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as conn:
        marks = ",".join("?" * len(ids))
        found = conn.execute(f"SELECT id, status, steps_done, steps_total, attempts, created_at, finished_at "
                             f"FROM jobs WHERE id IN ({marks})", ids).fetchall()
    return {r[0]: r[1:] for r in found}


def wait_finished(db_path: str, ids: list[str], timeout: float) -> tuple[dict[str, tuple], float]:
    """Every job's row once all are finished (or at the timeout), and when that was seen."""
    deadline = time.monotonic() + timeout
    while True:
        now = rows(db_path, ids)
        if all(r[0] in FINISHED for r in now.values()) and len(now) == len(ids) or time.monotonic() > deadline:
            return now, time.perf_counter()
        time.sleep(0.1)


def submit(conn: http.client.HTTPConnection, user: int, topic: str, sections: int) -> tuple[float, int, str]:
    """POST one lesson: (seconds to the answer, status, job id)."""
    body = json.dumps({"topic": topic, "sections": sections}).encode()
    started = time.perf_counter()
    conn.request("POST", "/api/lessons", body=body, headers=auth_headers(user))
    response = conn.getresponse()
    payload = response.read()
    seconds = time.perf_counter() - started
    job_id = json.loads(payload)["data"]["job_id"] if response.status == 202 else ""
    return seconds, response.status, job_id


def enqueue(port: int, count: int, sections: int, tag: str, first_user: int) -> tuple[list[float], dict, list[str]]:
    """``count`` lessons on distinct topics (distinct cache keys) from distinct users, one after another."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies, statuses, ids = [], {}, []
    for i in range(count):
        seconds, status, job_id = submit(conn, first_user + i, f"Travel {tag} {i}", sections)
        statuses[status] = statuses.get(status, 0) + 1
        if job_id:
            latencies.append(seconds)
            ids.append(job_id)
    return latencies, statuses, ids


def reset_calls(fake: FakeProcess) -> None:
    """Zero the fake's call count, keeping its latency."""
    requests.post(f"{fake.base}/_fake/reset", json={"config": False}, timeout=5).raise_for_status()


def api_status(port: int, user: int, job_id: str) -> str:
    """A job's status through GET /api/jobs/{id}: the route the bench's direct reads stand in for answers too."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", f"/api/jobs/{job_id}", headers=auth_headers(user))
    response = conn.getresponse()
    return json.loads(response.read())["data"]["status"] if response.status == 200 else f"HTTP {response.status}"


def run(args) -> dict:
    steps = 1 + 2 * args.sections
    tag = uuid.uuid4().hex[:6]
    with migrated("sqlite") as url:
        db_path = url.removeprefix("sqlite:///")
        gemini = FakeProcess("tests.fakes.gemini", latency_ms=args.latency_ms)
        # Distinct users per lesson keep each caller far below MAX_ACTIVE_JOBS_PER_CALLER (at most 100).
        env = service_env(gemini, redis=None, DATABASE_URL=url, CACHE_MODE="disk", JOB_LEASE_SECONDS=args.lease,
                          MAX_ACTIVE_JOBS_PER_CALLER=100, GEMINI_TIMEOUT_SECONDS=10)
        workers: list[Worker] = []
        try:
            with service(env, args.workers, args.threads) as server:
                workers += [Worker(env, args.worker_threads) for _ in range(args.job_workers)]
                # Warm-up: one lesson per worker thread, through and finished, so the workers are up and connected.
                _, _, warm = enqueue(server.port, args.job_workers * args.worker_threads, args.sections,
                                     f"{tag} warm", 900)
                warm_rows, _ = wait_finished(db_path, warm, 60)
                # 1+2: enqueue latency and drain throughput, in one run (workers consume while the POSTs go on).
                reset_calls(gemini)
                started = time.perf_counter()
                latencies, statuses, ids = enqueue(server.port, args.lessons, args.sections, f"{tag} run", 0)
                drained, ended = wait_finished(db_path, ids, 300)
                drain_seconds = ended - started
                drain_calls = gemini.calls()
                checked = api_status(server.port, 0, ids[0])
                # 3: a worker SIGKILLed mid-run, a replacement started at once.
                reset_calls(gemini)
                _, kill_statuses, kill_ids = enqueue(server.port, args.kill_lessons, args.sections, f"{tag} kill",
                                                     500)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    now = rows(db_path, kill_ids)
                    if sum(1 for r in now.values() if r[0] == "running" and r[1] >= 1) >= 2:
                        break
                    time.sleep(0.05)
                victim = workers[0]
                victim.kill()
                at_kill = rows(db_path, kill_ids)
                workers.append(Worker(env, args.worker_threads))
                killed_at = time.perf_counter()
                after, recovered = wait_finished(db_path, kill_ids, 120)
                kill_calls = gemini.calls()
        finally:
            for worker in workers:
                worker.stop()
            gemini.stop()
    # Steps the killed worker may have had in flight: its jobs are the ones claimed again (attempts >= 2); each had
    # the plan (1 step) or up to MAX_PARALLEL of its remaining steps running.
    rerun = [j for j, r in after.items() if r[3] >= 2]
    held = sum(1 if at_kill[j][1] == 0 else min(MAX_PARALLEL, steps - at_kill[j][1]) for j in rerun)
    return {"latencies": latencies, "statuses": statuses, "drained": drained, "drain_seconds": drain_seconds,
            "drain_calls": drain_calls, "checked": checked, "warm_ok": all(r[0] == "succeeded"
                                                                            for r in warm_rows.values()),
            "kill_statuses": kill_statuses, "after": after, "rerun": len(rerun), "held": held,
            "kill_calls": kill_calls, "recovery_s": recovered - killed_at, "steps": steps}


def main(argv: list[str] | None = None) -> dict:
    parser = layout_parser(__doc__)
    parser.add_argument("--lessons", type=int, default=200)
    parser.add_argument("--sections", type=int, default=2)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--job-workers", type=int, default=2)
    parser.add_argument("--worker-threads", type=int, default=DEFAULT_THREADS)
    parser.add_argument("--kill-lessons", type=int, default=20)
    parser.add_argument("--lease", type=int, default=5)
    args = parser.parse_args(argv)
    r = run(args)
    steps, latency = r["steps"], args.latency_ms / MS
    # A lesson cannot finish faster than its critical path: the plan, then its 2 x sections steps MAX_PARALLEL at a
    # time; each worker thread runs one lesson at once. The step-slot bound assumes every slot always busy, which
    # the plan step (alone) rules out, so it is shown but not used.
    critical = latency * (1 + math.ceil((steps - 1) / MAX_PARALLEL))
    threads = args.job_workers * args.worker_threads
    bound = threads / critical
    slots_bound = threads * MAX_PARALLEL / (steps * latency)
    done = sum(1 for x in r["drained"].values() if x[0] == "succeeded")
    rate = done / r["drain_seconds"]
    ratio = rate / bound
    lat = r["latencies"]
    p50, p99 = percentile(lat, 0.5) * MS, percentile(lat, 0.99) * MS
    kill_done = sum(1 for x in r["after"].values() if x[0] == "succeeded")
    lost = args.kill_lessons - kill_done
    paid_twice = r["kill_calls"] - steps * args.kill_lessons
    drained = f"{done} ok in {r['drain_seconds']:.1f} s"
    twice, recovery = f"{paid_twice} / {r['held']}", f"{r['recovery_s']:.1f} s"
    print(f"SQLite database + SQLite (Huey) queue + disk cache; gunicorn {args.workers}x{args.threads}; "
          f"{args.job_workers} worker processes x {args.worker_threads} threads; fake Gemini {args.latency_ms} ms per "
          f"call; lessons of {args.sections} sections = {steps} steps (plan, then {steps - 1} steps at most "
          f"{MAX_PARALLEL} at once); JOB_LEASE_SECONDS={args.lease}")
    print(f"{'measure':44s} {'figure':>28s}  target")
    print(f"{'enqueue 202 latency p50 / p99 (' + str(len(lat)) + ' POSTs)':44s} "
          f"{f'{p50:.1f} / {p99:.1f} ms':>28s}  p99 < 20 ms   statuses {r['statuses']}")
    print(f"{'lessons drained (' + str(args.lessons) + ' enqueued)':44s} "
          f"{drained:>28s}  all succeeded")
    print(f"{'throughput':44s} {f'{rate:.2f} lessons/s':>28s}")
    print(f"{'bound (critical path)':44s} {f'{bound:.2f} lessons/s':>28s}  = {threads} threads / "
          f"({1 + math.ceil((steps - 1) / MAX_PARALLEL)} x {args.latency_ms} ms)")
    print(f"{'(step-slot bound, not reachable)':44s} {f'{slots_bound:.2f} lessons/s':>28s}  = {threads} x "
          f"{MAX_PARALLEL} slots / ({steps} x {args.latency_ms} ms)")
    print(f"{'throughput / bound':44s} {f'{ratio:.2f}':>28s}  >= 0.8")
    print(f"{'upstream calls in the drain':44s} {r['drain_calls']:>28d}  = {steps} x {args.lessons} = "
          f"{steps * args.lessons}")
    print(f"{'GET /api/jobs/{id} of the first job':44s} {r['checked']:>28s}")
    print(f"{'SIGKILL: jobs lost (' + str(args.kill_lessons) + ' enqueued)':44s} {lost:>28d}  0   "
          f"statuses {r['kill_statuses']}")
    print(f"{'SIGKILL: jobs claimed again':44s} {r['rerun']:>28d}")
    print(f"{'SIGKILL: calls paid twice / steps held':44s} {twice:>28s}  "
          f"paid twice <= held")
    print(f"{'SIGKILL: kill -> all finished':44s} {recovery:>28s}  (lease + sweep)")
    met = (p99 < 20 and ratio >= 0.8 and done == args.lessons and lost == 0 and paid_twice <= r["held"]
           and r["warm_ok"])
    print(f"jobs: enqueue p50 {p50:.1f}/p99 {p99:.1f} ms; {done} lessons {rate:.2f}/s = {ratio:.2f} of bound "
          f"{bound:.2f}; SIGKILL: {lost} lost, {paid_twice} paid twice (<= {r['held']} held)")
    print(ratio_line("lesson throughput / bound", ratio, ">= 0.8, enqueue p99 < 20 ms, 0 lost", met))
    return {"ok": met, "ratio": ratio, "enqueue_p50_ms": p50, "enqueue_p99_ms": p99, "lessons": done,
            "lessons_per_s": rate, "bound": bound, "lost": lost, "paid_twice": paid_twice, "held": r["held"],
            "drain_seconds": r["drain_seconds"], "recovery_s": r["recovery_s"]}


if __name__ == "__main__":
    main()
