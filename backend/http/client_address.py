"""The caller's address as limits count it: an IPv4 address, or the /64 of an IPv6 one."""
from __future__ import annotations

import ipaddress

from flask import request

IPV6_PREFIX = 64  # what one subscriber is usually given: counting single IPv6 addresses would let it rotate freely


def address_bucket(address: str | None) -> str:
    """The unit an address counts as; "unknown" for anything that is not an address (never one bucket per
    string, so a malformed remote address cannot mint counters)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)  # an IPv4 client seen through a dual-stack socket
        # From the integer: drops a zone id (fe80::1%eth0), which ip_network would refuse.
        return str(ipaddress.IPv6Network((int(ip), IPV6_PREFIX), strict=False))
    return str(ip)


def request_address() -> str:
    """This request's bucket. remote_addr is the peer, or with TRUSTED_PROXIES the address ProxyFix took from
    X-Forwarded-For: behind a proxy without it, every caller shares the proxy's bucket."""
    return address_bucket(request.remote_addr)
