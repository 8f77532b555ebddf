"""Exact moving-window rate limits, several quotas checked and taken together in one Redis round trip.

Each quota is a list of request times, newest first, capped at its limit: a request is allowed when the entry at
position limit-1 is older than the window. On Redis one Lua script checks every quota and takes a slot from each
only if all allow, timed by Redis's own clock, so every worker and instance counts against the same budget. While
Redis cannot be reached, the local store given decides (its Python twin works on any Store).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

from backend.resilience.store import Store, StoreUnavailable
from backend.resilience.store_redis import RedisStore


@dataclass(frozen=True)
class Quota:
    """At most ``limit`` requests in any ``window`` seconds for one key."""

    key: str
    limit: int
    window: float


@dataclass(frozen=True)
class Verdict:
    """Whether the request may go on, and the quota the X-RateLimit headers report: the refusing one, else the
    first."""

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
        """Take a slot from each quota if all have one; otherwise take nothing and say which refused. The first
        quota is the one reported when all allow (the others are guards: counting them would cost more)."""
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
        return verdicts[0]


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
-- Reading the clock before writing needs effects replication: the default since Redis 5, asked for before it.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
-- Every quota needs a free slot: its entry at position limit-1 is missing or older than its window (one LINDEX).
for i = 1, #KEYS do
  local last = redis.call('LINDEX', KEYS[i], tonumber(ARGV[2 * i - 1]) - 1)
  if last and tonumber(last) > now - tonumber(ARGV[2 * i]) then
    return {0, i, 0, tostring(tonumber(last) + tonumber(ARGV[2 * i])), tostring(now)}
  end
end
-- The first quota is the one reported: count its live entries (newest first, so a binary search).
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local lo, hi = 0, math.min(redis.call('LLEN', KEYS[1]), limit)
while lo < hi do
  local mid = math.floor((lo + hi) / 2)
  if tonumber(redis.call('LINDEX', KEYS[1], mid)) > now - window then lo = mid + 1 else hi = mid end
end
local stamp = string.format('%.6f', now)
for i = 1, #KEYS do
  redis.call('LPUSH', KEYS[i], stamp)
  -- The reported quota keeps only its live entries; the others at most their limit.
  redis.call('LTRIM', KEYS[i], 0, i == 1 and lo or tonumber(ARGV[2 * i - 1]) - 1)
  redis.call('PEXPIRE', KEYS[i], math.ceil(tonumber(ARGV[2 * i]) * 1000))
end
local oldest = lo > 0 and tonumber(redis.call('LINDEX', KEYS[1], lo)) or now
return {1, 1, limit - lo - 1, tostring(oldest + window), tostring(now)}
"""
