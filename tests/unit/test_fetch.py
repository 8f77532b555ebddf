"""Fetching audio_url: policy checks, SSRF refusals, size and time limits, against a local server.

Rate, concurrency, port and name-lookup limits are in test_fetch_limits.py."""
from __future__ import annotations

import http.server
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
from urllib.parse import urlsplit

import pytest
import urllib3.connection

from backend.errors import PayloadTooLarge, ValidationFailed
from backend.media import fetch as fetch_mod
from backend.media.fetch import fetch_audio
from backend.media.fetch_rules import is_forbidden_address

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

    def do_GET(self):
        self.server.seen.append(self.headers.get("Host"))
        route = "route_" + self.path.split("?")[0].strip("/").replace("-", "_")
        try:
            getattr(self, route, self.route_missing)()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass

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
        self._head(200, 1000)
        for _ in range(1000):
            self.wfile.write(b"x")
            self.wfile.flush()
            time.sleep(0.05)

    def route_drip_headers(self):
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(200):
            self.wfile.write(b"X-Slow: y\r\n")
            self.wfile.flush()
            time.sleep(0.05)

    def route_stall(self):
        self._head(200, 1000)
        self.wfile.flush()
        time.sleep(3)


def _serve(context: ssl.SSLContext | None = None):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.seen = []
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


def test_success(server):
    assert _fetch(_url(server, "/ok")) == BODY


def test_resolves_once_and_keeps_the_host_header(server, monkeypatch):
    real, lookups = socket.getaddrinfo, []

    def counting(host, *args, **kwargs):
        lookups.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    assert _fetch(_url(server, "/ok?x=1", host="LocalHost")) == BODY
    assert lookups.count("localhost") == 1 and "LocalHost" not in lookups
    assert server.seen[-1] == f"localhost:{server.server_address[1]}"


@pytest.mark.parametrize("url, allowed, message", [
    ("http://example.org/a.wav", LOCAL, "not allowed"),
    ("http://127.0.0.1.example.org/a.wav", LOCAL, "not allowed"),
    ("http://127.0.0.1/a.wav", frozenset(), "AUDIO_URL_ALLOWED_HOSTS is empty"),
    ("http://user:pw@127.0.0.1/a.wav", LOCAL, "credentials"),
    ("http://user@127.0.0.1/a.wav", LOCAL, "credentials"),
    ("ftp://127.0.0.1/a.wav", LOCAL, "must use"),
    ("file:///etc/passwd", LOCAL, "must use"),
    ("http://127.0.0.1:99999/a.wav", LOCAL, "not a valid URL"),
    ("http://127.0.0.1/a b.wav", LOCAL, "characters"),
    ("http://127.0.0.1\\@evil.example/", LOCAL, "characters"),
    ("http://bad\r\nHost: x/", LOCAL, "characters"),
    ("http:///a.wav", LOCAL, "no valid host"),
])
def test_policy_refusals(url, allowed, message):
    with pytest.raises(ValidationFailed, match=message) as info:
        _fetch(url, allowed_hosts=allowed)
    assert info.value.status == 422


def test_https_only_by_default(server):
    with pytest.raises(ValidationFailed, match="must use https"):
        fetch_audio(_url(server, "/ok"), allowed_hosts={f"127.0.0.1:{server.server_address[1]}"}, max_bytes=10**6,
                    allow_private=True)


def test_redirect_is_not_followed(server):
    with pytest.raises(ValidationFailed, match="HTTP 302") as info:
        _fetch(_url(server, "/redirect"))
    assert info.value.status == 422


def test_redirect_to_the_cloud_metadata_address_is_not_followed(server):
    seen_before = len(server.seen)
    with pytest.raises(ValidationFailed, match="HTTP 301") as info:
        _fetch(_url(server, "/metadata"))
    assert info.value.status == 422
    assert len(server.seen) == seen_before + 1  # one request reached us; the hop to the metadata address never ran


def test_404_is_422(server):
    with pytest.raises(ValidationFailed) as info:
        _fetch(_url(server, "/missing"))
    assert (info.value.status, info.value.message) == (422, "could not fetch audio_url: HTTP 404")


def test_endless_body_is_413_quickly(server):
    started = time.monotonic()
    with pytest.raises(PayloadTooLarge):
        _fetch(_url(server, "/endless"), max_bytes=1_000_000)
    assert time.monotonic() - started < 2


def test_content_length_too_big_is_413_before_reading(server):
    with pytest.raises(PayloadTooLarge) as info:
        _fetch(_url(server, "/huge-length"))
    assert info.value.status == 413


@pytest.mark.parametrize("path", ["/drip", "/drip-headers"])
def test_slow_drip_hits_the_overall_deadline(server, path):
    started = time.monotonic()
    with pytest.raises(ValidationFailed, match="took too long") as info:
        _fetch(_url(server, path), read_timeout=5.0, total_timeout=1.0)
    assert info.value.status == 422
    assert time.monotonic() - started < 2


def test_read_timeout(server):
    started = time.monotonic()
    with pytest.raises(ValidationFailed, match="timed out"):
        _fetch(_url(server, "/stall"), read_timeout=0.5)
    assert time.monotonic() - started < 2


def test_connection_refused_is_422_without_details():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ValidationFailed) as info:
        _fetch(f"http://127.0.0.1:{port}/a.wav")
    assert info.value.message == "could not fetch audio_url: connection failed"


@pytest.fixture
def no_connections(monkeypatch):
    attempts = []

    def refuse(self, *args, **kwargs):
        attempts.append(self.host)
        raise OSError("connection refused by the test")

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "connect", refuse)
    monkeypatch.setattr(urllib3.connection.HTTPSConnection, "connect", refuse)
    return attempts


@pytest.mark.parametrize("host", [
    "127.0.0.1", "localhost", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "[::1]",
    "[::ffff:127.0.0.1]", "[::ffff:a9fe:a9fe]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]", "[fe80::1]",
    "[fc00::1]", "100.64.0.1", "0.0.0.0", "[::]", "224.0.0.1", "255.255.255.255", "240.0.0.1",
    "2130706433", "0x7f.0.0.1", "017700000001", "127.1",
])
def test_private_addresses_are_refused_without_connecting(host, no_connections):
    allowed = frozenset({host.strip("[]")})
    with pytest.raises(ValidationFailed) as info:
        fetch_audio(f"https://{host}/a.wav", allowed_hosts=allowed, max_bytes=10**6)
    assert info.value.status == 422
    assert no_connections == []


def _fake_dns(monkeypatch, *addresses: str):
    def answer(host, port, *args, **kwargs):
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port, 0, 0) if ":" in a else (a, port)) for a in addresses]

    monkeypatch.setattr(fetch_mod.socket, "getaddrinfo", answer)


def test_any_private_answer_refuses_the_host(monkeypatch, no_connections):
    _fake_dns(monkeypatch, "93.184.216.34", "10.1.2.3")
    with pytest.raises(ValidationFailed, match="non-public"):
        fetch_audio("https://audio.example.org/a.wav", allowed_hosts=frozenset({"audio.example.org"}),
                    max_bytes=10**6)
    assert no_connections == []


def test_connects_to_the_checked_address(monkeypatch, no_connections):
    _fake_dns(monkeypatch, "93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")
    with pytest.raises(ValidationFailed, match="connection failed"):
        fetch_audio("https://Audio.Example.org./a.wav", allowed_hosts=frozenset({"audio.example.org"}),
                    max_bytes=10**6)
    assert no_connections == ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]


@pytest.mark.parametrize("address, forbidden", [
    ("8.8.8.8", False), ("2606:4700:4700::1111", False), ("64:ff9b::808:808", False),
    ("64:ff9b::a00:1", True), ("64:ff9b:1::1", True), ("2002:a00:1::", True), ("100.127.255.255", True),
    ("198.18.0.1", True), ("::ffff:8.8.8.8", False), ("ff02::1", True), ("2001:db8::1", True),
])
def test_address_classification(address, forbidden):
    assert is_forbidden_address(ipaddress.ip_address(address)) is forbidden


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not available to make a test certificate")
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    srv = _serve(context)
    yield srv, str(cert)
    srv.shutdown()
    srv.server_close()


def test_https_verifies_the_host_name_while_connecting_to_the_ip(tls_server):
    srv, cert = tls_server
    url = _url(srv, "/ok", host="localhost", scheme="https")
    assert _fetch(url, allow_http=False, ca_certs=cert) == BODY
    with pytest.raises(ValidationFailed, match="TLS"):
        _fetch(url, allow_http=False)  # self-signed: not trusted by default
    with pytest.raises(ValidationFailed, match="TLS"):
        _fetch(_url(srv, "/ok", scheme="https"), ca_certs=cert)  # certificate is for localhost only
