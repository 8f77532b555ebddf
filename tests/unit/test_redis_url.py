"""REDIS_URL's forms: plain Redis URLs as before, and Sentinel (redis+sentinel://, rediss+sentinel://), checked at start
with one-line errors that name the variable and never quote the URL (it may hold a password)."""
from __future__ import annotations

import pytest
from redis.sentinel import SentinelConnectionPool, SentinelManagedConnection, SentinelManagedSSLConnection

from backend.resilience.redis_connect import SentinelTarget, connection_pool, fail_fast, parse_redis_url
from backend.settings import ConfigError, load_settings


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "rediss://:secret@redis.example:6380/2",
                                 "unix:///run/redis/redis.sock?db=1", "redis://user:p%40ss@h"])
def test_plain_urls_are_left_to_redis_py(url):
    assert parse_redis_url(url) is None
    assert load_settings({"REDIS_URL": url}).redis_url.get_secret_value() == url


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_db():
    target = parse_redis_url("redis+sentinel://s1.example:26380,s2.example,[::1]:26381/mymaster/3")
    assert target == SentinelTarget(sentinels=(("s1.example", 26380), ("s2.example", 26379), ("::1", 26381)),
                                    service="mymaster", db=3)
    assert parse_redis_url("redis+sentinel://10.0.0.1:26379/mymaster").db == 0
    assert parse_redis_url("redis+sentinel://10.0.0.1:26379/mymaster/").service == "mymaster"


def test_credentials_are_decoded_and_kept_out_of_repr():
    target = parse_redis_url("redis+sentinel://app:p%2Fa%40ss@h1:26379,h2:26379/svc/1"
                             "?sentinel_password=s%26p&sentinel_username=watcher")
    assert (target.username, target.password) == ("app", "p/a@ss")
    assert (target.sentinel_username, target.sentinel_password) == ("watcher", "s&p")
    assert "p/a@ss" not in repr(target) and "s&p" not in repr(target)
    assert parse_redis_url("redis+sentinel://:only-password@h/svc").username is None


def test_tls_options_are_typed_and_only_allowed_over_tls():
    target = parse_redis_url("rediss+sentinel://h/svc?ssl_ca_certs=/etc/ca.pem&ssl_cert_reqs=Required"
                             "&ssl_check_hostname=no&ssl_certfile=/c.pem&ssl_keyfile=/k.pem")
    assert target.tls == {"ssl_ca_certs": "/etc/ca.pem", "ssl_cert_reqs": "required", "ssl_check_hostname": False,
                          "ssl_certfile": "/c.pem", "ssl_keyfile": "/k.pem"}
    assert parse_redis_url("rediss+sentinel://h/svc").tls == {}
    assert parse_redis_url("redis+sentinel://h/svc").tls is None
    with pytest.raises(ValueError, match="unknown option 'ssl_ca_certs'"):
        parse_redis_url("redis+sentinel://h/svc?ssl_ca_certs=/etc/ca.pem")


@pytest.mark.parametrize("url, reason", [
    ("http://x", "must start with redis://, rediss://, unix://, redis+sentinel://"),
    ("redis+sentinel://h1:26379", "names its service"),
    ("redis+sentinel://h1:26379/svc/1/extra", "names its service"),
    ("redis+sentinel://h1:26379/svc/first", "db after the service name must be a number"),
    ("redis+sentinel://h1:port/svc", "each sentinel must be host or host:port"),
    ("redis+sentinel://h1:99999/svc", "each sentinel must be host or host:port"),
    ("redis+sentinel://h1:0/svc", "each sentinel must be host or host:port"),
    ("redis+sentinel://h1:26379,h2:/svc", "each sentinel must be host or host:port"),
    ("redis+sentinel://h1,,h2/svc", "each sentinel must be host or host:port"),
    ("redis+sentinel:///svc", "each sentinel must be host or host:port"),
    ("redis+sentinel://h1/svc?socket_timeout=9", "unknown option 'socket_timeout'"),
    ("rediss+sentinel://h1/svc?ssl_cert_reqs=maybe", "invalid value for 'ssl_cert_reqs'"),
    ("redis+sentinel://[::1/svc", "not a usable Sentinel URL"),
    ("redis://h:port/0", "not a usable Redis URL"),
])
def test_invalid_urls_fail_at_start_in_one_line_naming_redis_url(url, reason):
    with pytest.raises(ConfigError) as caught:
        load_settings({"REDIS_URL": url})
    message = str(caught.value)
    assert message.startswith("Invalid configuration: REDIS_URL: ") and reason in message
    assert "\n" not in message


@pytest.mark.parametrize("url", ["redis+sentinel://:top/secret@h1:26379/svc",  # "/" not percent-encoded
                                 "redis://:top/secret@h1:6379/0",
                                 "redis+sentinel://:topsecret@h1:x/svc?sentinel_password=topsecret"])
def test_errors_never_quote_a_password(url):
    with pytest.raises(ConfigError) as caught:
        load_settings({"REDIS_URL": url})
    assert "secret" not in str(caught.value) and "top" not in str(caught.value)


def test_a_sentinel_pool_is_fail_fast_on_the_primary_and_keeps_the_servers_password_from_the_sentinels():
    pool = connection_pool("redis+sentinel://:data-pw@127.0.0.1:1,127.0.0.1:2/svc/4?sentinel_password=watch-pw",
                           decode_responses=True, max_connections=7, **fail_fast(0.25))
    assert isinstance(pool, SentinelConnectionPool) and pool.is_master and pool.service_name == "svc"
    assert pool.connection_class is SentinelManagedConnection and pool.max_connections == 7
    kwargs = pool.connection_kwargs
    assert (kwargs["db"], kwargs["password"], kwargs["socket_timeout"], kwargs["retry"].get_retries()) == \
        (4, "data-pw", 0.25, 0)
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [1, 2]
    for sentinel in sentinels:
        options = sentinel.connection_pool.connection_kwargs
        assert options["password"] == "watch-pw" and options["socket_connect_timeout"] == 0.25
        assert options["retry"].get_retries() == 0  # redis-py's default would retry a dead sentinel 3 times


def test_tls_reaches_both_the_sentinels_and_the_servers():
    pool = connection_pool("rediss+sentinel://h/svc?ssl_ca_certs=/etc/ca.pem&ssl_check_hostname=false")
    assert pool.connection_class is SentinelManagedSSLConnection
    assert pool.connection_kwargs["ssl_ca_certs"] == "/etc/ca.pem"
    sentinel = pool.sentinel_manager.sentinels[0].connection_pool
    assert sentinel.connection_class.__name__ == "SSLConnection"
    assert sentinel.connection_kwargs["ssl_check_hostname"] is False
