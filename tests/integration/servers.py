"""Real gunicorn instances for multi-worker tests: start on a free loopback port, wait until healthy, stop."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """One gunicorn master with N gthread workers, configured by environment variables."""

    def __init__(self, env: dict[str, str], *, workers: int = 2, threads: int = 8, log_path: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # No drain window unless a test asks (test_draining.py): nothing balances load here, and each stop would wait.
        self.env = {**_base_env(), "SHUTDOWN_DRAIN_SECONDS": "0", **{k: str(v) for k, v in env.items()},
                    "WEB_CONCURRENCY": str(workers), "WEB_THREADS": str(threads), "PORT": str(self.port),
                    "HOST": "127.0.0.1"}
        self.workers = workers
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="gunicorn-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "Gunicorn":
        """Start and wait until every worker has built its app and /health answers."""
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT, env=self.env, stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}; see {self.log_path}")
            try:
                if self.ready_workers() >= self.workers and \
                        requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not become healthy in {timeout}s")

    def ready_workers(self) -> int:
        """How many workers have logged that they are ready (restarted workers count again)."""
        return self.log_path.read_text(errors="replace").count("worker ready")

    def stop(self) -> None:
        """Stop gracefully, then by force."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def __enter__(self) -> "Gunicorn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _base_env() -> dict[str, str]:
    """The parent's environment minus anything that would reconfigure the service under test."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "VIRTUAL_ENV", "PYTHONPATH")
    return {k: v for k, v in os.environ.items() if k in keep}


def access_lines(log_path: Path) -> list[dict]:
    """The JSON access lines gunicorn's workers wrote to the log."""
    import json

    lines = []
    for raw in log_path.read_text(errors="replace").splitlines():
        if raw.startswith("{") and '"backend.access"' in raw:
            lines.append(json.loads(raw))
    return lines
