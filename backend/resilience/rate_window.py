"""Exact moving-window rate limits, several quotas checked and taken together in one Redis round trip.

Each quota is a list of request times, newest first, capped at its limit: a request is allowed when the entry at
position limit-1 is older than the window. On Redis one Lua script checks every quota and takes a slot from each
only if all allow, timed by Redis's own clock, so every worker and instance counts against the same budget. While
Redis cannot be reached, the host's local store decides (the disk store in disk/redis modes, shared by the host's
workers; this process's memory in redis_only mode).
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass

from backend.resilience.store import Store, StoreUnavailable
from backend.resilience.store_redis import RedisStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quota:
    """At most ``limit`` requests in any ``window`` seconds for one key."""

    key: str
    limit: int
    window: float


@dataclass(frozen=True)
class Verdict:
    """Whether the request may go on, and the tightest quota as the X-RateLimit headers report it."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # epoch seconds at which that quota has a free slot again
    now: float
    window: float

    @property
    def retry_after(self) -> float:
        """Whole seconds until a refused caller may succeed (at least 1)."""
        return float(max(1, math.ceil(self.reset_at - self.now)))


class MovingWindowLimiter:
    """Takes one slot from every quota of a request, or from none of them."""

    def __init__(self, local: Store, redis: RedisStore | None = None):
        self.local = local
        self.redis = redis
        self._lua = redis.script(LUA) if redis is not None else None

    def hit(self, quotas: list[Quota]) -> Verdict:
        """Take a slot from each quota if all have one; otherwise take nothing and say which refused."""
        if self._lua is not None and self.redis is not None and self.redis.available():
            try:
                return self._hit_redis(quotas)
            except StoreUnavailable:
                pass  # Redis went away: the local store decides until it is back
        try:
            return self._hit_local(quotas)
        except StoreUnavailable:
            # Nowhere to count: allow rather than fail every request (the outage is logged by the store).
            first = quotas[0]
            now = time.time()
            return Verdict(True, first.limit, first.limit, now + first.window, now, first.window)

    def _hit_redis(self, quotas: list[Quota]) -> Verdict:
        assert self.redis is not None and self._lua is not None
        keys = [self.redis.k(f"ratelimit:{q.key}") for q in quotas]
        args = [value for q in quotas for value in (q.limit, repr(float(q.window)))]
        allowed, index, remaining, reset_at, now = self.redis.call(lambda: self._lua(keys=keys, args=args))
        quota = quotas[int(index) - 1]
        return Verdict(bool(int(allowed)), quota.limit, int(remaining), float(reset_at), float(now), quota.window)

    def _hit_local(self, quotas: list[Quota]) -> Verdict:
        """The Python twin of the script, one quota at a time; a refusal gives back the slots already taken."""
        now = time.time()
        taken: list[Quota] = []
        verdicts: list[Verdict] = []
        for quota in quotas:
            verdict = self.local.update(f"ratelimit:{quota.key}", lambda raw, q=quota: _take(raw, q, now),
                                        ttl=quota.window)
            if not verdict.allowed:
                for done in taken:
                    self.local.update(f"ratelimit:{done.key}", lambda raw: _give_back(raw, now), ttl=done.window)
                return verdict
            taken.append(quota)
            verdicts.append(verdict)
        return min(verdicts, key=lambda v: v.remaining)


def _take(raw: str | None, quota: Quota, now: float) -> tuple[str | None, Verdict]:
    """(new list or None to leave it, verdict) for one quota."""
    stamps = [float(s) for s in json.loads(raw)] if raw else []
    live = [s for s in stamps[:quota.limit] if s > now - quota.window]
    if len(live) >= quota.limit:
        return None, Verdict(False, quota.limit, 0, live[quota.limit - 1] + quota.window, now, quota.window)
    live.insert(0, now)
    return json.dumps(live), Verdict(True, quota.limit, quota.limit - len(live), live[-1] + quota.window, now,
                                     quota.window)


def _give_back(raw: str | None, now: float) -> tuple[str | None, None]:
    """Remove the slot taken at ``now`` (a later quota refused the request)."""
    stamps = [float(s) for s in json.loads(raw)] if raw else []
    if now in stamps:
        stamps.remove(now)
        return json.dumps(stamps), None
    return None, None


LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function live(key, limit, horizon)
  -- entries are newest first: binary search for the first one at or before the horizon
  local lo, hi = 0, math.min(redis.call('LLEN', key), limit)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if tonumber(redis.call('LINDEX', key, mid)) > horizon then lo = mid + 1 else hi = mid end
  end
  return lo
end
local counts = {}
for i = 1, #KEYS do
  local limit, window = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local count = live(KEYS[i], limit, now - window)
  if count >= limit then
    local oldest = tonumber(redis.call('LINDEX', KEYS[i], limit - 1))
    return {0, i, 0, tostring(oldest + window), tostring(now)}
  end
  counts[i] = count
end
local stamp = string.format('%.6f', now)
local best, best_remaining = 1, nil
for i = 1, #KEYS do
  local limit, window = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  redis.call('LPUSH', KEYS[i], stamp)
  redis.call('LTRIM', KEYS[i], 0, limit - 1)
  redis.call('PEXPIRE', KEYS[i], math.ceil(window * 1000))
  local remaining = limit - counts[i] - 1
  if best_remaining == nil or remaining < best_remaining then best, best_remaining = i, remaining end
end
local oldest = tonumber(redis.call('LINDEX', KEYS[best], counts[best]))
return {1, best, best_remaining, tostring(oldest + tonumber(ARGV[2 * best])), tostring(now)}
"""
