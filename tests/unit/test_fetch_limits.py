"""audio_url fetch limits: allowed ports, a bounded name lookup, one overall deadline, a minimum rate, a bulkhead.

Every server here is local (127.0.0.1); the tests allow private addresses for them, as test_fetch.py does.
"""
from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest
import urllib3.connection

from backend.errors import ProviderUnavailable, ValidationFailed
from backend.media.fetch import fetch_audio
from backend.media.fetch_rules import parse_allowed_hosts
from backend.resilience.bulkhead import Bulkhead
from backend.settings import ConfigError, load_settings

BODY = b"RIFF" + bytes(range(256)) * 40


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        self.server.requests += 1
        route = getattr(self, "route_" + self.path.strip("/").replace("-", "_"), None)
        try:
            route() if route else self.send_error(404)
        except OSError:  # the client cut us off: what these tests expect
            self.server.cut += 1

    def _head(self, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.flush()

    def route_ok(self):
        self._head(len(BODY))
        self.wfile.write(BODY)

    def route_drip(self):
        """The attack of the issue, faster: headers at once, then a byte now and then, for ever."""
        self._head(100_000)
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

    def route_bursts(self):
        """64 KiB in four bursts 0.3 s apart: pauses longer than the grace, yet ~200 KB/s on average."""
        self._head(4 * 16384)
        for _ in range(4):
            self.wfile.write(b"\0" * 16384)
            self.wfile.flush()
            time.sleep(0.3)

    def route_truncated(self):
        """Fewer bytes than announced, then the connection closes."""
        self._head(1000)
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


@pytest.fixture(scope="module")
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.requests = srv.cut = 0
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _fetch(srv, path: str, **kwargs):
    port = srv.server_address[1]
    options = dict(allowed_hosts={f"127.0.0.1:{port}"}, max_bytes=1_000_000, allow_http=True, allow_private=True)
    options.update(kwargs)
    return fetch_audio(f"http://127.0.0.1:{port}{path}", **options)


# --- ports ---------------------------------------------------------------------------------------------------

@pytest.fixture
def no_connections(monkeypatch):
    attempts = []

    def refuse(self, *args, **kwargs):
        attempts.append((self.host, self.port))
        raise OSError("connection refused by the test")

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "connect", refuse)
    monkeypatch.setattr(urllib3.connection.HTTPSConnection, "connect", refuse)
    return attempts


@pytest.mark.parametrize("url, allowed", [
    ("https://127.0.0.1:22/a.wav", "127.0.0.1"),            # ssh on an allowed host
    ("https://127.0.0.1:0/a.wav", "127.0.0.1"),             # used to become 443
    ("https://127.0.0.1:0/a.wav", "127.0.0.1:443"),
    ("https://127.0.0.1:00/a.wav", "127.0.0.1"),
    ("https://127.0.0.1:80/a.wav", "127.0.0.1"),            # http's port under https
    ("http://127.0.0.1:443/a.wav", "127.0.0.1"),            # and the other way round
    ("https://127.0.0.1:6379/a.wav", "127.0.0.1"),
    ("https://127.0.0.1/a.wav", "127.0.0.1:8443"),          # a named port allows that port only
    ("https://127.0.0.1:8444/a.wav", "127.0.0.1:8443"),
    ("https://[::1]:8443/a.wav", "::1"),
    ("https://127.0.0.1:8443/a.wav", "localhost:8443"),     # the port belongs to its host
])
def test_ports_the_allow_list_does_not_name_are_refused_without_connecting(url, allowed, no_connections):
    with pytest.raises(ValidationFailed, match=r"port \d+ is not allowed|host .* is not allowed") as info:
        fetch_audio(url, allowed_hosts={allowed, "localhost"}, max_bytes=10**6, allow_http=True,
                    allow_private=True)
    assert info.value.status == 422
    assert no_connections == []


@pytest.mark.parametrize("url, allowed, target", [
    ("https://127.0.0.1/a.wav", "127.0.0.1", ("127.0.0.1", 443)),
    ("https://127.0.0.1:443/a.wav", "127.0.0.1", ("127.0.0.1", 443)),
    ("http://127.0.0.1/a.wav", "127.0.0.1", ("127.0.0.1", 80)),
    ("https://127.0.0.1:8443/a.wav", "127.0.0.1:8443", ("127.0.0.1", 8443)),
    ("https://127.0.0.1:8443/a.wav", "127.0.0.1.:8443", ("127.0.0.1", 8443)),
    ("https://[::1]:8443/a.wav", "[::1]:8443", ("::1", 8443)),
])
def test_default_and_named_ports_connect(url, allowed, target, no_connections):
    with pytest.raises(ValidationFailed, match="connection failed"):
        fetch_audio(url, allowed_hosts={allowed}, max_bytes=10**6, allow_http=True, allow_private=True)
    assert no_connections == [target]


@pytest.mark.parametrize("entry", [
    "media.example.org:0", "media.example.org:65536", "media.example.org:x", "media.example.org:",
    "media.example.org:８４４３", ":443", "[::1", "[::1]8443", "[::1]:", "[]:443",
])
def test_a_bad_allow_list_entry_stops_the_start(entry):
    with pytest.raises(ConfigError, match="AUDIO_URL_ALLOWED_HOSTS"):
        load_settings({"AUDIO_URL_ALLOWED_HOSTS": f"ok.example.org, {entry}"})


def test_allow_list_entries_parse():
    assert parse_allowed_hosts(["Media.Example.org.", "media.example.org:8443", "[::1]:443", "::1",
                                "10.0.0.1:80", " "]) == {
        ("media.example.org", None), ("media.example.org", 8443), ("::1", 443), ("::1", None), ("10.0.0.1", 80)}


# --- one overall deadline, name lookup included --------------------------------------------------------------

def test_name_lookup_is_bounded_by_the_overall_deadline_and_keeps_its_slot(server):
    release, lookups = threading.Event(), []

    def hanging(host, port, **kwargs):
        lookups.append(host)
        release.wait(10)
        return socket.getaddrinfo("127.0.0.1", port, **kwargs)

    port = server.server_address[1]
    bulkhead = Bulkhead("audio_url", 1)
    options = dict(allowed_hosts={f"media.test:{port}"}, max_bytes=10**6, allow_http=True, allow_private=True,
                   bulkhead=bulkhead, resolver=hanging)
    try:
        started = time.monotonic()
        with pytest.raises(ValidationFailed, match="lookup timed out") as info:
            fetch_audio(f"http://media.test:{port}/ok", total_timeout=0.5, **options)
        assert info.value.status == 422
        assert time.monotonic() - started < 3  # not the resolver's 10 s
        # The lookup left behind still holds the slot: the next fetch is refused at once, with no new thread.
        with pytest.raises(ProviderUnavailable) as busy:
            fetch_audio(f"http://media.test:{port}/ok", **options)
        assert busy.value.status == 503 and busy.value.retry_after >= 1
        assert lookups == ["media.test"]
    finally:
        release.set()
    # Once the lookup returns the slot comes back, and a fetch goes through.
    for _ in range(50):
        try:
            assert fetch_audio(f"http://media.test:{port}/ok", **options) == BODY
            break
        except ProviderUnavailable:
            time.sleep(0.1)
    else:
        pytest.fail("the slot of the abandoned lookup never came back")


@pytest.fixture
def handshake_dripper():
    """A TLS server that answers the ClientHello one byte every 50 ms."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip(conn):
        with conn:
            try:
                conn.recv(4096)
                conn.sendall(b"\x16\x03\x03\x40\x00")  # a 16 KiB handshake record follows...
                while not stop.wait(0.05):
                    conn.sendall(b"\x02")  # ...slowly
            except OSError:
                pass

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    stop.set()
    listener.close()


def test_a_dripping_tls_handshake_hits_the_overall_deadline(handshake_dripper):
    started = time.monotonic()
    with pytest.raises(ValidationFailed, match="timed out|took too long") as info:
        # Python bounds a handshake as a whole by the socket timeout; 5 s here, but the deadline comes first.
        fetch_audio(f"https://127.0.0.1:{handshake_dripper}/a.wav", allowed_hosts={f"127.0.0.1:{handshake_dripper}"},
                    max_bytes=10**6, allow_private=True, connect_timeout=5.0, total_timeout=1.0)
    assert info.value.status == 422
    assert time.monotonic() - started < 3


# --- minimum rate --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/drip", "/drip-headers"])
def test_a_download_below_the_minimum_rate_is_cut_after_the_grace(server, path):
    cut_before = server.cut
    started = time.monotonic()
    with pytest.raises(ValidationFailed, match="slower than 1000 bytes per second") as info:
        # The deadline alone would hold this request for 20 s, the socket timeout never fires.
        _fetch(server, path, min_bytes_per_second=1000, min_rate_grace=0.3, read_timeout=5.0, total_timeout=20.0)
    assert info.value.status == 422
    assert time.monotonic() - started < 3
    for _ in range(50):  # the server notices the cut at its next write
        if server.cut > cut_before:
            break
        time.sleep(0.05)
    assert server.cut == cut_before + 1


def test_pauses_within_the_average_rate_are_not_cut(server):
    # Each pause is longer than the grace; the allowance grows with every byte, so only the average counts.
    assert len(_fetch(server, "/bursts", min_bytes_per_second=16384, min_rate_grace=0.2)) == 4 * 16384


def test_a_slow_first_byte_within_the_grace_is_not_cut(server):
    assert _fetch(server, "/slow-start", min_bytes_per_second=16384, min_rate_grace=2.0) == BODY


def test_reading_what_has_arrived_still_checks_the_length_and_decodes_chunks(server):
    with pytest.raises(ValidationFailed, match="connection failed"):
        _fetch(server, "/truncated", min_bytes_per_second=1000)
    assert _fetch(server, "/chunked", min_bytes_per_second=1000) == BODY


def test_zero_means_no_minimum_rate(server):
    with pytest.raises(ValidationFailed, match="took too long"):
        _fetch(server, "/drip", min_bytes_per_second=0, min_rate_grace=0.1, total_timeout=0.8)


# --- bulkhead ------------------------------------------------------------------------------------------------

def test_fetches_beyond_the_bulkhead_are_refused_at_once(server):
    bulkhead = Bulkhead("audio_url", 2)
    requests_before = server.requests
    slow = [threading.Thread(target=_swallow, args=(lambda: _fetch(server, "/drip", bulkhead=bulkhead,
                                                                  total_timeout=3.0),))
            for _ in range(2)]
    for thread in slow:
        thread.start()
    for _ in range(100):  # both slow downloads hold their slot
        if server.requests - requests_before == 2:
            break
        time.sleep(0.02)
    refused = 0
    for _ in range(3):
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable) as info:
            _fetch(server, "/ok", bulkhead=bulkhead)
        assert time.monotonic() - started < 0.5 and info.value.status == 503 and info.value.retry_after >= 1
        refused += 1
    assert refused == 3 and server.requests - requests_before == 2  # the refused ones never reached the host
    for thread in slow:
        thread.join(5)
    assert _fetch(server, "/ok", bulkhead=bulkhead) == BODY  # the slots came back


def _swallow(call) -> None:
    try:
        call()
    except ValidationFailed:
        pass
