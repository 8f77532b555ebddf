"""Headless Locust run (bench/locustfile.py) against the service under gunicorn with the fakes, or a given host."""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from bench.harness import CLIENT_KEY, FakeProcess, default_layout, ratio_line, service, service_env
from tests.integration.servers import ROOT

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
REQUIREMENTS = ROOT / "requirements-bench.txt"


def need_locust() -> None:
    """Install the pinned Locust from requirements-bench.txt when missing; a clear exit when that fails."""
    if subprocess.run([sys.executable, "-c", "import locust"], capture_output=True).returncode == 0:
        return
    print(f"locust is missing: installing {REQUIREMENTS.name}", flush=True)
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                "-r", str(REQUIREMENTS)], capture_output=True, text=True)
    if installed.returncode != 0:
        raise SystemExit(f"the load test needs Locust: `{sys.executable} -m pip install -r {REQUIREMENTS}` "
                         f"failed:\n{installed.stderr[-2000:]}")


def run_locust(host: str, api_key: str, users: int, seconds: int, max_error_ratio: float, max_p95_ms: float) -> dict:
    """Run Locust in its own process (it monkey-patches with gevent) and read its CSV totals."""
    prefix = Path(tempfile.mkdtemp(prefix="bench-locust-")) / "run"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users),
               "-r", str(max(1, users // 2)), "-t", f"{seconds}s", "--host", host, "--only-summary",
               "--csv", str(prefix), "--api-key", api_key, "--max-error-ratio", str(max_error_ratio),
               "--max-p95-ms", str(max_p95_ms), "--seed", "1", "--stop-timeout", "10"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    output = done.stdout + done.stderr
    rows = {}
    stats = prefix.with_name("run_stats.csv")
    if stats.exists():
        with stats.open() as f:
            rows = {row["Name"]: row for row in csv.DictReader(f)}
    shutil.rmtree(prefix.parent, ignore_errors=True)
    verdict = [line for line in output.splitlines() if line.startswith(("LOCUST_VERDICT", "LOCUST_RESULT"))]
    if not rows:
        print(output[-3000:])
    return {"exit": done.returncode, "rows": rows, "verdict": verdict, "command": command}


def main(argv: list[str] | None = None) -> dict:
    default_workers, default_threads = default_layout()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", help="a running deployment (then nothing is started here)")
    parser.add_argument("--api-key", default=os.environ.get("LOCUST_API_KEY", ""))
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--max-error-ratio", type=float, default=0.01)
    parser.add_argument("--max-p95-ms", type=float, default=3000)
    parser.add_argument("--workers", type=int, default=default_workers)
    parser.add_argument("--threads", type=int, default=default_threads)
    args = parser.parse_args(argv)
    need_locust()
    limits = (args.max_error_ratio, args.max_p95_ms)
    if args.host:
        r = run_locust(args.host, args.api_key, args.users, args.seconds, *limits)
        summary = None
        where = args.host
    else:
        # Simulated providers with plausible latencies (Gemini 300 ms, Azure Speech 200 ms), as in `make demo`.
        gemini = FakeProcess("tests.fakes.gemini", latency_ms=300)
        azure = FakeProcess("tests.fakes.azure_speech", latency_ms=200)
        try:
            with service(service_env(gemini, azure=azure), args.workers, args.threads) as server:
                r = run_locust(server.url, CLIENT_KEY, args.users, args.seconds, *limits)
                summary = requests.get(f"{server.url}/api/metrics", timeout=10).json().get("data", {})
                upstream = gemini.calls() + int(azure.stats().get("calls", 0))
        finally:
            gemini.stop()
            azure.stop()
        where = f"gunicorn {args.workers}x{args.threads} with the fakes (Gemini 300 ms, Azure Speech 200 ms)"
    print(f"locust {args.users} users (wait 1-3 s), {args.seconds} s, Zipf payload mix, against {where}")
    previous_words = [""] + r["command"][:-1]
    shown = [("$API_KEY" if previous == "--api-key" else c)
             for previous, c in zip(previous_words, r["command"], strict=True)]
    print("  command: python " + " ".join(shown[1:]))
    for name, row in r["rows"].items():
        print(f"  {row['Type'] or '':5s} {name:22s} {int(row['Request Count']):6d} req  {int(row['Failure Count']):4d} "
              f"fail  p50 {row['50%']:>5s} ms  p95 {row['95%']:>5s} ms  p99 {row['99%']:>5s} ms  "
              f"{float(row['Requests/s']):6.1f} req/s")
    if summary is not None:
        print(f"  upstream calls made by the service: {upstream}")
    for line in r["verdict"]:
        print("  " + line)
    total = r["rows"].get("Aggregated", {})
    count = int(total.get("Request Count") or 0)
    error_ratio = int(total.get("Failure Count") or 0) / max(1, count)
    p95 = float(total.get("95%") or "nan") if total.get("95%") not in (None, "N/A") else float("nan")
    met = r["exit"] == 0 and count > 0
    print(ratio_line("locust p95 / max p95", p95 / args.max_p95_ms,
                     f"error ratio <= {args.max_error_ratio} and p95 <= {args.max_p95_ms:g} ms", met))
    return {"p95_ms": p95, "error_ratio": error_ratio, "requests": count, "ratio": p95 / args.max_p95_ms, "ok": met}


if __name__ == "__main__":
    main()
