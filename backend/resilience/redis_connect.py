"""REDIS_URL, parsed once, turned into redis-py clients and pools: a plain Redis URL, or Redis Sentinel.

    redis://[[user]:password@]host[:port][/db]      rediss://... (TLS)      unix:///path/to/redis.sock[?db=N]
    redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service_name[/db][?option=value&...]
    rediss+sentinel://...   the same over TLS, to the sentinels and to the Redis servers alike

A sentinel's port defaults to 26379 and db to 0. The URL's user and password are the Redis servers' (requirepass or
an ACL user) and go to them only; the sentinels' are ``sentinel_password`` (and ``sentinel_username``) in the query,
written again when they are the same. Sentinel's auth is configured apart from the servers' (its own requirepass)
and often left off; a sentinel refuses an ACL user it does not have, and a password is not sent where it is not
needed. TLS options in the query (rediss+sentinel only): ssl_ca_certs, ssl_certfile, ssl_keyfile, ssl_cert_reqs
(none | optional | required) and ssl_check_hostname (sentinels report addresses, so a certificate must name those or
the check be off). Percent-encode reserved characters (/ @ : ? # % , and in the query +) in passwords.

Every client of the service (the shared store, flask-limiter, the Huey queue) is built here, so they all follow the
primary the same way: each new connection asks the sentinels for the current primary (redis-py's
SentinelManagedConnection), a connection whose command failed is dropped, idle ones to a former primary are closed
once the sentinels name another, and a demoted primary's READONLY reply becomes a ConnectionError. Nothing here
connects: pools connect on first use. Never put the URL or a password in a message."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

PLAIN_SCHEMES = ("redis", "rediss", "unix")
SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}  # scheme -> TLS
SENTINEL_PORT = 26379
FORM = "redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service_name[/db]"
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_CERT_REQS = {"none": "none", "optional": "optional", "required": "required"}
# A TLS option's parser: a value it cannot read raises KeyError (then a one-line error naming the option).
_TLS_OPTIONS: dict[str, Callable[[str], Any]] = {
    "ssl_ca_certs": str, "ssl_certfile": str, "ssl_keyfile": str,
    "ssl_cert_reqs": lambda v: _CERT_REQS[v.lower()],
    "ssl_check_hostname": lambda v: _BOOLEANS[v.lower()]}
_SENTINEL_AUTH = ("sentinel_username", "sentinel_password")


@dataclass(frozen=True)
class SentinelTarget:
    """Where a Sentinel REDIS_URL points; secrets are kept out of repr()."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)
    tls: dict[str, Any] | None = None  # None: plain TCP; else ssl=True and the TLS options given


def fail_fast(timeout: float = 0.25) -> dict[str, Any]:
    """Client options that detect a dead or hung Redis within ``timeout``: no retries (redis-py 6+ retries 3 times
    by default, and a retry loop is what an outage switch must avoid), no health-check PING before commands."""
    return {"socket_connect_timeout": timeout, "socket_timeout": timeout, "retry": Retry(NoBackoff(), 0),
            "health_check_interval": 0}


def parse_redis_url(url: str) -> SentinelTarget | None:
    """None for a plain Redis URL (redis-py reads it), the target of a Sentinel URL; ValueError, one line that
    never quotes the URL, for anything else."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in PLAIN_SCHEMES:
        try:
            parse_url(url)
        except ValueError:  # its message may quote a piece of the URL: the password's, when it is not encoded
            raise ValueError("not a usable Redis URL: check its port, db and options, and percent-encode / @ : "
                             "in the password") from None
        return None
    if scheme not in SENTINEL_SCHEMES:
        raise ValueError(f"must start with redis://, rediss://, unix://, redis+sentinel:// or rediss+sentinel:// "
                         f"({FORM})")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError(f"not a usable Sentinel URL: {FORM}") from None
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":") if userinfo else ("", "", "")
    sentinels = tuple(_address(entry) for entry in hosts.split(","))
    path = [unquote(p) for p in parts.path.strip("/").split("/")] if parts.path.strip("/") else []
    if not 1 <= len(path) <= 2 or not path[0]:
        raise ValueError(f"a Sentinel URL names its service, and optionally a db, after the hosts: {FORM}")
    if len(path) == 2 and not (path[1].isascii() and path[1].isdigit()):
        raise ValueError(f"the db after the service name must be a number: {FORM}")
    query = _query(parts.query, tls=SENTINEL_SCHEMES[scheme])
    return SentinelTarget(
        sentinels=sentinels, service=path[0],
        db=int(path[1]) if len(path) == 2 else 0, username=unquote(username) or None,
        password=unquote(password) or None, sentinel_username=query.pop("sentinel_username", None) or None,
        sentinel_password=query.pop("sentinel_password", None) or None,
        tls=query if SENTINEL_SCHEMES[scheme] else None)


def connection_pool(url: str, **options: Any) -> redis.ConnectionPool:
    """A pool for REDIS_URL with these connection options; for Sentinel, one that connects to the current primary
    (the sentinels are asked with the same connect timeout, 1 s when none is given, and never retried)."""
    target = parse_redis_url(url)
    if target is None:
        return redis.ConnectionPool.from_url(url, **options)
    tls = {"ssl": True, **target.tls} if target.tls is not None else {}
    timeout = options.get("socket_connect_timeout") or 1.0
    manager = Sentinel(list(target.sentinels), sentinel_kwargs={
        "socket_connect_timeout": timeout, "socket_timeout": timeout, "retry": Retry(NoBackoff(), 0),
        "username": target.sentinel_username, "password": target.sentinel_password, **tls})
    return SentinelConnectionPool(target.service, manager, is_master=True, db=target.db, username=target.username,
                                  password=target.password, **tls, **options)


def redis_client(url: str, **options: Any) -> redis.Redis:
    """A client for REDIS_URL owning its pool (``connection_pool``); closing it closes the pool."""
    return redis.Redis.from_pool(connection_pool(url, **options))


def close_client(client: redis.Redis) -> None:
    """Close a client from ``redis_client``, and its connections to the sentinels."""
    pool = client.connection_pool
    client.close()
    if isinstance(pool, SentinelConnectionPool):
        pool.sentinel_manager.close()


def _address(entry: str) -> tuple[str, int]:
    """host, host:port or [ipv6]:port -> (host, port), the port defaulting to Sentinel's."""
    try:
        parsed = urlsplit(f"//{entry.strip()}")
        host, port = parsed.hostname, parsed.port
    except ValueError:
        host, port = None, None
    if not host or port == 0 or (port is None and entry.strip().endswith(":")):
        raise ValueError(f"each sentinel must be host or host:port, comma-separated (percent-encode / @ : in the "
                         f"password): {FORM}")
    return host, SENTINEL_PORT if port is None else port


def _query(query: str, *, tls: bool) -> dict[str, Any]:
    """The options of a Sentinel URL's query: the sentinels' credentials, and TLS settings over TLS."""
    allowed = {*_SENTINEL_AUTH, *(_TLS_OPTIONS if tls else ())}
    options: dict[str, Any] = {}
    for name, values in parse_qs(query, keep_blank_values=True).items():
        if name not in allowed:
            raise ValueError(f"unknown option {name!r} in a {'rediss' if tls else 'redis'}+sentinel URL "
                             f"(known: {', '.join(sorted(allowed))})")
        try:
            options[name] = _TLS_OPTIONS.get(name, str)(values[-1])
        except KeyError:
            raise ValueError(f"invalid value for {name!r} in the Sentinel URL") from None
    return options
