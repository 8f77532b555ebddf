"""Entry headers parsed once per distinct header, never at the cost of reading one wrongly: a rewritten entry is read
by its new header, a corrupt one is a miss every time, and what is remembered stays bounded."""
from __future__ import annotations

import time

from backend.resilience import cache_entry
from backend.resilience.cache import TieredCache
from backend.resilience.cache_entry import MAGIC
from backend.resilience.cache_entry import header as _header
from backend.resilience.cache_tiers import MemoryTier
from backend.resilience.store import MemoryStore

KEY = "speech:v1:azure:abc"


def memory_cache() -> TieredCache:
    return TieredCache("memory", [MemoryTier(1 << 20)], MemoryStore(), default_ttl=60)


def test_a_rewritten_entry_is_read_by_its_new_header():
    tiered = memory_cache()
    tiered.store(KEY, b"first", cost_usd=0.1)
    first = tiered.lookup(KEY)
    tiered.store(KEY, b"second", cost_usd=0.2, ttl=0.05)
    second = tiered.lookup(KEY)
    assert (first.value, first.cost_usd, first.fresh) == (b"first", 0.1, True)
    assert (second.value, second.cost_usd, second.fresh) == (b"second", 0.2, True)
    time.sleep(0.1)
    stale = tiered.lookup(KEY)
    assert stale.value == b"second" and not stale.fresh  # freshness is the entry's own, never a remembered one's


def test_the_same_header_is_parsed_once_and_read_the_same():
    raw = MAGIC + b'{"f":1e12,"g":"0.0","c":0.5,"k":"bytes"}\n' + b"\xff\xfbaudio"
    header = _header(raw)
    assert header is not None and _header(raw) is header
    assert header["@"] == raw.index(b"\n") + 1 and cache_entry.value(raw, header) == b"\xff\xfbaudio"


def test_a_corrupt_header_is_a_miss_every_time_and_never_remembered():
    for line in (b'{"f":"soon","g":"0.0","k":"bytes"}', b'{"f":1e12,"k":"bytes"}', b"not json", b"[1, 2]"):
        raw = MAGIC + line + b"\npayload"
        assert _header(raw) is None and _header(raw) is None
        assert line not in cache_entry._headers


def test_the_headers_remembered_are_bounded(monkeypatch):
    monkeypatch.setattr(cache_entry, "_HEADERS_REMEMBERED", 8)
    monkeypatch.setattr(cache_entry, "_headers", {})
    for i in range(50):
        raw = MAGIC + f'{{"f":{i},"g":"0.0","c":0,"k":"json"}}'.encode() + b"\n1"
        assert _header(raw)["f"] == i
        assert len(cache_entry._headers) <= 8
