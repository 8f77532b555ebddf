"""Draining under load, through real gunicorn (2 workers, config/gunicorn.conf.py) against the fake Gemini.

Clients with keep-alive sessions send cached and slow uncached analyses without pause. A reload (SIGHUP) fails
none of them; a killed worker (SIGKILL) fails at most what was in flight, one per client, then none; a stop
(SIGTERM to the master) with slow requests and a reply stream in flight turns /health/ready to 503 while requests
are still answered, fails nothing that a client sent while the load balancer routed to the instance, finishes the
stream, and gunicorn exits 0. The tests share one server, in this order (the last one stops it).
"""
from __future__ import annotations

import itertools
import os
import signal
import time

import pytest
import requests

from backend.db.migrate import upgrade
from tests.conftest import CLIENT_KEY, FAKE_PROVIDER_KEY
from tests.conversation_helpers import sse_events
from tests.integration.drain_load import AUTH, CACHED_TEXT, Balancer, Load, gunicorn_messages, serving_workers, wait_for
from tests.integration.servers import Gunicorn, access_lines

pytestmark = pytest.mark.gunicorn
CLIENTS = 6
DRAIN_SECONDS = 5  # wide enough for the balancer, a late request and reconnects on a loaded 2-core host
HIGH = "100000/minute"


@pytest.fixture(scope="module")
def server(fake_gemini, tmp_path_factory):
    directory = tmp_path_factory.mktemp("draining")
    database = f"sqlite:///{directory / 'backend-ai.db'}"
    upgrade(database)
    env = {"APP_ENV": "testing", "API_KEYS": f"tester:{CLIENT_KEY}", "GEMINI_API_KEY": FAKE_PROVIDER_KEY,
           "GEMINI_BASE_URL": fake_gemini.base_url, "CACHE_MODE": "memory", "CACHE_DIR": str(directory / "cache"),
           "DATABASE_URL": database, "SHUTDOWN_DRAIN_SECONDS": DRAIN_SECONDS, "RATE_LIMIT_DEFAULT": HIGH,
           "RATE_LIMIT_DEFAULT_PER_KEY": HIGH, "RATE_LIMIT_AI": HIGH, "RATE_LIMIT_AI_PER_KEY": HIGH}
    with Gunicorn(env, workers=2, threads=8, log_path=directory / "gunicorn.log") as instance:
        yield instance


def served_by(server: Gunicorn, load: Load, since: float) -> set[int]:
    """The workers that answered the load's requests started at or after `since` (from the access log)."""
    ids = {o.request_id for o in load.finished_since(since) if o.request_id}
    return {line["process"] for line in access_lines(server.log_path) if line.get("request_id") in ids}


def test_a_reload_fails_no_request(server, fake_gemini):
    fake_gemini.configure(latency_ms=300)
    old = serving_workers(server, 2)
    with Load(server.url, CLIENTS) as load:
        wait_for(lambda: len(load.in_flight(slow=True)) >= 2 and len(load.finished_since(0)) >= CLIENTS,
                 "slow requests in flight")
        os.kill(server.process.pid, signal.SIGHUP)
        # The old workers drain (still accepting) while the new ones boot, then finish and exit.
        new = wait_for(lambda: (pids := serving_workers(server, 2)) and not pids & old and pids, "new workers")
        settled = time.monotonic()
        wait_for(lambda: len(load.finished_since(settled)) >= 2 * CLIENTS, "requests to the new workers")
    assert load.failures() == [], load.failures()[:3]
    assert served_by(server, load, settled) <= new and served_by(server, load, settled)
    assert set(gunicorn_messages(server, "draining for")) >= old, "the old workers drained"


def test_a_killed_worker_fails_only_its_requests_in_flight(server, fake_gemini):
    fake_gemini.configure(latency_ms=300)
    before = serving_workers(server, 2)
    victim = min(before)
    with Load(server.url, CLIENTS) as load:
        wait_for(lambda: len(load.in_flight(slow=True)) >= 2 and len(load.finished_since(0)) >= CLIENTS,
                 "slow requests in flight")
        os.kill(victim, signal.SIGKILL)
        replaced = wait_for(lambda: (pids := serving_workers(server, 2)) and victim not in pids and pids,
                            "the master to replace the worker")
        after = time.monotonic()
        wait_for(lambda: len(load.finished_since(after)) >= 2 * CLIENTS, "requests after the replacement")
    # One request per client at most (each has one in flight), only before the replacement, then none.
    failures = load.failures()
    assert len(failures) <= CLIENTS and all(o.started < after for o in failures), failures
    assert [o for o in load.finished_since(after) if o.failed] == []
    assert replaced - before and served_by(server, load, after) <= replaced


def test_a_stop_drains_then_finishes_requests_and_streams_in_flight(server, fake_gemini):
    # Slow enough that requests sent in the window are still running when it ends, and a stream that outlasts it.
    fake_gemini.configure(latency_ms=6000, chunk_size=8, chunk_latency_ms=600)
    workers = serving_workers(server, 2)
    created = requests.post(f"{server.url}/api/conversations", json={"scenario": "at the cafe"}, headers=AUTH,
                            timeout=10)
    assert created.status_code == 201, created.text
    with Balancer(server.url) as balancer, Load(server.url, CLIENTS, routed=balancer.routing) as load, \
            requests.Session() as streaming:
        stream = streaming.post(f"{server.url}/api/conversations/{created.json()['data']['id']}/messages",
                                json={"text": "Tell me about Paris."},
                                headers={**AUTH, "Accept": "text/event-stream"}, stream=True, timeout=30)
        assert stream.status_code == 200
        lines = stream.iter_lines(decode_unicode=True)
        read = list(itertools.takewhile(lambda line: line != "", lines))  # up to the end of the first event
        assert read[0] == "event: delta", read
        wait_for(lambda: len(load.in_flight(slow=True)) >= 2, "slow requests in flight")
        in_flight_at_stop = load.in_flight()
        server.process.send_signal(signal.SIGTERM)

        # The balancer sees 503 while the workers still serve: new requests on new connections are answered,
        # and told to close their connection.
        wait_for(lambda: balancer.not_ready is not None, "/health/ready to answer 503", timeout=10)
        live = requests.get(f"{server.url}/health", timeout=10)
        assert live.status_code == 200 and live.headers["Connection"] == "close"  # liveness is unchanged
        late = requests.post(f"{server.url}/api/analyze", json={"text": CACHED_TEXT}, headers=AUTH, timeout=30)
        assert late.status_code == 200 and late.headers["Connection"] == "close"

        events = sse_events("\n".join(read + ["", *lines]))
        streaming.close()  # as a client leaving: gunicorn need not keep the connection for another request
        assert server.process.wait(60) == 0
    not_ready = balancer.not_ready
    assert not_ready.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert not_ready.json()["error"]["details"] == {"draining": True} and int(not_ready.headers["Retry-After"]) >= 1
    assert set(balancer.statuses[:-1]) == {200}
    # Every request a client sent while the balancer routed here was answered, those in flight at SIGTERM included.
    assert in_flight_at_stop and all(o.status == 200 for o in in_flight_at_stop)
    assert load.failures() == [] and all(o.finished for o in load.snapshot())
    # The stream, open at SIGTERM (its first piece read before), went on to its end.
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"delta"} and len(names) >= 6, names
    # Both workers drained, then stopped accepting while the slow requests and the stream ran on.
    assert workers <= set(gunicorn_messages(server, "draining for"))
    assert workers <= set(gunicorn_messages(server, "drain window over"))
