"""The tiered cache: look up cheapest tier first, promote hits, and clear everywhere through generations."""
from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from backend.observability import metrics
from backend.resilience.cache_entry import BYTES, JSON, MAGIC
from backend.resilience.cache_entry import CORRUPT as _CORRUPT
from backend.resilience.cache_entry import header as _header
from backend.resilience.cache_entry import value as _value
from backend.resilience.store import Store, StoreUnavailable

logger = logging.getLogger(__name__)
ALL = "*"
MAX_VALUE_BYTES = 2 << 20  # one synthesised clip is at most ~1 MB: larger values are not worth a tier's room


class Tier(Protocol):
    name: str
    shared: bool

    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, raw: bytes, ttl: float) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def stats(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class CacheEntry:
    """A cached value (bytes as stored, else what its JSON decodes to), whether it is still fresh, and its tier."""

    value: Any
    fresh: bool
    tier: str
    cost_usd: float = 0.0  # what producing the value cost: what a hit saves


class TieredCache:
    """Values are JSON or bytes (audio), each entry one bytes value in every tier (see MAGIC), kept ttl + stale grace;
    a value larger than ``max_value_bytes`` is not cached.

    A clear bumps a generation counter in the control store (Redis, or the host's disk). Every process re-reads
    the generation at most ``generation_refresh`` seconds after its last read, and a clear returns only once
    that long has passed after the bump: no worker serves a pre-clear entry once the clear returns, and a hit
    costs no round trip for the generation. A clear that cannot reach the store every sharer reads (``shared``:
    Redis when configured, else the host's disk) is refused rather than applied to this host or process alone.
    """

    def __init__(self, mode: str, tiers: list[Tier], control: Store, *, default_ttl: float,
                 namespace_ttls: dict[str, float] | None = None, stale_grace: float = 3600.0,
                 shared: Store | None = None, generation_refresh: float = 0.2,
                 max_value_bytes: int = MAX_VALUE_BYTES):
        self.mode = mode
        self.tiers = tiers
        self.control = control
        # Redis when configured, else the host's disk: generations live there; its last answers are remembered for
        # its outages.
        self.shared = shared
        self._remembered: dict[str, str] = {}
        # Generations read recently: {namespace: (token, monotonic time of the read)}; memory mode shares nothing.
        self.generation_refresh = generation_refresh if mode != "memory" else 0.0
        self._recent: dict[str, tuple[str, float]] = {}
        self.default_ttl = default_ttl
        self.namespace_ttls = dict(namespace_ttls or {})
        self.stale_grace = stale_grace
        self.max_value_bytes = max_value_bytes

    def ttl_for(self, namespace: str) -> float:
        """The fresh lifetime of a namespace's entries."""
        return self.namespace_ttls.get(namespace, self.default_ttl)

    def generation(self, namespace: str) -> str:
        """The current generation token of a namespace (global and namespace counters), read at most every
        ``generation_refresh`` seconds.

        While the shared store (Redis, or the host's disk) is down the fallback's counters mean nothing to entries
        written under its own, so the last token it gave is used: the cache keeps hitting through the outage.
        """
        recent = self._recent.get(namespace)
        now = time.monotonic()
        if recent is not None and now - recent[1] < self.generation_refresh:
            return recent[0]
        token = self._read_generation(namespace)
        self._recent[namespace] = (token, now)
        return token

    def _read_generation(self, namespace: str) -> str:
        try:
            everything, this = self.control.get_many([f"gen:{ALL}", f"gen:{namespace}"])
        except StoreUnavailable:
            return self._remembered.get(namespace, "0.0")
        token = f"{everything or 0}.{this or 0}"
        if self.shared is not None and not self.shared.available():
            return self._remembered.get(namespace, token)
        self._remembered[namespace] = token
        return token

    def token_for(self, key: str) -> str:
        """The current generation token of the namespace a key belongs to."""
        return self.generation(_namespace(key))

    def lookup(self, key: str, *, count: bool = True, token: str | None = None) -> CacheEntry | None:
        """The freshest current entry: the first fresh one from the fastest tier holding it (promoted to the faster
        tiers), else a stale one for stale-if-error. ``count=False`` keeps polling out of the statistics; ``token``
        is a generation the caller already read."""
        namespace = _namespace(key)
        token = token if token is not None else self.generation(namespace)
        stale: CacheEntry | None = None
        for index, tier in enumerate(self.tiers):
            try:
                raw = tier.get(key)
            except StoreUnavailable:
                self._count(namespace, tier.name, "unavailable", count)
                continue
            header = _header(raw) if raw is not None else None
            if raw is None or header is None or header["g"] != token:
                self._count(namespace, tier.name, "miss", count)
                continue
            fresh = header["f"] > time.time()
            # The payload is decoded only when it may be returned: fresh, or the first stale copy.
            value = _value(raw, header) if fresh or stale is None else _CORRUPT
            if value is _CORRUPT:
                self._count(namespace, tier.name, "miss", count)
                continue
            found = CacheEntry(value, fresh=fresh, tier=tier.name, cost_usd=float(header.get("c", 0.0)))
            if not fresh:
                # A slower tier may hold a fresher copy (another worker or instance refreshed it): keep looking.
                stale = found
                self._count(namespace, tier.name, "miss", count)
                continue
            self._count(namespace, tier.name, "hit", count)
            remaining = header["f"] + self.stale_grace - time.time()
            for faster in self.tiers[:index]:
                self._write(faster, key, raw, remaining)
            return found
        return stale

    def prefetch(self, key: str) -> None:
        """Before the request's rate limits: when the process's own tiers lack the entry and Redis is the next tier,
        have it read in the limits' round trip (backend/resilience/redis_prefetch.py), so that the lookup after them
        costs no round trip of its own. Behind a disk tier, or with the entry in memory, nothing is read ahead: the
        lookup would most likely not need it."""
        for tier in self.tiers:
            if not tier.shared:
                if tier.get(key) is not None:
                    return
                continue
            prefetch = getattr(tier, "prefetch", None)
            if prefetch is not None:
                prefetch(key)
            return

    def forget_prefetched(self) -> None:
        """The request is over: an entry read ahead and not looked up is dropped (a later request reads afresh)."""
        for tier in self.tiers:
            forget = getattr(tier, "forget_prefetched", None)
            if forget is not None:
                forget()

    def store(self, key: str, value: Any, ttl: float | None = None, cost_usd: float = 0.0,
              token: str | None = None) -> None:
        """Write value (JSON, or bytes kept as they are) to every tier, fresh for ttl (the namespace's TTL by default).

        ``token`` is the generation read before the value was computed: a value computed across a clear is then
        written under the old generation and never served. A value over max_value_bytes is not written at all.
        """
        namespace = _namespace(key)
        fresh_for = ttl if ttl is not None else self.ttl_for(namespace)
        if isinstance(value, (bytes, bytearray)):
            kind, payload = BYTES, bytes(value)
        else:
            # surrogatepass: a lone surrogate (JSON may hold "\ud800") round-trips, as json.loads reads it.
            kind, payload = JSON, json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(
                "utf-8", "surrogatepass")
        if len(payload) > self.max_value_bytes:
            logger.debug("value too large to cache", extra={"key": key, "bytes": len(payload),
                                                            "max_value_bytes": self.max_value_bytes})
            metrics.CACHE_OPERATIONS.labels("set", "too_large").inc()
            return
        token = token if token is not None else self.generation(namespace)
        header = json.dumps({"f": time.time() + fresh_for, "g": token, "c": round(cost_usd, 8), "k": kind},
                            separators=(",", ":")).encode()
        raw = b"".join((MAGIC, header, b"\n", payload))
        metrics.CACHE_OPERATIONS.labels("set", "ok").inc()
        for tier in self.tiers:
            self._write(tier, key, raw, fresh_for + self.stale_grace)

    def clear(self, namespace: str | None = None) -> dict[str, Any]:
        """Invalidate a namespace (or everything) for every worker and instance, then free the space.

        The generation is bumped in the shared store (Redis, else the host's disk) or not at all
        (StoreUnavailable, naming the store): a clear that only this host (or process) saw would come undone when
        the store returned.
        """
        (self.shared or self.control).incr(f"gen:{namespace or ALL}")
        self._recent.clear()
        # Every other process re-reads the generation within generation_refresh: returning after it has passed
        # means no worker anywhere still serves what was just cleared.
        time.sleep(self.generation_refresh)
        metrics.CACHE_OPERATIONS.labels("clear", "ok").inc()
        removed: dict[str, int] = {}
        for tier in self.tiers:
            try:
                removed[tier.name] = tier.delete_prefix(f"{namespace}:" if namespace else "")
            except StoreUnavailable:
                removed[tier.name] = 0
        logger.info("cache cleared", extra={"namespace": namespace or ALL, "removed": removed})
        return {"namespace": namespace or ALL, "removed": removed}

    def stats(self) -> dict[str, Any]:
        """Hits, misses and hit rate per namespace and tier (all workers of this host), and each tier's state."""
        by_namespace: dict[str, dict[str, dict[str, float]]] = {}
        for metric in metrics.aggregated_registry().collect():
            for sample in metric.samples:
                if sample.name != "cache_tier_lookups_total":
                    continue
                labels = sample.labels
                slot = by_namespace.setdefault(labels["namespace"], {}).setdefault(
                    labels["tier"], {"hit": 0, "miss": 0})
                slot[labels["result"]] = slot.get(labels["result"], 0) + int(sample.value)
        for tiers in by_namespace.values():
            for slot in tiers.values():
                looked = slot["hit"] + slot["miss"]
                slot["hit_rate"] = round(slot["hit"] / looked, 4) if looked else 0.0
        return {"mode": self.mode, "tiers": {t.name: t.stats() for t in self.tiers}, "namespaces": by_namespace}

    def _write(self, tier: Tier, key: str, raw: bytes, ttl: float) -> None:
        if ttl <= 0:
            return
        try:
            tier.set(key, raw, ttl)
        except StoreUnavailable:
            pass  # the other tiers still hold it; the store logged the outage once

    def _count(self, namespace: str, tier: str, result: str, count: bool = True) -> None:
        if count:
            _tier_lookups(namespace, tier, result).inc()


@functools.lru_cache(maxsize=1024)
def _tier_lookups(namespace: str, tier: str, result: str) -> Any:
    """The counter child of one (namespace, tier, result): looked up once, not per lookup (labels() takes a lock
    and builds a tuple each time). Namespaces are the services' own few."""
    return metrics.CACHE_TIER_LOOKUPS.labels(namespace, tier, result)


def _namespace(key: str) -> str:
    """The namespace of a key `namespace:version:...`."""
    return key.split(":", 1)[0]
