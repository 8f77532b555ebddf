"""Kept-alive connections opened together spread evenly over gunicorn's workers (backend/serving/spread.py), after a
reload too; counted per worker as `ss -tnp` shows them."""
from __future__ import annotations

import http.client
import os
import signal
import threading

import pytest

from tests.conftest import CLIENT_KEY
from tests.integration.drain_load import serving_workers, wait_for
from tests.integration.servers import Gunicorn
from tests.integration.worker_connections import held_by_worker

pytestmark = pytest.mark.gunicorn
CONNECTIONS = 8


def env(directory) -> dict[str, str]:
    return {"APP_ENV": "testing", "API_KEYS": CLIENT_KEY, "CACHE_MODE": "memory", "CACHE_DIR": str(directory)}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Gunicorn(env(tmp_path_factory.mktemp("cache")), workers=2, threads=8) as instance:
        yield instance


def connect_together(server: Gunicorn, count: int) -> list[http.client.HTTPConnection]:
    """`count` keep-alive connections opened at the same moment, as a client's pool does, each answered once."""
    barrier = threading.Barrier(count)
    connections = [http.client.HTTPConnection("127.0.0.1", server.port, timeout=10) for _ in range(count)]
    statuses: list[int] = []

    def first_request(conn: http.client.HTTPConnection) -> None:
        barrier.wait()
        conn.request("GET", "/health")
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)

    threads = [threading.Thread(target=first_request, args=(conn,)) for conn in connections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert statuses == [200] * count
    return connections


def held(server: Gunicorn, workers: set[int], count: int) -> dict[int, int]:
    """The connections each worker holds, once all `count` are held (kept alive 5 s: well within that)."""
    return wait_for(lambda: (by := held_by_worker(server.port, workers)) and sum(by.values()) == count and by,
                    f"{count} connections held by the workers", timeout=4)


def split_of(server, workers: set[int]) -> dict[int, int]:
    """Open CONNECTIONS kept-alive connections together; how many each worker holds (then they are closed)."""
    connections = connect_together(server, CONNECTIONS)
    try:
        return held(server, workers, CONNECTIONS)
    finally:
        for conn in connections:
            conn.close()


def test_connections_opened_together_spread_evenly(server):
    by_worker = split_of(server, serving_workers(server, 2))
    assert all(3 <= n <= 5 for n in by_worker.values()), by_worker


def test_after_a_reload_the_new_workers_share_the_connections(server):
    old = serving_workers(server, 2)
    os.kill(server.process.pid, signal.SIGHUP)
    new = wait_for(lambda: (pids := serving_workers(server, 2)) and not pids & old and pids, "new workers")
    by_worker = split_of(server, new)
    assert all(3 <= n <= 5 for n in by_worker.values()), by_worker


def test_three_workers_share_them_too(tmp_path):
    with Gunicorn(env(tmp_path), workers=3, threads=8) as three:
        by_worker = split_of(three, serving_workers(three, 3))
    assert all(2 <= n <= 4 for n in by_worker.values()), by_worker
