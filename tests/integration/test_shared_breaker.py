"""One breaker per provider shared by every worker of two gunicorn instances through Redis."""
from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import count

import pytest
import requests

from tests.conftest import ADMIN_KEY, CLIENT_KEY, FAKE_PROVIDER_KEY
from tests.integration.servers import ROOT, Gunicorn, access_lines
from tests.redis_helpers import MAIN_REDIS_URL, purge, unique_prefix

pytestmark = pytest.mark.gunicorn
AUTH = {"X-API-Key": CLIENT_KEY}
ADMIN = {"X-Admin-Key": ADMIN_KEY}
_distinct = count()


def burst(urls: list[str], n: int) -> list[tuple[int, float, str]]:
    """n concurrent distinct analyze requests spread over the instances: (status, seconds, error code)."""
    def one(i: int) -> tuple[int, float, str]:
        started = time.monotonic()
        response = requests.post(f"{urls[i % len(urls)]}/api/analyze", json={"text": f"Text {next(_distinct)}."},
                                 headers=AUTH, timeout=30)
        body = response.json()
        return response.status_code, time.monotonic() - started, (body["error"] or {}).get("code", "")
    with ThreadPoolExecutor(min(n, 32)) as pool:
        return list(pool.map(one, range(n)))


def breaker_state(url: str) -> str:
    body = requests.get(f"{url}/api/circuit-breaker/state", headers=ADMIN, timeout=10).json()
    return body["data"]["breakers"]["gemini"]["state"]


@pytest.fixture
def instances(fake_gemini, tmp_path):
    prefix = unique_prefix("breaker")
    env = {"APP_ENV": "testing", "API_KEYS": CLIENT_KEY, "ADMIN_API_KEY": ADMIN_KEY,
           "GEMINI_API_KEY": FAKE_PROVIDER_KEY, "GEMINI_BASE_URL": fake_gemini.base_url,
           "GEMINI_TIMEOUT_SECONDS": "4", "CACHE_MODE": "redis", "REDIS_URL": MAIN_REDIS_URL,
           "REDIS_KEY_PREFIX": prefix, "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "3",
           "CIRCUIT_BREAKER_RECOVERY_TIMEOUT": "2", "CIRCUIT_BREAKER_HALF_OPEN_CALLS": "1",
           "RETRY_MAX_ATTEMPTS": "1", "RATE_LIMIT_AI": "100000/minute", "RATE_LIMIT_AI_PER_KEY": "100000/minute",
           "RATE_LIMIT_DEFAULT": "100000/minute",
           # Bursts may put all 8 threads of a worker on Gemini: only the breaker may refuse them here.
           "GEMINI_MAX_CONCURRENCY": "8"}
    first = Gunicorn({**env, "CACHE_DIR": str(tmp_path / "a")}, workers=4, threads=8).start()
    second = Gunicorn({**env, "CACHE_DIR": str(tmp_path / "b")}, workers=2, threads=8).start()
    yield first, second, env
    first.stop()
    second.stop()
    purge(prefix)


def test_breaker_opens_short_circuits_probes_boundedly_and_recovers(instances, fake_gemini):
    first, second, _ = instances
    urls = [first.url, second.url]
    fake_gemini.configure(error="500")
    results = [burst([first.url], 1)[0] for _ in range(3)]
    assert [code for _, _, code in results] == ["PROVIDER_ERROR"] * 3
    assert breaker_state(second.url) == "open"

    # Open: nothing reaches the provider, and a hanging provider cannot slow the refusals down.
    fake_gemini.configure(error="hang")
    calls_when_opened = fake_gemini.calls
    refused = burst(urls, 60)
    assert {code for _, _, code in refused} == {"PROVIDER_UNAVAILABLE"}
    assert fake_gemini.calls == calls_when_opened
    assert max(seconds for _, seconds, _ in refused) < 2.0, "a refusal waited on the upstream"

    # Half-open: 6 workers in 2 instances race, but only CIRCUIT_BREAKER_HALF_OPEN_CALLS calls go through.
    time.sleep(2.2)
    probing = burst(urls, 60)
    assert fake_gemini.calls - calls_when_opened <= 1
    assert sum(code == "PROVIDER_UNAVAILABLE" for _, _, code in probing) >= 59
    assert breaker_state(first.url) == "open"  # the hanging trial failed and re-opened it

    # Recovery: the provider heals, one trial succeeds, the breaker closes, traffic flows.
    fake_gemini.configure(error=None)
    time.sleep(2.2)
    deadline = time.monotonic() + 10
    while breaker_state(first.url) != "closed" and time.monotonic() < deadline:
        burst([first.url], 1)
        time.sleep(0.1)
    assert breaker_state(second.url) == "closed"
    assert {status for status, _, _ in burst(urls, 20)} == {200}


def test_force_open_and_reset_reach_every_worker_and_instance(instances, fake_gemini):
    first, second, env = instances
    urls = [first.url, second.url]
    assert requests.post(f"{first.url}/api/circuit-breaker/open", json={"name": "gemini"}, headers=ADMIN,
                         timeout=10).status_code == 200
    refused = burst(urls, 48)
    assert {code for _, _, code in refused} == {"PROVIDER_UNAVAILABLE"} and fake_gemini.calls == 0
    workers_refusing = {line["process"] for server in (first, second) for line in access_lines(server.log_path)
                        if line["route"] == "/api/analyze" and line["status"] == 503}
    assert len(workers_refusing) >= 3

    cli = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "breaker", "reset", "gemini"], cwd=ROOT,
                         env={**env, "PATH": "/usr/bin:/bin", "CACHE_DIR": "/tmp/unused-cli-cache"},
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0 and "gemini: closed" in cli.stdout, cli.stderr
    after_reset = burst(urls, 48)
    assert {status for status, _, _ in after_reset} == {200}, [r for r in after_reset if r[0] != 200][:3]
