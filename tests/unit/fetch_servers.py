"""The local servers and helpers the audio_url fetch tests share (backend/media/fetch*.py).

Every server here listens on 127.0.0.1; `_fetch` allows private addresses and plain http for them, and names the
server's random port in the allow-list. Each server counts the requests it got, the Host headers it saw and the
answers the client cut short.
"""
from __future__ import annotations

import http.server
import ssl
import threading
import time
from urllib.parse import urlsplit

import pytest
import urllib3.connection

from backend.media.fetch import fetch_audio

BODY = b"RIFF" + bytes(range(256)) * 40
LOCAL = frozenset({"127.0.0.1", "localhost"})


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass

    def _head(self, status: int, length: int | None = None, **extra: str) -> None:
        self.send_response(status)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()

    def do_GET(self):
        self.server.requests += 1
        self.server.seen.append(self.headers.get("Host"))
        route = "route_" + self.path.split("?")[0].strip("/").replace("-", "_")
        try:
            getattr(self, route, self.route_missing)()
        except OSError:  # the client cut us off (TLS errors included): what the limit tests expect
            self.server.cut += 1

    def route_ok(self):
        self._head(200, len(BODY), **{"Content-Type": "audio/wav"})
        self.wfile.write(BODY)

    def route_redirect(self):
        self._head(302, 0, Location="/ok")

    def route_metadata(self):
        self._head(301, 0, Location="http://169.254.169.254/latest/meta-data/iam/security-credentials/")

    def route_missing(self):
        self._head(404, 0)

    def route_endless(self):
        self._head(200)
        chunk = b"\0" * 65536
        while True:
            self.wfile.write(chunk)

    def route_huge_length(self):
        self._head(200, 10**9)
        self.wfile.write(b"\0" * 1024)

    def route_drip(self):
        """The attack of the issue, faster: headers at once, then a byte now and then, for ever."""
        self._head(200, 100_000)
        for _ in range(100_000):
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(0.05)

    def route_drip_headers(self):
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(10_000):
            self.wfile.write(b"X-Slow: y\r\n")
            self.wfile.flush()
            time.sleep(0.05)

    def route_stall(self):
        self._head(200, 1000)
        time.sleep(3)

    def route_bursts(self):
        """64 KiB in four bursts 0.3 s apart: pauses longer than the grace, yet ~200 KB/s on average."""
        self._head(200, 4 * 16384)
        for _ in range(4):
            self.wfile.write(b"\0" * 16384)
            self.wfile.flush()
            time.sleep(0.3)

    def route_truncated(self):
        """Fewer bytes than announced, then the connection closes."""
        self._head(200, 1000)
        self.wfile.write(b"x" * 10)
        self.close_connection = True

    def route_chunked(self):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in (BODY[:1000], BODY[1000:]):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()
            time.sleep(0.05)
        self.wfile.write(b"0\r\n\r\n")

    def route_slow_start(self):
        """A slow first byte, then the whole body at once."""
        time.sleep(0.4)
        self.route_ok()


def _serve(context: ssl.SSLContext | None = None):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.seen, server.requests, server.cut = [], 0, 0
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def server():
    srv = _serve()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(server, path: str, host: str = "127.0.0.1", scheme: str = "http") -> str:
    return f"{scheme}://{host}:{server.server_address[1]}{path}"


def _fetch(url: str, **kwargs):
    # The test servers listen on a random port, which the allow-list must name.
    try:
        port = urlsplit(url).port
    except ValueError:  # the URL under test is invalid; fetch_audio must say so
        port = None
    allowed = LOCAL | {f"{host}:{port}" for host in LOCAL} if port else LOCAL
    options = dict(allowed_hosts=allowed, max_bytes=1_000_000, allow_http=True, allow_private=True)
    options.update(kwargs)
    return fetch_audio(url, **options)


def refuse_connections(monkeypatch, record):
    """Make every urllib3 connect fail; returns the list of record(connection) of each attempt."""
    attempts = []

    def refuse(self, *args, **kwargs):
        attempts.append(record(self))
        raise OSError("connection refused by the test")

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "connect", refuse)
    monkeypatch.setattr(urllib3.connection.HTTPSConnection, "connect", refuse)
    return attempts
