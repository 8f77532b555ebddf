"""audio_url fetch, addresses and SSRF: private answers refused before connecting, the checked address the one
connected to, one name lookup, no redirects followed, TLS verifying the name while connecting to the IP."""
# ruff: noqa: F811  (the fixtures imported here come back as test arguments of the same name)
from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess

import pytest

from backend.errors import ValidationFailed
from backend.media import fetch as fetch_mod
from backend.media.fetch import fetch_audio
from backend.media.fetch_rules import is_forbidden_address
from tests.unit.fetch_servers import BODY, _fetch, _serve, _url, refuse_connections, server  # noqa: F401


@pytest.fixture
def no_connections(monkeypatch):
    return refuse_connections(monkeypatch, lambda conn: conn.host)


# --- one lookup, no redirects ----------------------------------------------------------------------------------

def test_resolves_once_and_keeps_the_host_header(server, monkeypatch):
    real, lookups = socket.getaddrinfo, []

    def counting(host, *args, **kwargs):
        lookups.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    assert _fetch(_url(server, "/ok?x=1", host="LocalHost")) == BODY
    assert lookups.count("localhost") == 1 and "LocalHost" not in lookups
    assert server.seen[-1] == f"localhost:{server.server_address[1]}"


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


# --- private addresses -----------------------------------------------------------------------------------------

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


# --- TLS -------------------------------------------------------------------------------------------------------

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
