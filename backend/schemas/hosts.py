"""The syntax of a host allow-list entry (AUDIO_URL_ALLOWED_HOSTS): "host", "host:port" or "[ipv6]:port".
Pure parsing, below every layer: settings validate with it at start, the audio_url fetch checks URLs against it."""
from __future__ import annotations

from typing import Iterable

# (host, port) pairs; port None means "the scheme's default port only".
AllowList = frozenset[tuple[str, int | None]]


def normalize_host(host: str) -> str:
    """Lower-case, drop a trailing dot and IDNA-encode a host name; IP literals are left as written."""
    host = host.strip().lower().rstrip(".")
    try:
        return host.encode("idna").decode("ascii") if host else ""
    except UnicodeError:
        return ""


def _split_entry(entry: str) -> tuple[str, int | None]:
    """Split "host", "host:port", "[v6]", "[v6]:port" or a bare IPv6 address into (host, port or None)."""
    entry = entry.strip()
    if entry.startswith("["):
        host, closed, rest = entry[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(f"{entry!r} is not 'host', 'host:port' or '[ipv6]:port'")
        port_text = rest[1:] if rest else None
    elif entry.count(":") == 1:
        host, port_text = entry.split(":")
    else:  # a name, an IPv4 address, or an IPv6 address written without brackets (and so without a port)
        host, port_text = entry, None
    if port_text is None:
        port = None
    elif port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise ValueError(f"{entry!r}: the port must be a number from 1 to 65535")
    if not normalize_host(host):
        raise ValueError(f"{entry!r} names no valid host")
    return normalize_host(host), port


def parse_allowed_hosts(entries: Iterable[str]) -> AllowList:
    """Parse AUDIO_URL_ALLOWED_HOSTS entries, raising ValueError naming the first bad one."""
    return frozenset(_split_entry(entry) for entry in entries if entry.strip())
