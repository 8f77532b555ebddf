"""audio_url fetch, the URL rules: scheme, credentials, characters, and the allow-list of hosts and ports.

Every refusal here comes before any connection. The local servers and `_fetch` are in fetch_servers.py."""
# ruff: noqa: F811  (the fixtures imported here come back as test arguments of the same name)
from __future__ import annotations

import pytest

from backend.errors import ValidationFailed
from backend.media.fetch import fetch_audio
from backend.media.fetch_rules import parse_allowed_hosts
from backend.settings import ConfigError, load_settings
from tests.unit.fetch_servers import BODY, LOCAL, _fetch, _url, refuse_connections, server  # noqa: F401


@pytest.fixture
def no_connections(monkeypatch):
    return refuse_connections(monkeypatch, lambda conn: (conn.host, conn.port))


# --- URLs ------------------------------------------------------------------------------------------------------

def test_success(server):
    assert _fetch(_url(server, "/ok")) == BODY


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


# --- ports and the allow-list ----------------------------------------------------------------------------------

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
