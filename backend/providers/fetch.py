"""Download learner audio from an allow-listed `audio_url`, with SSRF, size and time limits."""
from __future__ import annotations

import http.client
import ipaddress
import socket
import threading
import time
from urllib.parse import quote, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection

from backend.errors import PayloadTooLarge, ValidationFailed

_CHUNK = 64 * 1024
_MAX_URL_LENGTH = 4096
# Every printable ASCII character except space: only non-ASCII is percent-encoded in the request target.
_TARGET_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def _refuse(message: str) -> ValidationFailed:
    return ValidationFailed(message, status=422, details={"field": "audio_url"})


def _normalize_host(host: str) -> str:
    """Lower-case, drop a trailing dot and IDNA-encode a host name; IP literals are left as written."""
    host = host.strip().lower().rstrip(".")
    try:
        return host.encode("idna").decode("ascii") if host else ""
    except UnicodeError:
        return ""


def is_forbidden_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for any address that is not plainly public, including IPv4 hidden inside IPv6 forms."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_forbidden_address(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            return is_forbidden_address(ip.sixtofour)
        if ip in _NAT64:
            return is_forbidden_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip in _NAT64_LOCAL:
            return True
    return (not ip.is_global or ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
            or ip.is_reserved or ip.is_unspecified or (ip.version == 4 and ip in _CGNAT))


def _resolve(host: str, port: int, allow_private: bool) -> list[str]:
    """Resolve the host once and return its addresses, refusing if any of them is not public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise _refuse("could not fetch audio_url: host name could not be resolved") from None
    addresses: list[str] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        # One bad address refuses the whole host: a DNS answer mixing public and private is an attack.
        if not allow_private and is_forbidden_address(ip):
            raise _refuse("audio_url host resolves to a non-public address")
        if str(ip) not in addresses:
            addresses.append(str(ip))
    if not addresses:
        raise _refuse("could not fetch audio_url: host name could not be resolved")
    return addresses


def _parse(url: str, allowed_hosts: frozenset[str], allow_http: bool) -> tuple[str, str, int, str]:
    """Check the URL against the policy and return (scheme, host, port, request target)."""
    if not allowed_hosts:
        raise _refuse("audio_url is disabled: AUDIO_URL_ALLOWED_HOSTS is empty")
    if not isinstance(url, str) or not url or len(url) > _MAX_URL_LENGTH:
        raise _refuse("audio_url is not a valid URL")
    # Whitespace, control characters and backslashes are where URL parsers disagree; refuse them all.
    if any(c <= " " or c == "\x7f" or c == "\\" for c in url):
        raise _refuse("audio_url contains characters that are not allowed")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse("audio_url is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in (("https", "http") if allow_http else ("https",)):
        raise _refuse("audio_url must use https" if not allow_http else "audio_url must use http or https")
    if "@" in parts.netloc:
        raise _refuse("audio_url must not contain credentials")
    host = _normalize_host(parts.hostname or "")
    if not host:
        raise _refuse("audio_url has no valid host")
    if host not in {_normalize_host(h) for h in allowed_hosts}:
        raise _refuse(f"audio_url host {host!r} is not allowed")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return scheme, host, port or (443 if scheme == "https" else 80), quote(target, safe=_TARGET_SAFE)


def _ca_bundle() -> str | None:
    try:
        import certifi  # a dependency of requests; the system store is the fallback
    except ImportError:
        return None
    return certifi.where()


def fetch_audio(url: str, *, allowed_hosts: frozenset[str], max_bytes: int, allow_http: bool = False,
                connect_timeout: float = 3.0, read_timeout: float = 10.0, total_timeout: float = 20.0,
                allow_private: bool = False, ca_certs: str | None = None) -> bytes:
    """Return the body of `url`, refusing anything outside the policy (422) or larger than max_bytes (413).

    `allow_private` (AUDIO_URL_ALLOW_PRIVATE) admits an allow-listed internal media server on a private address.
    """
    scheme, host, port, target = _parse(url, allowed_hosts, allow_http)
    deadline = time.monotonic() + total_timeout
    addresses = _resolve(host, port, allow_private)
    default_port = 443 if scheme == "https" else 80
    host_header = (f"[{host}]" if ":" in host else host) + ("" if port == default_port else f":{port}")
    headers = {"Host": host_header, "Accept": "audio/*, */*;q=0.5", "Accept-Encoding": "identity",
               "User-Agent": "backend-ai-audio-fetch"}

    conn = _connect(scheme, host, port, addresses, connect_timeout, deadline, ca_certs)
    # urllib3 applies conn.timeout to the socket before sending and before reading the response.
    conn.timeout = read_timeout
    # Kept here because http.client drops conn.sock when the response owns the connection.
    sock = conn.sock
    # The watchdog cuts the socket at the deadline, so a server dripping headers or body cannot hold us.
    expired = threading.Event()

    def _expire() -> None:
        expired.set()
        try:
            # socket.socket's own shutdown: SSLSocket.shutdown would also unwrap TLS under a reading thread.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass

    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        return _download(conn, target, headers, max_bytes, expired)
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, ValueError) as exc:
        if expired.is_set():
            raise _refuse("could not fetch audio_url: download took too long") from None
        raise _network_error(exc) from None
    finally:
        watchdog.cancel()
        conn.close()
        sock.close()


def _connect(scheme: str, host: str, port: int, addresses: list[str], connect_timeout: float,
             deadline: float, ca_certs: str | None) -> HTTPConnection:
    """Open a connection to the first reachable checked address; TLS still verifies the host name."""
    last: Exception | None = None
    for ip in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        timeout = min(connect_timeout, remaining)
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
    # No attempt at all means slow name resolution already used up the deadline.
    raise _network_error(last) if last is not None else _refuse("could not fetch audio_url: timed out")


def _download(conn: HTTPConnection, target: str, headers: dict[str, str], max_bytes: int,
              expired: threading.Event) -> bytes:
    """Send the GET, check the status and length, and read the body up to max_bytes."""
    conn.request("GET", target, headers=headers, preload_content=False, decode_content=False)
    resp = conn.getresponse()
    try:
        if 300 <= resp.status < 400:
            raise _refuse(f"could not fetch audio_url: HTTP {resp.status} (redirects are not followed)")
        if not 200 <= resp.status < 300:
            raise _refuse(f"could not fetch audio_url: HTTP {resp.status}")
        length = resp.headers.get("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > max_bytes:
            raise _too_large(max_bytes)
        body = bytearray()
        while True:
            # Ask for at most one byte past the limit so an endless body costs no more than that.
            chunk = resp.read(min(_CHUNK, max_bytes + 1 - len(body)))
            if expired.is_set():
                raise _refuse("could not fetch audio_url: download took too long")
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > max_bytes:
                raise _too_large(max_bytes)
    finally:
        resp.close()


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"audio_url body is larger than the limit of {max_bytes} bytes",
                           details={"field": "audio_url", "max_bytes": max_bytes})


def _network_error(exc: Exception | None) -> ValidationFailed:
    """Describe a network failure without leaking addresses or internals."""
    text = type(exc).__name__.lower() + " " + str(exc).lower()
    if "timeout" in text or "timed out" in text:
        return _refuse("could not fetch audio_url: timed out")
    if "ssl" in text or "certificate" in text or "hostname" in text:
        return _refuse("could not fetch audio_url: TLS verification failed")
    return _refuse("could not fetch audio_url: connection failed")
