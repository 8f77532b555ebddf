"""Counters survive a worker's death: its samples stay in the multiprocess directory, its gauges are marked."""
from __future__ import annotations

import os
import signal
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.servers import Gunicorn, access_lines

pytestmark = pytest.mark.gunicorn
ROUTE = "/health/cache"


def served_count(url: str) -> float:
    """http_requests_total for ROUTE (GET, 200) in one /metrics answer."""
    body = requests.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels.get("route") == ROUTE:
                return sample.value
    return 0.0


def test_counters_survive_a_killed_worker(tmp_path):
    env = {"APP_ENV": "testing", "CACHE_MODE": "disk", "CACHE_DIR": str(tmp_path / "cache")}
    with Gunicorn(env, workers=2, threads=4) as server:
        for _ in range(20):
            assert requests.get(f"{server.url}{ROUTE}", timeout=10).status_code == 200
        assert served_count(server.url) == 20
        victim = next(line["process"] for line in access_lines(server.log_path) if line["route"] == ROUTE)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while server.ready_workers() < 3 and time.monotonic() < deadline:  # gunicorn boots a replacement
            time.sleep(0.2)
        assert server.ready_workers() >= 3
        counts = {served_count(server.url) for _ in range(10)}
    assert counts == {20.0}, "a dead worker's requests vanished from the totals"
