"""Rate limits exact across 2 gunicorn instances x 3 workers sharing Redis; per process while Redis is down."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import ADMIN_KEY, FAKE_PROVIDER_KEY
from tests.integration.servers import Gunicorn
from tests.redis_helpers import MAIN_REDIS_URL, RedisServer, purge, unique_prefix

pytestmark = pytest.mark.gunicorn
KEYS = "alice:alice-key-0123456789,bob:bob-key-0123456789"


def env(fake_gemini, tmp_path, redis_url: str, prefix: str) -> dict:
    return {"APP_ENV": "testing", "API_KEYS": KEYS, "ADMIN_API_KEY": ADMIN_KEY,
            "GEMINI_API_KEY": FAKE_PROVIDER_KEY, "GEMINI_BASE_URL": fake_gemini.base_url,
            "CACHE_MODE": "redis", "CACHE_DIR": str(tmp_path / "cache"), "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": prefix, "RATE_LIMIT_AI": "30/minute",
            # Identical concurrent requests wait on one flight inside the bulkhead: wider than the threads, so
            # that only the rate limits refuse here.
            "GEMINI_MAX_CONCURRENCY": "64"}


def send(urls: list[str], key: str, n: int) -> list[int]:
    def one(i: int) -> int:
        return requests.post(f"{urls[i % len(urls)]}/api/create_subtopics", json={"topic": "Budget"},
                             headers={"X-API-Key": key}, timeout=30).status_code
    with ThreadPoolExecutor(12) as pool:
        return list(pool.map(one, range(n)))


def test_limit_is_exact_across_workers_and_instances(fake_gemini, tmp_path):
    prefix = unique_prefix("rl")
    settings = env(fake_gemini, tmp_path, MAIN_REDIS_URL, prefix)
    try:
        with Gunicorn(settings, workers=3, threads=8) as first, \
                Gunicorn({**settings, "CACHE_DIR": str(tmp_path / "b")}, workers=3, threads=8) as second:
            urls = [first.url, second.url]
            alice = send(urls, "alice-key-0123456789", 60)
            bob = send(urls, "bob-key-0123456789", 10)
    finally:
        purge(prefix)
    assert alice.count(200) == 30 and alice.count(429) == 30
    assert bob == [200] * 10


def test_redis_down_falls_back_to_per_process_limits_without_failing(fake_gemini, tmp_path):
    """While Redis is down each worker counts on its own: limits still hold, nothing fails."""
    with RedisServer() as redis_server:
        settings = {**env(fake_gemini, tmp_path, redis_server.url, "rl:"), "RATE_LIMIT_AI": "15/minute"}
        with Gunicorn(settings, workers=2, threads=8) as server:
            assert set(send([server.url], "alice-key-0123456789", 10)) == {200}
            redis_server.stop()
            started = time.monotonic()
            statuses = send([server.url], "alice-key-0123456789", 40)
            elapsed = time.monotonic() - started
            log = server.log_path.read_text()
    # The 10 counted on Redis are out of reach; each of the 2 workers allows 15 of its own.
    assert set(statuses) == {200, 429} and 15 <= statuses.count(200) <= 30
    assert elapsed < 10
    assert 1 <= log.count("redis unreachable: falling back to local state") <= 2  # once per worker
