"""The cache disk is optional: a disk that cannot be opened or written leaves the service up, degraded and honest."""
from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
import time

import pytest
import requests

from tests.conftest import ADMIN_KEY, CLIENT_KEY, FAKE_PROVIDER_KEY
from tests.envelope import assert_error, assert_ok
from tests.redis_helpers import MAIN_REDIS_URL, purge, unique_prefix


def _serves_from_memory(client, auth, fake_gemini, topic: str) -> None:
    """A new request is answered, and its repeat is a cache hit (the memory tier) without a second upstream call."""
    calls = fake_gemini.calls
    first = client.post("/api/create_subtopics", json={"topic": topic}, headers=auth)
    assert_ok(first)
    again = client.post("/api/create_subtopics", json={"topic": topic}, headers=auth)
    assert_ok(again)
    assert again.headers["X-Cache"] == "HIT" and fake_gemini.calls == calls + 1


def _reports_a_failing_disk(client) -> None:
    assert_ok(client.get("/health/ready"))
    health = assert_ok(client.get("/api/health"))
    assert health["status"] == "degraded" and health["components"]["cache"]["disk"] == "failing"
    assert any("cache disk" in reason for reason in health["reasons"])
    assert 'service_health_status{service="cache"} 0.5' in client.get("/metrics").get_data(as_text=True)


def _admin_changes_name_the_disk(client, admin) -> None:
    for response in (client.post("/api/cache/clear", headers=admin),
                     client.post("/api/circuit-breaker/open", json={"name": "gemini"}, headers=admin)):
        message = assert_error(response, 503, "SERVICE_UNAVAILABLE")["message"]
        assert "cache disk" in message and "Redis" not in message


@pytest.fixture
def redis_prefix():
    prefix = unique_prefix("disk-failure")
    yield prefix
    purge(prefix)


@pytest.mark.parametrize("mode", ["disk", "redis"])
def test_a_cache_dir_that_cannot_be_created_leaves_the_service_up_and_degraded(make_app, auth, admin, fake_gemini,
                                                                               tmp_path, redis_prefix, mode):
    (tmp_path / "a-file").write_text("in the way")
    client = make_app(CACHE_MODE=mode, CACHE_DIR=str(tmp_path / "a-file" / "cache"), REDIS_URL=MAIN_REDIS_URL,
                      REDIS_KEY_PREFIX=redis_prefix).test_client()
    _serves_from_memory(client, auth, fake_gemini, "Unwritable disk")
    _reports_a_failing_disk(client)
    if mode == "disk":
        _admin_changes_name_the_disk(client, admin)
    else:  # Redis is where clears and breaker changes land: the disk does not matter to them
        assert_ok(client.post("/api/cache/clear", headers=admin))
        assert_ok(client.post("/api/circuit-breaker/open", json={"name": "gemini"}, headers=admin))


def _fill(store) -> None:
    """Make the SQLite database behind a disk store full for this thread's connection (the one the test client's
    requests use): no page may be added, and rows are added until not even a one-byte one fits."""
    connection = store.cache._con
    connection.execute("PRAGMA max_page_count = 1")  # clamps to the current size
    for size in (2000, 200, 20, 1):
        for i in range(10_000):
            try:
                store.cache.set(f"filler:{size}:{i}", "x" * size)
            except sqlite3.OperationalError as exc:
                assert "full" in str(exc)
                break


def _free(store) -> None:
    store.cache._con.execute("PRAGMA max_page_count = 1073741823")


def test_a_disk_that_fills_while_serving_fails_no_request_and_says_so(make_app, auth, admin, fake_gemini):
    app = make_app(CACHE_MODE="disk")
    client, shared = app.test_client(), app.extensions["backend"].shared
    assert_ok(client.post("/api/create_subtopics", json={"topic": "Before"}, headers=auth))
    assert assert_ok(client.get("/api/health"))["components"]["cache"]["disk"] == "ok"

    for store in (shared.disk, shared.disk_state):
        _fill(store)
    _serves_from_memory(client, auth, fake_gemini, "Full disk")
    _reports_a_failing_disk(client)
    _admin_changes_name_the_disk(client, admin)

    for store in (shared.disk, shared.disk_state):
        _free(store)
    time.sleep(2.1)  # the disk store's probe interval: it is tried again
    assert assert_ok(client.get("/api/health"))["components"]["cache"]["disk"] == "ok"
    assert_ok(client.post("/api/cache/clear", headers=admin))


@pytest.fixture
def full_filesystem(tmp_path):
    """A 64 KiB tmpfs filled to the last byte (needs root, as CI has; skipped elsewhere)."""
    mount_point = tmp_path / "full"
    mount_point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mount_point)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        with open(mount_point / "filler", "wb", buffering=0) as filler:
            try:
                while True:
                    filler.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


@pytest.mark.gunicorn
def test_gunicorn_boots_and_serves_with_its_cache_dir_on_a_full_filesystem(fake_gemini, full_filesystem):
    from tests.integration.servers import Gunicorn

    env = {"APP_ENV": "testing", "API_KEYS": CLIENT_KEY, "ADMIN_API_KEY": ADMIN_KEY,
           "GEMINI_API_KEY": FAKE_PROVIDER_KEY, "GEMINI_BASE_URL": fake_gemini.base_url,
           "CACHE_MODE": "disk", "CACHE_DIR": str(full_filesystem / "cache")}
    with Gunicorn(env, workers=1, threads=4) as server:  # before: "Worker failed to boot"
        answered = requests.post(f"{server.url}/api/create_subtopics", json={"topic": "Full"},
                                 headers={"X-API-Key": CLIENT_KEY}, timeout=10)
        health = requests.get(f"{server.url}/api/health", timeout=5).json()["data"]
        cleared = requests.post(f"{server.url}/api/cache/clear", headers={"X-Admin-Key": ADMIN_KEY}, timeout=5)
    assert answered.status_code == 200
    assert health["status"] == "degraded" and health["components"]["cache"]["disk"] == "failing"
    assert cleared.status_code == 503 and "cache disk" in cleared.json()["error"]["message"]
