"""What an `audio_url` may name: the URL, host and port rules of the allow-list, and which addresses are public."""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import quote, urlsplit

from backend.errors import ValidationFailed
from backend.schemas.hosts import AllowList, normalize_host, parse_allowed_hosts  # noqa: F401  (re-exported)

_MAX_URL_LENGTH = 4096
# Every printable ASCII character except space: only non-ASCII is percent-encoded in the request target.
_TARGET_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))
_DEFAULT_PORTS = {"https": 443, "http": 80}

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def refuse(message: str) -> ValidationFailed:
    """A 422 about the `audio_url` field."""
    return ValidationFailed(message, status=422, details={"field": "audio_url"})


def check_url(url: str, allowed: AllowList, allow_http: bool) -> tuple[str, str, int, str]:
    """Check the URL against the policy and return (scheme, host, port, request target)."""
    if not allowed:
        raise refuse("audio_url is disabled: AUDIO_URL_ALLOWED_HOSTS is empty")
    if not isinstance(url, str) or not url or len(url) > _MAX_URL_LENGTH:
        raise refuse("audio_url is not a valid URL")
    # Whitespace, control characters and backslashes are where URL parsers disagree; refuse them all.
    if any(c <= " " or c == "\x7f" or c == "\\" for c in url):
        raise refuse("audio_url contains characters that are not allowed")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise refuse("audio_url is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in (("https", "http") if allow_http else ("https",)):
        raise refuse("audio_url must use https" if not allow_http else "audio_url must use http or https")
    if "@" in parts.netloc:
        raise refuse("audio_url must not contain credentials")
    host = normalize_host(parts.hostname or "")
    if not host:
        raise refuse("audio_url has no valid host")
    ports = {entry_port for entry_host, entry_port in allowed if entry_host == host}
    if not ports:
        raise refuse(f"audio_url host {host!r} is not allowed")
    # An explicit port is kept as written: ":0" must not quietly become the default (it is refused below).
    default = _DEFAULT_PORTS[scheme]
    port = default if port is None else port
    if not ((port == default and None in ports) or port in ports):
        raise refuse(f"audio_url port {port} is not allowed for host {host!r}")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return scheme, host, port, quote(target, safe=_TARGET_SAFE)


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


def checked_addresses(infos: list, allow_private: bool) -> list[str]:
    """The addresses of a getaddrinfo answer, refusing the host if any of them is not public."""
    addresses: list[str] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        # One bad address refuses the whole host: a DNS answer mixing public and private is an attack.
        if not allow_private and is_forbidden_address(ip):
            raise refuse("audio_url host resolves to a non-public address")
        if str(ip) not in addresses:
            addresses.append(str(ip))
    if not addresses:
        raise refuse("could not fetch audio_url: host name could not be resolved")
    return addresses
