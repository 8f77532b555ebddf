"""Redis stopped under a steady request stream: no failed request, no slow one, sharing resumes after restart."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from tests.conftest import ADMIN_KEY, CLIENT_KEY, FAKE_PROVIDER_KEY
from tests.integration.servers import Gunicorn
from tests.redis_helpers import RedisServer

pytestmark = pytest.mark.gunicorn
AUTH = {"X-API-Key": CLIENT_KEY}


class Stream:
    """Clients sending a mix of repeated and new requests until stopped, recording status and latency."""

    def __init__(self, url: str, clients: int = 4):
        self.url, self.clients = url, clients
        self.results: list[tuple[float, int, float, str]] = []  # (sent at, status, seconds, X-Cache)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._counter = 0

    def _client(self, index: int) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            with self._lock:
                self._counter += 1
                n = self._counter
            body = {"text": f"Sentence number {n % 7} for the stream."} if n % 3 else {"text": f"New text {n}."}
            started = time.monotonic()
            try:
                response = session.post(f"{self.url}/api/analyze", json=body, headers=AUTH, timeout=10)
                status, cache = response.status_code, response.headers.get("X-Cache", "")
            except requests.RequestException:
                status, cache = 0, ""
            with self._lock:
                self.results.append((started, status, time.monotonic() - started, cache))

    def __enter__(self) -> "Stream":
        self._pool = ThreadPoolExecutor(self.clients)
        for i in range(self.clients):
            self._pool.submit(self._client, i)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True)


@pytest.mark.parametrize("mode", ["redis", "redis_only"])
def test_redis_outage_fails_no_request_and_sharing_resumes(fake_gemini, tmp_path, mode):
    with RedisServer() as redis_server:
        env = {"APP_ENV": "testing", "API_KEYS": CLIENT_KEY, "ADMIN_API_KEY": ADMIN_KEY,
               "GEMINI_API_KEY": FAKE_PROVIDER_KEY, "GEMINI_BASE_URL": fake_gemini.base_url,
               "CACHE_MODE": mode, "CACHE_DIR": str(tmp_path / "cache"), "REDIS_URL": redis_server.url,
               "RATE_LIMIT_AI": "100000/minute", "RATE_LIMIT_AI_PER_KEY": "100000/minute"}
        with Gunicorn(env, workers=2, threads=8) as server, Stream(server.url) as stream:
            time.sleep(1.5)
            redis_server.stop()
            stopped_at = time.monotonic()
            time.sleep(3.0)
            health = requests.get(f"{server.url}/api/health", timeout=5).json()["data"]
            redis_server.start()
            restarted_at = time.monotonic()
            time.sleep(4.0)  # longer than the probe interval: every worker reconnects
        results = list(stream.results)
        shared = redis.Redis.from_url(redis_server.url)
        cache_keys = [k for k in shared.scan_iter(match="backend-ai:cache:analyze:*")]
    assert health["components"]["cache"]["fallback_active"] is True and health["status"] == "degraded"
    during = [r for r in results if stopped_at <= r[0] < restarted_at]
    after = [r for r in results if r[0] >= restarted_at + 2.5]
    assert len(during) > 50 and len(after) > 20
    failed = [r for r in results if r[1] != 200]
    assert failed == [], f"{len(failed)} failed requests"
    assert max(r[2] for r in results) < 1.0, "a request waited on Redis"
    assert cache_keys, "nothing was written to Redis after it came back: sharing did not resume"
