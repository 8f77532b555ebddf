"""Load for the draining tests: keep-alive clients, a load balancer polling readiness, and gunicorn's workers."""
from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, TypeVar

import requests

from tests.conftest import CLIENT_KEY
from tests.integration.servers import Gunicorn

AUTH = {"X-API-Key": CLIENT_KEY, "X-User-ID": "alice"}
CACHED_TEXT = "I recieve many letter every days."
T = TypeVar("T")


@dataclass
class Outcome:
    """One request of the load: what it was, when it started, how it ended (status None and no error: in flight)."""

    slow: bool
    started: float
    status: int | None = None
    error: str | None = None
    connection: str | None = None
    request_id: str | None = None

    @property
    def finished(self) -> bool:
        return self.status is not None or self.error is not None

    @property
    def failed(self) -> bool:
        return self.error is not None or (self.status is not None and self.status != 200)


class Load:
    """`clients` threads, each with its own keep-alive session, sending in turn a cached analysis and an uncached
    one (a fresh text: a call to the fake Gemini, as slow as it is told), until stopped or, given `routed`, until
    that event is cleared (the balancer no longer routes to this instance)."""

    def __init__(self, url: str, clients: int, routed: threading.Event | None = None) -> None:
        self.url, self.routed = url, routed
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self, timeout: float = 60.0) -> None:
        """Send nothing more and wait for the requests in flight to end."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        assert not any(thread.is_alive() for thread in self._threads), "a client is still waiting for an answer"

    def _client(self, number: int) -> None:
        session = requests.Session()
        turn = 0
        while not self._stop.is_set() and (self.routed is None or self.routed.is_set()):
            slow = turn % 2 == 1
            text = f"I recieve letter {uuid.uuid4().hex[:8]} from client {number}." if slow else CACHED_TEXT
            outcome = Outcome(slow, time.monotonic())
            with self._lock:
                self.outcomes.append(outcome)
            try:
                response = session.post(f"{self.url}/api/analyze", json={"text": text}, headers=AUTH, timeout=60)
                outcome.connection = response.headers.get("Connection")
                outcome.request_id = response.headers.get("X-Request-ID")
                outcome.status = response.status_code
            except requests.RequestException as exc:
                outcome.error = repr(exc)
            turn += 1
        session.close()

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def in_flight(self, *, slow: bool | None = None) -> list[Outcome]:
        return [o for o in self.snapshot() if not o.finished and (slow is None or o.slow == slow)]

    def finished_since(self, moment: float) -> list[Outcome]:
        """Requests started at or after `moment` that have ended."""
        return [o for o in self.snapshot() if o.started >= moment and o.finished]

    def failures(self) -> list[Outcome]:
        return [o for o in self.snapshot() if o.failed]


class Balancer:
    """A load balancer's health check: polls /health/ready on a fresh connection each time and stops routing to
    the instance (clears `routing`) at the first 503, keeping that answer."""

    def __init__(self, url: str, every: float = 0.05) -> None:
        self.url, self.every = url, every
        self.routing = threading.Event()
        self.routing.set()
        self.statuses: list[int] = []
        self.not_ready: requests.Response | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> Balancer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                response = requests.get(f"{self.url}/health/ready", headers={"Connection": "close"}, timeout=2)
            except requests.RequestException:
                response = None  # a failed check: a balancer would count it, and needs a 503 to act here
            if response is not None:
                self.statuses.append(response.status_code)
                if response.status_code == 503:
                    self.not_ready = response
                    self.routing.clear()
                    return
            self._stop.wait(self.every)


def wait_for(condition: Callable[[], T], what: str, timeout: float = 30.0) -> T:
    """Poll until `condition()` is truthy (and return it); fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def worker_pids(server: Gunicorn) -> set[int]:
    """The master's children now."""
    assert server.process is not None
    out = subprocess.run(["ps", "--ppid", str(server.process.pid), "-o", "pid="], capture_output=True, text=True)
    return {int(pid) for pid in out.stdout.split()}


def ready_pids(server: Gunicorn) -> set[int]:
    """Every worker that has logged that it takes requests (config/gunicorn.conf.py post_worker_init)."""
    return {int(pid) for pid in re.findall(r"worker ready \(pid (\d+)\)", server.log_path.read_text(errors="replace"))}


def serving_workers(server: Gunicorn, count: int) -> set[int]:
    """Wait until exactly `count` workers run and all of them are ready; their pids."""
    def settled() -> set[int]:
        pids = worker_pids(server)
        return pids if len(pids) == count and pids <= ready_pids(server) else set()

    return wait_for(settled, f"{count} ready workers")


def gunicorn_messages(server: Gunicorn, starting: str) -> dict[int, list[str]]:
    """gunicorn's own log lines (JSON) that start with `starting`, by the process that wrote them."""
    found: dict[int, list[str]] = {}
    for raw in server.log_path.read_text(errors="replace").splitlines():
        if raw.startswith("{") and '"gunicorn.error"' in raw:
            line = json.loads(raw)
            if line["message"].startswith(starting):
                found.setdefault(int(line["process"]), []).append(line["message"])
    return found
