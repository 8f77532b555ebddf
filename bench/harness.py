"""Shared parts of the service benchmarks: fakes and gunicorn as processes, load generators, figures."""
from __future__ import annotations

import argparse
import atexit
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests

from backend.settings import Settings
from tests.integration.servers import ROOT, Gunicorn, free_port

CLIENT_KEY = "bench-client-key-0123456789abcdef"
ADMIN_KEY = "bench-admin-key-0123456789abcdef"
# Far above what the benchmarks send per user, so nobody is refused, yet every request goes through the limiter.
HIGH_LIMIT = "1000000/minute"
USERS = 1000  # X-User-ID values cycled through: the limiter keeps one short window per user, as in production


def default_layout() -> tuple[int, int]:
    """workers x threads: WEB_CONCURRENCY / WEB_THREADS from the environment, else the service's defaults."""
    fields = Settings.model_fields
    return (int(os.environ.get("WEB_CONCURRENCY", fields["web_concurrency"].default)),
            int(os.environ.get("WEB_THREADS", fields["web_threads"].default)))


def layout_parser(description: str | None) -> argparse.ArgumentParser:
    """An argument parser with --workers and --threads, defaulting to the service's own layout."""
    workers, threads = default_layout()
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--workers", type=int, default=workers)
    parser.add_argument("--threads", type=int, default=threads)
    return parser


def need_wrk() -> str:
    """The path of wrk, installing Debian's package when missing and allowed to; a clear exit otherwise."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: installing Debian's wrk package", flush=True)
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]
        subprocess.run([*apt, "update", "-qq"], check=False)
        subprocess.run([*apt, "install", "-y", "-qq", "--no-install-recommends", "wrk"], check=False,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, stdout=subprocess.DEVNULL)
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("these benchmarks need wrk as load generator: `sudo apt-get install wrk` (Debian/Ubuntu)")
    return found


def answers_within(url: str, seconds: float, process: subprocess.Popen | None = None) -> bool:
    """Whether GET url answers (any status) within seconds; False at once if ``process`` exits first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (process is None or process.poll() is None):
        try:
            requests.get(url, timeout=1)
            return True
        except requests.RequestException:
            time.sleep(0.05)
    return False


class FakeProcess:
    """A fake provider in its own process, so its CPU never competes with the load generator's GIL."""

    def __init__(self, module: str, **options):
        self.port = free_port()
        args = [a for k, v in options.items() for a in (f"--{k.replace('_', '-')}", str(v))]
        self.process = subprocess.Popen([sys.executable, "-m", module, "--port", str(self.port), *args],
                                        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        if not answers_within(f"{self.base}/_fake/calls", 20, self.process):
            self.stop()
            raise RuntimeError(f"{module} did not start")

    def calls(self) -> int:
        return int(requests.get(f"{self.base}/_fake/calls", timeout=5).json()["calls"])

    def stats(self) -> dict:
        return requests.get(f"{self.base}/_fake/calls", timeout=5).json()

    def configure(self, **settings) -> None:
        requests.post(f"{self.base}/_fake/config", json=settings, timeout=5).raise_for_status()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


class PrivateRedis:
    """A throwaway redis-server on a free port: others' keys, load and FLUSHALLs on a shared Redis stay out."""

    def __init__(self):
        binary = shutil.which("redis-server")
        if not binary:
            raise SystemExit("these benchmarks need redis-server: `sudo apt-get install redis-server`, or `make bench`")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_ready()

    def wait_ready(self) -> None:
        import redis

        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


_redis: PrivateRedis | None = None


def redis_url() -> str:
    """BENCH_REDIS_URL when set, else the URL of this process's private redis-server (started on first use)."""
    global _redis
    if os.environ.get("BENCH_REDIS_URL"):
        return os.environ["BENCH_REDIS_URL"]
    if _redis is None or _redis.process.poll() is not None:
        _redis = PrivateRedis()
        atexit.register(_redis.stop)
    return _redis.url


def service_env(gemini: FakeProcess | None, *, redis: str | None = "default", azure: FakeProcess | None = None,
                **overrides) -> dict[str, str]:
    """Production settings with auth, limits, JSON logs, Redis (under a fresh key prefix) and the fakes."""
    env = {"APP_ENV": "production", "API_KEYS": f"bench:{CLIENT_KEY}", "ADMIN_API_KEY": ADMIN_KEY,
           "RATE_LIMIT_AI": HIGH_LIMIT, "RATE_LIMIT_AI_PER_KEY": HIGH_LIMIT, "RATE_LIMIT_DEFAULT": HIGH_LIMIT,
           "LOG_FORMAT": "json", "LOG_LEVEL": "INFO", "SHUTDOWN_DRAIN_SECONDS": "0",  # no balancer to drain from
           "REDIS_KEY_PREFIX": f"bench-{uuid.uuid4().hex[:10]}:",
           "CACHE_DIR": tempfile.mkdtemp(prefix="bench-cache-")}
    if redis:
        env["REDIS_URL"] = redis_url() if redis == "default" else redis
    if gemini is not None:
        env.update(GEMINI_API_KEY="fake-key", GEMINI_BASE_URL=gemini.base)
    if azure is not None:
        env.update(AZURE_SPEECH_KEY="fake-key", AZURE_SPEECH_HOST=f"ws://127.0.0.1:{azure.port}")
    env.update({k: str(v) for k, v in overrides.items()})
    return env


@contextmanager
def service(env: dict[str, str], workers: int, threads: int) -> Iterator[Gunicorn]:
    """The real service under gunicorn; afterwards its log, cache directory and Redis keys are removed."""
    server = Gunicorn(env, workers=workers, threads=threads).start(timeout=60)
    try:
        yield server
    finally:
        server.stop()
        if os.environ.get("BENCH_KEEP_LOGS"):
            print(f"  (service log kept: {server.log_path})")
        else:
            server.log_path.unlink(missing_ok=True)
        shutil.rmtree(env.get("CACHE_DIR", ""), ignore_errors=True)
        # config/gunicorn.conf.py keeps each port's worker metrics here; nothing reads them once it stopped.
        shutil.rmtree(Path(tempfile.gettempdir()) / f"backend-ai-metrics-{server.port}", ignore_errors=True)
        if env.get("REDIS_URL"):
            drop_redis_prefix(env["REDIS_URL"], env["REDIS_KEY_PREFIX"])


def drop_redis_prefix(url: str, prefix: str) -> None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=2)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start:start + 500])
    except redis.RedisError:
        pass  # a Redis the benchmark stopped on purpose holds nothing worth removing


def auth_headers(user: int = 0) -> dict[str, str]:
    return {"X-API-Key": CLIENT_KEY, "X-User-ID": f"user-{user % USERS}", "Content-Type": "application/json"}


def learner_text(i: int) -> str:
    """A distinct, plausible learner text per index (distinct texts are distinct cache keys)."""
    return (f"Yesterday I go to the market number {i} and buyed three apple. "
            f"My friend say me that the prices is higher than last week, so we was surprised.")


def worker_pids(server: Gunicorn) -> list[int]:
    path = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of these processes so far."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def machine() -> str:
    """CPU model, cores and memory of the machine the figures come from."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    mem = next((int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0)
    return (f"{model}, {os.cpu_count()} cores, {mem / 1024:.0f} GiB RAM, Linux {platform.release()}, "
            f"Python {platform.python_version()}")


def ratio_line(name: str, value: float, target: str, met: bool) -> str:
    """The last line every benchmark prints: its ratio and whether it meets the target."""
    return f"RATIO {name} = {value:.3g}  (target {target}: {'met' if met else 'NOT met'})"
