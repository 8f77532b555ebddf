"""Slow clients cannot hold gunicorn's threads: heads and bodies that trickle are cut, /health keeps answering."""
from __future__ import annotations

import http.client
import io
import select
import socket
import subprocess
import threading
import time
import wave
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.conftest import CLIENT_KEY
from tests.integration.servers import Gunicorn, free_port
from tests.unit.test_nginx_config import SITE, nginx_binary, nginx_main_config

pytestmark = pytest.mark.gunicorn
THREADS = 4
SLOW_CLIENTS = 3 * (THREADS + 4)  # three times what one worker takes in before it stops accepting
HEADER_TIMEOUT = 2
BODY_TIMEOUT = 3
MARGIN = 4  # the worker checks its deadlines about once a second; a loaded machine adds more
AUTH = {"X-API-Key": CLIENT_KEY}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"APP_ENV": "testing", "API_KEYS": CLIENT_KEY, "CACHE_MODE": "memory",
           "CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
           "HEADER_TIMEOUT_SECONDS": HEADER_TIMEOUT, "BODY_TIMEOUT_SECONDS": BODY_TIMEOUT}
    with Gunicorn(env, workers=1, threads=THREADS) as instance:
        yield instance


def connect_to(port: int, first: bytes) -> socket.socket:
    """A loopback connection to `port` that has sent `first`."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(first)
    return sock


def connect(server: Gunicorn, first: bytes) -> socket.socket:
    """A connection to the server that has sent `first`."""
    return connect_to(server.port, first)


def drip(socks: list[socket.socket], line: bytes, stop: threading.Event, every: float = 1.0) -> threading.Thread:
    """Send `line` on every socket every `every` seconds until stopped (for 20 s at most), as a slow client."""

    def run() -> None:
        deadline = time.monotonic() + 20
        while not stop.wait(every) and time.monotonic() < deadline:
            for sock in socks:
                try:
                    sock.sendall(line)
                except OSError:
                    pass  # closed by the server: what the test waits for

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def wait_closed(socks: list[socket.socket], within: float) -> dict[socket.socket, bytes]:
    """What each socket received until the server closed it; fails unless all were closed `within` seconds."""
    received = {sock: b"" for sock in socks}
    open_socks = set(socks)
    deadline = time.monotonic() + within
    while open_socks and time.monotonic() < deadline:
        readable, _, _ = select.select(list(open_socks), [], [], 0.2)
        for sock in readable:
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            received[sock] += data
            if not data:
                open_socks.discard(sock)
    assert not open_socks, f"{len(open_socks)} of {len(socks)} slow connections still open after {within} s"
    return received


def assert_health_answers(server: Gunicorn, times: int = 3) -> None:
    for _ in range(times):
        response = requests.get(f"{server.url}/health", timeout=5)  # a hang fails here
        assert response.status_code == 200


def test_slow_headers_neither_take_the_threads_nor_stay(server):
    socks = [connect(server, b"GET /health HTTP/1.1\r\nHost: slow\r\n") for _ in range(SLOW_CLIENTS)]
    stop = threading.Event()
    dripper = drip(socks, b"X-Slow: 1\r\n", stop)
    try:
        time.sleep(0.5)  # every slow client is connected and has begun its head
        assert_health_answers(server)
        received = wait_closed(socks, HEADER_TIMEOUT + MARGIN)
    finally:
        stop.set()
        dripper.join(5)
        for sock in socks:
            sock.close()
    # Each was told its request timed out (408), none got an answer to a request it never finished.
    assert all(data.startswith(b"HTTP/1.1 408 ") for data in received.values()), set(received.values())
    assert_health_answers(server, times=1)


def test_a_silent_connection_is_closed(server):
    socks = [connect(server, b"") for _ in range(SLOW_CLIENTS)]
    try:
        assert_health_answers(server)
        received = wait_closed(socks, HEADER_TIMEOUT + MARGIN)
    finally:
        for sock in socks:
            sock.close()
    assert set(received.values()) == {b""}  # nothing was asked: nothing is answered


def test_clients_that_never_close_do_not_stall_the_worker(server):
    # gunicorn closes such a connection gracefully: FIN, then it waits (up to 2 s) for the client's. On its main
    # loop that wait stalled every other connection: 10 of these held /health for 16 s.
    last = b"GET /health HTTP/1.1\r\nHost: lazy\r\nConnection: close\r\n\r\n"
    socks = [connect(server, last) for _ in range(SLOW_CLIENTS)]
    try:
        time.sleep(0.5)  # every request is in and answered; none of the clients closes or reads
        assert_health_answers(server)
        received = wait_closed(socks, MARGIN)
    finally:
        for sock in socks:
            sock.close()
    assert all(data.startswith(b"HTTP/1.1 200 ") for data in received.values())


def test_a_kept_alive_connection_cannot_trickle_its_next_head(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/health")
    assert conn.getresponse().read() and conn.sock is not None
    sock = conn.sock
    sock.sendall(b"GET /health HTTP/1.1\r\n")
    stop = threading.Event()
    dripper = drip([sock], b"X-Slow: 1\r\n", stop)
    try:
        received = wait_closed([sock], HEADER_TIMEOUT + MARGIN)
    finally:
        stop.set()
        dripper.join(5)
        conn.close()
    assert received[sock].startswith(b"HTTP/1.1 408 ")


def test_keep_alive_pipelining_and_a_head_in_pieces_still_work(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", "/health")
        assert conn.getresponse().read() == b'{"status":"ok"}\n'
        local = conn.sock.getsockname()
        time.sleep(1.5)  # idle, within gunicorn's keep-alive (5 s)
        conn.request("GET", "/health")
        response = conn.getresponse()
        assert response.status == 200 and response.read()
        assert conn.sock.getsockname() == local  # the same connection served both
    finally:
        conn.close()

    pipelined = b"GET /health HTTP/1.1\r\nHost: a\r\n\r\nGET /health HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
    with connect(server, pipelined) as sock:
        received = wait_closed([sock], 5)[sock]
    assert received.count(b"HTTP/1.1 200 ") == 2

    with connect(server, b"GET /hea") as sock:
        for piece in (b"lth HTTP/1.1\r\n", b"Host: x\r\n", b"Connection: close\r\n", b"\r\n"):
            time.sleep(0.3)  # the whole head within HEADER_TIMEOUT_SECONDS
            sock.sendall(piece)
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 200


def test_a_trickled_body_is_cut_and_frees_its_thread(server):
    head = (b"POST /api/analyze HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\n"
            b"X-API-Key: " + CLIENT_KEY.encode() + b"\r\nContent-Length: 100000\r\n\r\n{\"text\": \"")
    socks = [connect(server, head) for _ in range(THREADS)]  # every thread reads one of these bodies
    stop = threading.Event()
    dripper = drip(socks, b"a", stop, every=0.5)  # never silent for HEADER_TIMEOUT, never done
    try:
        received = wait_closed(socks, BODY_TIMEOUT + MARGIN)
        assert_health_answers(server)
    finally:
        stop.set()
        dripper.join(5)
        for sock in socks:
            sock.close()
    # The app saw a client that went away (400) and the connection was not kept for another request.
    assert all(data.startswith(b"HTTP/1.1 400 ") for data in received.values()), received


def long_wav() -> bytes:
    """A WAV of 10,000,000 bytes of silence (16 kHz mono, 312 s), close to MAX_AUDIO_BYTES."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(10_000_000))
    return buf.getvalue()


def post_long_wav(url: str, headers: dict | None = None) -> requests.Response:
    return requests.post(f"{url}/api/transcribe", files={"audio": ("long.wav", long_wav(), "audio/wav")},
                         data={"language": "en-US"}, headers={**AUTH, **(headers or {})}, timeout=30)


def test_a_large_upload_over_a_normal_connection_is_read_whole(server):
    response = post_long_wav(server.url)
    # Decoded, then refused for its duration: the whole body arrived (a cut body would be a 400).
    assert response.status_code == 422, response.text


@contextmanager
def nginx_in_front(server: Gunicorn, workdir: Path):
    """config/nginx/backend-ai.conf, on a free loopback port, in front of `server`."""
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip("nginx is not installed (scripts/system-deps.sh test installs it)")
    port = free_port()
    site = SITE.read_text()
    for old, new in (("server 127.0.0.1:8000;", f"server 127.0.0.1:{server.port};"),
                     ("listen 80;", f"listen 127.0.0.1:{port};"),
                     ("listen 80 default_server;", f"listen 127.0.0.1:{port} default_server;")):
        assert site.count(old) == 1, old
        site = site.replace(old, new)
    (workdir / "site.conf").write_text(site)
    main = nginx_main_config(workdir, workdir / "site.conf")
    with open(workdir / "nginx.log", "wb") as log:
        process = subprocess.Popen([nginx, "-p", str(workdir), "-c", str(main)], stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (workdir / "nginx.log").read_text()
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def test_behind_the_proxy_slow_clients_never_reach_gunicorn(server, tmp_path):
    with nginx_in_front(server, tmp_path) as port:
        url, ours = f"http://127.0.0.1:{port}", {"Host": "api.example.com"}
        socks = [connect_to(port, b"GET /health HTTP/1.1\r\nHost: api.example.com\r\n") for _ in range(SLOW_CLIENTS)]
        stop = threading.Event()
        dripper = drip(socks, b"X-Slow: 1\r\n", stop)
        try:
            for _ in range(3):
                assert requests.get(f"{url}/health", headers=ours, timeout=5).status_code == 200
        finally:
            stop.set()
            dripper.join(5)
            for sock in socks:
                sock.close()
        assert post_long_wav(url, ours).status_code == 422  # a whole recording passes, buffered by nginx
        with connect_to(port, b"POST /api/transcribe HTTP/1.1\r\nHost: api.example.com\r\n"
                              b"Content-Length: 11000000\r\n\r\n") as sock:
            assert sock.recv(64).startswith(b"HTTP/1.1 413 ")  # over the service's cap: nginx says so at once
        with connect_to(port, b"GET /health HTTP/1.1\r\nHost: evil.example\r\n\r\n") as sock:
            assert wait_closed([sock], 5)[sock] == b""  # another Host: no answer at all
