"""audio_url fetch, transfer limits: HTTP and connection failures, size, the read timeout, one overall deadline
(name lookup and TLS handshake included) and a minimum rate, against local servers (fetch_servers.py)."""
# ruff: noqa: F811  (the fixtures imported here come back as test arguments of the same name)
from __future__ import annotations

import socket
import threading
import time

import pytest

from backend.errors import PayloadTooLarge, ProviderUnavailable, ValidationFailed
from backend.media.fetch import fetch_audio
from backend.resilience.bulkhead import Bulkhead
from tests.unit.fetch_servers import BODY, _fetch, _url, server  # noqa: F401

# --- failures --------------------------------------------------------------------------------------------------

def test_404_is_422(server):
    with pytest.raises(ValidationFailed) as info:
        _fetch(_url(server, "/missing"))
    assert (info.value.status, info.value.message) == (422, "could not fetch audio_url: HTTP 404")


def test_connection_refused_is_422_without_details():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ValidationFailed) as info:
        _fetch(f"http://127.0.0.1:{port}/a.wav")
    assert info.value.message == "could not fetch audio_url: connection failed"


# --- size ------------------------------------------------------------------------------------------------------

def test_endless_body_is_413_quickly(server):
    started = time.monotonic()
    with pytest.raises(PayloadTooLarge):
        _fetch(_url(server, "/endless"), max_bytes=1_000_000)
    assert time.monotonic() - started < 2


def test_content_length_too_big_is_413_before_reading(server):
    with pytest.raises(PayloadTooLarge) as info:
        _fetch(_url(server, "/huge-length"))
    assert info.value.status == 413


# --- time: the read timeout, one overall deadline, name lookup and handshake included --------------------------

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
        _fetch(_url(server, path), min_bytes_per_second=1000, min_rate_grace=0.3, read_timeout=5.0, total_timeout=20.0)
    assert info.value.status == 422
    assert time.monotonic() - started < 3
    for _ in range(50):  # the server notices the cut at its next write
        if server.cut > cut_before:
            break
        time.sleep(0.05)
    assert server.cut == cut_before + 1


def test_pauses_within_the_average_rate_are_not_cut(server):
    # Each pause is longer than the grace; the allowance grows with every byte, so only the average counts.
    assert len(_fetch(_url(server, "/bursts"), min_bytes_per_second=16384, min_rate_grace=0.2)) == 4 * 16384


def test_a_slow_first_byte_within_the_grace_is_not_cut(server):
    assert _fetch(_url(server, "/slow-start"), min_bytes_per_second=16384, min_rate_grace=2.0) == BODY


def test_reading_what_has_arrived_still_checks_the_length_and_decodes_chunks(server):
    with pytest.raises(ValidationFailed, match="connection failed"):
        _fetch(_url(server, "/truncated"), min_bytes_per_second=1000)
    assert _fetch(_url(server, "/chunked"), min_bytes_per_second=1000) == BODY


def test_zero_means_no_minimum_rate(server):
    with pytest.raises(ValidationFailed, match="took too long"):
        _fetch(_url(server, "/drip"), min_bytes_per_second=0, min_rate_grace=0.1, total_timeout=0.8)

