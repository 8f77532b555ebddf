"""Through the app: audio_url downloads beyond AUDIO_URL_MAX_CONCURRENCY are refused at once; the rest still work."""
from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.envelope import assert_error

K, M = 2, 4  # slots, and requests beyond them


class _HeldHost(BaseHTTPRequestHandler):
    """A media host that answers nothing until the test lets it (then 404)."""

    def do_GET(self):
        with self.server.lock:
            self.server.arrived += 1
        self.server.release.wait(10)
        self.send_error(404)

    def log_message(self, *args):
        pass


@pytest.fixture
def held_host():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HeldHost)
    server.daemon_threads = True
    server.lock, server.arrived, server.release = threading.Lock(), 0, threading.Event()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def test_downloads_beyond_the_limit_get_fast_503s_while_health_answers(make_app, auth, held_host):
    port = held_host.server_address[1]
    app = make_app(AUDIO_URL_ALLOWED_HOSTS=f"127.0.0.1:{port}", AUDIO_URL_ALLOW_HTTP=True,
                   AUDIO_URL_ALLOW_PRIVATE=True, AUDIO_URL_MAX_CONCURRENCY=K, AUDIO_URL_MIN_BYTES_PER_SECOND=0)
    url = f"http://127.0.0.1:{port}/a.wav"
    responses, done = [], threading.Condition()

    def post():
        response = app.test_client().post("/api/transcribe", json={"audio_url": url}, headers=auth)
        with done:
            responses.append(response)
            done.notify_all()

    threads = [threading.Thread(target=post, daemon=True) for _ in range(K + M)]
    for thread in threads:
        thread.start()
    with done:  # the M refusals come back while the K downloads are still held by the host
        assert done.wait_for(lambda: len(responses) >= M, timeout=10), [r.status_code for r in responses]
        refused = list(responses)
    assert len(refused) == M
    for response in refused:
        assert_error(response, 503, "PROVIDER_UNAVAILABLE")  # with Retry-After
    for _ in range(100):  # the holders' requests may still be on their way to the host
        if held_host.arrived >= K:
            break
        time.sleep(0.02)
    assert held_host.arrived == K  # the refused ones never reached the host
    health = app.test_client().get("/health")
    assert health.status_code == 200

    held_host.release.set()
    for thread in threads:
        thread.join(10)
    assert Counter(r.status_code for r in responses) == {503: M, 422: K}  # the host's 404
    assert held_host.arrived == K
    # The slots came back: the next download reaches the host.
    response = app.test_client().post("/api/transcribe", json={"audio_url": url}, headers=auth)
    assert_error(response, 422, "VALIDATION_ERROR")
    assert held_host.arrived == K + 1
