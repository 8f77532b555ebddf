"""The tiered cache: look up cheapest tier first, promote hits, and clear everywhere through generations."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from backend.observability import metrics
from backend.resilience.store import Store, StoreUnavailable

logger = logging.getLogger(__name__)
ALL = "*"


class Tier(Protocol):
    name: str
    shared: bool

    def get(self, key: str) -> str | None: ...
    def set(self, key: str, raw: str, ttl: float) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def stats(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class CacheEntry:
    """A cached value, whether it is still fresh, and the tier that held it."""

    value: Any
    fresh: bool
    tier: str
    cost_usd: float = 0.0  # what producing the value cost: what a hit saves


class TieredCache:
    """Entries are JSON `{"v", "f": fresh until (epoch s), "g": generation, "c": cost}`, kept ttl + stale grace.

    A clear bumps a generation counter in the control store (Redis, or the host's disk). Every process re-reads
    the generation at most ``generation_refresh`` seconds after its last read, and a clear returns only once
    that long has passed after the bump: no worker serves a pre-clear entry once the clear returns, and a hit
    costs no round trip for the generation. A clear that cannot reach the store every sharer reads (``shared``:
    Redis when configured, else the host's disk) is refused rather than applied to this host or process alone.
    """

    def __init__(self, mode: str, tiers: list[Tier], control: Store, *, default_ttl: float,
                 namespace_ttls: dict[str, float] | None = None, stale_grace: float = 3600.0,
                 shared: Store | None = None, generation_refresh: float = 0.2):
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
            entry = _decode(raw)
            if entry is None or entry.get("g") != token:
                self._count(namespace, tier.name, "miss", count)
                continue
            found = CacheEntry(entry["v"], fresh=entry["f"] > time.time(), tier=tier.name,
                               cost_usd=float(entry.get("c", 0.0)))
            if not found.fresh:
                # A slower tier may hold a fresher copy (another worker or instance refreshed it): keep looking.
                stale = stale or found
                self._count(namespace, tier.name, "miss", count)
                continue
            self._count(namespace, tier.name, "hit", count)
            remaining = entry["f"] + self.stale_grace - time.time()
            for faster in self.tiers[:index]:
                self._write(faster, key, raw, remaining)  # type: ignore[arg-type]
            return found
        return stale

    def store(self, key: str, value: Any, ttl: float | None = None, cost_usd: float = 0.0,
              token: str | None = None) -> None:
        """Write value to every tier, fresh for ttl (the namespace's TTL by default).

        ``token`` is the generation read before the value was computed: a value computed across a clear is then
        written under the old generation and never served.
        """
        namespace = _namespace(key)
        fresh_for = ttl if ttl is not None else self.ttl_for(namespace)
        token = token if token is not None else self.generation(namespace)
        raw = json.dumps({"v": value, "f": time.time() + fresh_for, "g": token,
                          "c": round(cost_usd, 8)}, separators=(",", ":"), ensure_ascii=False)
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

    def _write(self, tier: Tier, key: str, raw: str, ttl: float) -> None:
        if ttl <= 0:
            return
        try:
            tier.set(key, raw, ttl)
        except StoreUnavailable:
            pass  # the other tiers still hold it; the store logged the outage once

    def _count(self, namespace: str, tier: str, result: str, count: bool = True) -> None:
        if count:
            metrics.CACHE_TIER_LOOKUPS.labels(namespace, tier, result).inc()


def _namespace(key: str) -> str:
    """The namespace of a key `namespace:version:...`."""
    return key.split(":", 1)[0]


def _decode(raw: str | None) -> dict[str, Any] | None:
    """Parse a stored entry; a corrupt one is a miss, not an error."""
    if raw is None:
        return None
    try:
        entry = json.loads(raw)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) and {"v", "f", "g"} <= entry.keys() else None
