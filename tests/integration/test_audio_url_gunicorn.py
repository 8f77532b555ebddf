"""The issue's attack on real gunicorn: media hosts dripping a byte now and then cannot take the worker's threads."""
from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.conftest import CLIENT_KEY
from tests.integration.servers import Gunicorn

pytestmark = pytest.mark.gunicorn
THREADS, SLOTS, ATTACKERS = 4, 2, 10  # ten drips used to hold all of a worker's threads for 20 s each
AUTH = {"X-API-Key": CLIENT_KEY}


class _Dripper(BaseHTTPRequestHandler):
    """Headers at once, then one byte every half second (the issue measured one every 5 s) for ever."""

    def do_GET(self):
        with self.server.lock:
            self.server.arrived += 1
            self.server.active += 1
        try:
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            for _ in range(200):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.5)
        except OSError:
            pass  # cut by the service: what the test expects
        finally:
            with self.server.lock:
                self.server.active -= 1

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def dripper():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Dripper)
    server.daemon_threads = True
    server.lock, server.arrived, server.active = threading.Lock(), 0, 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def service(dripper, tmp_path_factory):
    # Production defaults for the minimum rate (32 KiB/s after 5 s); no provider is needed: nothing gets that far.
    env = {"APP_ENV": "testing", "API_KEYS": CLIENT_KEY, "CACHE_MODE": "memory",
           "CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
           "AUDIO_URL_ALLOWED_HOSTS": f"127.0.0.1:{dripper.server_address[1]}", "AUDIO_URL_ALLOW_HTTP": "true",
           "AUDIO_URL_ALLOW_PRIVATE": "true", "AUDIO_URL_MAX_CONCURRENCY": SLOTS}
    with Gunicorn(env, workers=1, threads=THREADS) as instance:
        yield instance


def test_dripping_media_hosts_get_fast_503s_and_a_rate_cut_while_health_answers(service, dripper):
    url = f"http://127.0.0.1:{dripper.server_address[1]}/a.wav"

    def post() -> requests.Response:
        return requests.post(f"{service.url}/api/transcribe", json={"audio_url": url}, headers=AUTH, timeout=40)

    with ThreadPoolExecutor(ATTACKERS) as pool:
        futures = [pool.submit(post) for _ in range(ATTACKERS)]
        deadline = time.monotonic() + 10
        while sum(f.done() for f in futures) < ATTACKERS - SLOTS and time.monotonic() < deadline:
            time.sleep(0.05)
        refused = [f.result() for f in futures if f.done()]
        while dripper.active < SLOTS and time.monotonic() < deadline:  # the held ones may still be connecting
            time.sleep(0.05)
        # While the held downloads drip (the minimum rate cuts them 5 s after their request), /health gets a thread.
        assert dripper.active == SLOTS
        health = requests.get(f"{service.url}/health", timeout=5)  # it used to wait 18 s
        assert health.status_code == 200
        responses = [f.result() for f in futures]

    assert len(refused) == ATTACKERS - SLOTS
    for response in refused:
        assert response.status_code == 503 and response.json()["error"]["code"] == "PROVIDER_UNAVAILABLE"
        assert int(response.headers["Retry-After"]) >= 1
    assert Counter(r.status_code for r in responses) == {503: ATTACKERS - SLOTS, 422: SLOTS}
    for response in responses:
        if response.status_code == 422:  # cut by the minimum rate, not held to the 20 s deadline
            assert "slower than 32768 bytes per second" in response.json()["error"]["message"]
    assert dripper.arrived == SLOTS
