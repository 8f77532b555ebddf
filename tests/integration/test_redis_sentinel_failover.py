"""Redis behind Sentinel, its primary killed (-9) under a steady request stream through a real gunicorn with two
workers: no request fails, and once the sentinels have promoted the replica every Redis user shares through it again
(the cache, the breaker, both rate limiters, the job queue)."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from itertools import count

import pytest
import redis
import requests

from backend.jobs.engine import JobEngine
from backend.settings import load_settings
from tests.conftest import ADMIN_KEY, CLIENT_KEY, FAKE_PROVIDER_KEY
from tests.integration.servers import Gunicorn, access_lines
from tests.integration.test_redis_outage import Stream
from tests.sentinel_helpers import SentinelDeployment, wait_for

pytestmark = pytest.mark.gunicorn
AUTH = {"X-API-Key": CLIENT_KEY}
ADMIN = {"X-Admin-Key": ADMIN_KEY}
PREFIX = "failover:"
_distinct = count()


@pytest.fixture
def deployment(tmp_path):
    with SentinelDeployment(tmp_path / "sentinel") as running:
        yield running


@pytest.fixture
def server(deployment, fake_gemini, tmp_path):
    env = {"APP_ENV": "testing", "API_KEYS": f"tester:{CLIENT_KEY}", "ADMIN_API_KEY": ADMIN_KEY,
           "GEMINI_API_KEY": FAKE_PROVIDER_KEY, "GEMINI_BASE_URL": fake_gemini.base_url,
           # redis_only: a worker's fallback is its own memory, so a hit in the other worker, or a breaker seen open
           # by both, can only come through Redis.
           "CACHE_MODE": "redis_only", "REDIS_URL": deployment.url(), "REDIS_KEY_PREFIX": PREFIX,
           "RATE_LIMIT_AI": "100000/minute", "RATE_LIMIT_AI_PER_KEY": "100000/minute",
           "RATE_LIMIT_DEFAULT": "100000/minute", "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "3",
           "CIRCUIT_BREAKER_RECOVERY_TIMEOUT": "300", "RETRY_MAX_ATTEMPTS": "1", "GEMINI_MAX_CONCURRENCY": "16"}
    gunicorn = Gunicorn(env, workers=2, threads=8, log_path=tmp_path / "g.log").start(timeout=60)  # a busy machine
    yield gunicorn
    gunicorn.stop()


def served_by(server: Gunicorn, responses: list[requests.Response]) -> set[int]:
    """The worker processes that answered these responses (their request ids in the access log)."""
    ids = {r.headers["X-Request-ID"] for r in responses}
    return {line["process"] for line in access_lines(server.log_path) if line.get("request_id") in ids}


def burst(url: str, body: dict | None, n: int = 24, headers: dict | None = None) -> list[requests.Response]:
    """n concurrent analyze requests: the same body, or a new text each when body is None."""
    def one(_: int) -> requests.Response:
        payload = body if body is not None else {"text": f"Failover text {next(_distinct)}."}
        return requests.post(f"{url}/api/analyze", json=payload, headers={**AUTH, **(headers or {})}, timeout=30)
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def code(response: requests.Response) -> str:
    return (response.json()["error"] or {}).get("code", "") if response.status_code != 200 else ""


def cache_shared(server: Gunicorn, fake_gemini) -> bool:
    """A new entry, one upstream call: a hit in both workers (only through Redis: each keeps its own memory)."""
    body, calls = {"text": f"Shared after the failover {next(_distinct)}."}, fake_gemini.calls
    first, rest = burst(server.url, body, n=1), burst(server.url, body)
    return (first[0].headers["X-Cache"] == "MISS" and fake_gemini.calls == calls + 1
            and {r.headers["X-Cache"] for r in rest} == {"HIT"} and len(served_by(server, rest)) == 2)


def limiter_counts(server: Gunicorn, primary: redis.Redis) -> bool:
    """Whether flask-limiter's windows (admin routes; it retries its storage after 1, 2, 4 ... s) grow there."""
    def entries() -> int:
        return sum(primary.llen(key) for key in primary.scan_iter(match=f"LIMITS*{PREFIX}ratelimit*"))
    before = entries()
    for _ in range(4):
        requests.get(f"{server.url}/api/cache/stats", headers=ADMIN, timeout=10)
    return entries() > before


def test_a_killed_primary_fails_no_request_and_sharing_resumes_on_the_promoted_replica(deployment, server,
                                                                                         fake_gemini):
    jobs = JobEngine(load_settings({"REDIS_URL": deployment.url(), "REDIS_KEY_PREFIX": PREFIX}))
    jobs.enqueue("lesson", "job-before")  # its pooled connection goes to the primary about to die
    with Stream(server.url) as stream:
        wait_for(lambda: len(stream.results) >= 40, 30, "the stream to get going")
        killed_at, old = time.monotonic(), deployment.kill_primary()
        new = deployment.wait_for_failover(old)
        promoted_at, primary = time.monotonic(), deployment.client(new)
        entries_at_promotion = len(list(primary.scan_iter(match=f"{PREFIX}cache:analyze:*")))
        wait_for(lambda: sum(r[0] >= promoted_at for r in list(stream.results)) >= 60, 60, "requests after it")
    results = list(stream.results)

    wait_for(lambda: cache_shared(server, fake_gemini), 30, "an entry cached by one worker to hit in both")
    entries_after = len(list(primary.scan_iter(match=f"{PREFIX}cache:analyze:*")))
    burst(server.url, None, n=2, headers={"X-User-ID": "after-failover"})
    ai_window = primary.exists(f"{PREFIX}ratelimit:ai:key:tester|after-failover")
    wait_for(lambda: limiter_counts(server, primary), 40, "flask-limiter to count on the new primary", interval=0.5)

    fake_gemini.configure(error="500")
    failures = [code(r) for r in burst(server.url, None, n=3)]
    calls_when_opened, refused = fake_gemini.calls, []

    def both_workers_refuse() -> bool:  # the kernel may hand a whole burst to one worker: until both answered
        refused.extend(burst(server.url, None))
        return len(served_by(server, refused)) == 2
    wait_for(both_workers_refuse, 30, "both workers to answer while the breaker is open")
    try:
        wait_for(lambda: jobs.enqueue("lesson", "job-after") or True, 30, "an enqueue through the new primary")
    finally:
        jobs.huey.storage.pool.disconnect()
    queued = redis.Redis(port=new).lrange(f"{PREFIX}jobs:queue", 0, -1)  # pickled messages: bytes

    during = [r for r in results if killed_at <= r[0] < promoted_at]
    assert len(during) >= 10 and sum(r[0] >= promoted_at for r in results) >= 60
    failed = [r for r in results if r[1] != 200]
    assert failed == [], f"{len(failed)} of {len(results)} requests failed through the failover"
    assert entries_after > entries_at_promotion, "no cache entry was written to the promoted replica"
    assert ai_window, "the AI rate limit was not counted on the new primary"
    assert failures == ["PROVIDER_ERROR"] * 3
    assert {code(r) for r in refused} == {"PROVIDER_UNAVAILABLE"} and fake_gemini.calls == calls_when_opened
    assert primary.exists(f"{PREFIX}breaker:gemini")
    assert any(b"job-before" in m for m in queued) and any(b"job-after" in m for m in queued)
