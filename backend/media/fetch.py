"""Download learner audio from an allow-listed `audio_url`, with SSRF, size, time, rate and concurrency limits."""
from __future__ import annotations

import http.client
import socket
import time
from typing import Any, Iterable

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

from backend.errors import PayloadTooLarge
from backend.media.fetch_limits import Resolver, Slot, Watchdog, lookup
from backend.media.fetch_rules import (
    check_url,
    checked_addresses,
    parse_allowed_hosts,
    refuse,
)
from backend.resilience.bulkhead import Bulkhead

_CHUNK = 64 * 1024
# Seconds from sending the request before the minimum rate applies: room for a slow first byte and the headers.
MIN_RATE_GRACE_SECONDS = 5.0


class AudioFetcher:
    """The audio_url fetch of one worker process: its policy, and a bulkhead bounding concurrent downloads."""

    def __init__(self, allowed_hosts: Iterable[str], *, max_bytes: int, max_concurrency: int,
                 min_bytes_per_second: int = 0, **options: Any):
        self.allowed_hosts = frozenset(allowed_hosts)
        parse_allowed_hosts(self.allowed_hosts)  # a bad entry fails here, at start, not on a request
        # Each download holds a request thread for up to its deadline: beyond this many, refuse at once (503).
        self.bulkhead = Bulkhead("audio_url", max_concurrency)
        self._options = dict(options, max_bytes=max_bytes, min_bytes_per_second=min_bytes_per_second)

    def fetch(self, url: str) -> bytes:
        """Return the body of `url`; see fetch_audio."""
        return fetch_audio(url, allowed_hosts=self.allowed_hosts, bulkhead=self.bulkhead, **self._options)


def fetch_audio(url: str, *, allowed_hosts: Iterable[str], max_bytes: int, allow_http: bool = False,
                connect_timeout: float = 3.0, read_timeout: float = 10.0, total_timeout: float = 20.0,
                min_bytes_per_second: int = 0, min_rate_grace: float = MIN_RATE_GRACE_SECONDS,
                allow_private: bool = False, ca_certs: str | None = None, bulkhead: Bulkhead | None = None,
                resolver: Resolver | None = None) -> bytes:
    """Return the body of `url`, refusing anything outside the policy (422) or larger than max_bytes (413).

    `allow_private` (AUDIO_URL_ALLOW_PRIVATE) admits an allow-listed internal media server on a private address.
    Name lookup, connection, TLS handshake and body all fit in `total_timeout`; with a `bulkhead`, a fetch beyond
    its limit is refused at once (503); a body slower than `min_bytes_per_second` after the grace is cut (422).
    """
    scheme, host, port, target = check_url(url, parse_allowed_hosts(allowed_hosts), allow_http)
    slot = Slot(bulkhead)
    try:
        deadline = time.monotonic() + total_timeout
        # Looked up at call time (not bound as a default) so tests may replace socket.getaddrinfo.
        infos = lookup(resolver or socket.getaddrinfo, host, port, deadline, slot)
        addresses = checked_addresses(infos, allow_private)
        conn = _connect(scheme, host, port, addresses, connect_timeout, deadline, ca_certs)
        # Kept here because http.client drops conn.sock when the response owns the connection.
        sock = conn.sock
        try:
            watchdog = Watchdog(sock, deadline, min_rate=min_bytes_per_second, grace=min_rate_grace)
            try:
                return _download(conn, target, _headers(scheme, host, port), max_bytes, read_timeout, watchdog)
            finally:
                watchdog.stop()
        finally:
            conn.close()
            sock.close()
    finally:
        slot.release()


def _headers(scheme: str, host: str, port: int) -> dict[str, str]:
    default_port = 443 if scheme == "https" else 80
    host_header = (f"[{host}]" if ":" in host else host) + ("" if port == default_port else f":{port}")
    return {"Host": host_header, "Accept": "audio/*, */*;q=0.5", "Accept-Encoding": "identity",
            "User-Agent": "backend-ai-audio-fetch"}


def _ca_bundle() -> str | None:
    try:
        import certifi  # a dependency of requests; the system store is the fallback
    except ImportError:
        return None
    return certifi.where()


def _connect(scheme: str, host: str, port: int, addresses: list[str], connect_timeout: float,
             deadline: float, ca_certs: str | None) -> HTTPConnection:
    """Open a connection to the first reachable checked address; TLS still verifies the host name."""
    last: Exception | None = None
    for ip in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        # The TCP connect and the TLS handshake are each bounded by this timeout (Python bounds a handshake as
        # a whole, not per byte): half of what remains keeps both within the deadline.
        timeout = min(connect_timeout, remaining / 2)
        if scheme == "https":
            conn: HTTPConnection = HTTPSConnection(
                ip, port, timeout=timeout, server_hostname=host, assert_hostname=host,
                cert_reqs="CERT_REQUIRED", ca_certs=ca_certs or _ca_bundle())
        else:
            conn = HTTPConnection(ip, port, timeout=timeout)
        try:
            conn.connect()
            return conn
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            conn.close()
            last = exc
    # No attempt at all means a slow name lookup already used up the deadline.
    raise _network_error(last) if last is not None else refuse("could not fetch audio_url: timed out")


def _download(conn: HTTPConnection, target: str, headers: dict[str, str], max_bytes: int, read_timeout: float,
              watchdog: Watchdog) -> bytes:
    """Send the GET and read the body under the watchdog, mapping network failures to 422s."""
    # urllib3 applies conn.timeout to the socket before sending and before reading the response.
    conn.timeout = read_timeout
    try:
        conn.request("GET", target, headers=headers, preload_content=False, decode_content=False)
        resp = conn.getresponse()
        try:
            return _read_body(resp, max_bytes, watchdog)
        finally:
            resp.close()
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, ValueError) as exc:
        if watchdog.reason is not None:
            raise watchdog.failure() from None
        raise _network_error(exc) from None


def _read_body(resp: urllib3.HTTPResponse, max_bytes: int, watchdog: Watchdog) -> bytes:
    """Check the status and length, and read the body up to max_bytes."""
    if 300 <= resp.status < 400:
        raise refuse(f"could not fetch audio_url: HTTP {resp.status} (redirects are not followed)")
    if not 200 <= resp.status < 300:
        raise refuse(f"could not fetch audio_url: HTTP {resp.status}")
    length = resp.headers.get("Content-Length")
    if length is not None and length.strip().isdigit() and int(length) > max_bytes:
        raise _too_large(max_bytes)
    body = bytearray()
    while True:
        # read1 returns what has arrived, so the watchdog's byte count stays current; at most one byte past the
        # limit is asked for, so an endless body costs no more than that.
        chunk = resp.read1(min(_CHUNK, max_bytes + 1 - len(body)))
        # A cut socket reads as a clean end of stream: only the watchdog knows it was not.
        if watchdog.reason is not None:
            raise watchdog.failure()
        if not chunk:
            return bytes(body)
        body += chunk
        watchdog.received = len(body)
        if len(body) > max_bytes:
            raise _too_large(max_bytes)


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"audio_url body is larger than the limit of {max_bytes} bytes",
                           details={"field": "audio_url", "max_bytes": max_bytes})


def _network_error(exc: Exception | None) -> Exception:
    """Describe a network failure without leaking addresses or internals."""
    text = type(exc).__name__.lower() + " " + str(exc).lower()
    if "timeout" in text or "timed out" in text:
        return refuse("could not fetch audio_url: timed out")
    if "ssl" in text or "certificate" in text or "hostname" in text:
        return refuse("could not fetch audio_url: TLS verification failed")
    return refuse("could not fetch audio_url: connection failed")
