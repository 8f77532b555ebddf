"""Exact moving-window rate limits, several quotas checked and taken together in one Redis round trip.

Each quota is a list of request times, newest first, capped at its limit: a request is allowed when the entry at
position limit-1 is older than the window. On Redis one Lua script checks every quota and takes a slot from each
only if all allow, timed by Redis's own clock, so every worker and instance counts against the same budget. While
Redis cannot be reached, the local store given decides (its Python twin works on any Store).

A request may also name gates: keys of the shared store whose presence refuses it outright, taking no slot (an
address locked out for guessing keys). The script checks them in the same round trip; the local twin does not
(they live in another store), and its verdict says so, leaving the caller to check them itself. And it may name
counters, incremented when the request is allowed (a caller's requests today), in the same round trip too.

Both twins ignore request times later than their clock's now: those were written before the clock stepped back
(NTP, an operator, a host rebooted with the disk store kept), and counting them would hold a caller off until the
clock caught up, up to hours. The cost is at most one window's worth of extra requests after such a step.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

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
    gates_checked: bool = False  # whether the gates were checked (on Redis), so that `gate` is to be believed
    gate: str | None = None  # the value of the first gate found closed: the request was refused for it

    @property
    def retry_after(self) -> float:
        """Whole seconds until a refused caller may succeed (at least 1)."""
        return float(max(1, math.ceil(self.reset_at - self.now)))


class MovingWindowLimiter:
    """Takes one slot from every quota of a request, or from none of them."""

    def __init__(self, local: Store, redis: RedisStore | None = None, clock: Callable[[], float] = time.time):
        self.local = local
        self.redis = redis
        # The wall clock, not a monotonic one: reset_at goes out as epoch seconds (X-RateLimit-Reset), and the
        # disk store outlives a reboot, which restarts a monotonic clock. Its backward steps are handled in _take.
        self.clock = clock
        self._lua = redis.script(LUA) if redis is not None else None

    def hit(self, quotas: list[Quota], gates: tuple[str, ...] = (), counters: tuple[str, ...] = (),
            counter_ttl: float = 172800.0) -> Verdict:
        """Take a slot from each quota if all have one; otherwise take nothing and say which refused. The first
        quota is the one reported when all allow (the others are guards: counting them would cost more). A gate
        present in Redis refuses the request before any quota is looked at. An allowed request adds one to each
        counter (created to live ``counter_ttl`` seconds)."""
        if self._lua is not None and self.redis is not None and self.redis.available():
            try:
                return self._hit_redis(quotas, gates, counters, counter_ttl)
            except StoreUnavailable:
                pass  # Redis went away: the local store decides until it is back
        try:
            verdict = self._hit_local(quotas)
            if verdict.allowed:
                for counter in counters:
                    self.local.incr(counter, 1, counter_ttl)
            return verdict
        except StoreUnavailable:
            # Nowhere to count: allow rather than fail every request (the outage is logged by the store).
            first = quotas[0]
            now = self.clock()
            return Verdict(True, first.limit, first.limit, now + first.window, now, first.window)

    def _hit_redis(self, quotas: list[Quota], gates: tuple[str, ...], counters: tuple[str, ...],
                   counter_ttl: float) -> Verdict:
        redis, lua = self.redis, self._lua
        assert redis is not None and lua is not None
        keys = ([redis.k(f"ratelimit:{q.key}") for q in quotas] + [redis.k(gate) for gate in gates]
                + [redis.k(counter) for counter in counters])
        args = ([len(quotas)] + [value for q in quotas for value in (q.limit, repr(float(q.window)))]
                + [len(gates), max(1, int(counter_ttl))])
        allowed, index, remaining, reset_at, now, *gate = redis.call(lambda: lua(keys=keys, args=args))
        quota = quotas[int(index) - 1] if int(index) > 0 else quotas[0]
        return Verdict(bool(int(allowed)), quota.limit, int(remaining), float(reset_at), float(now), quota.window,
                       gates_checked=True, gate=gate[0] if gate else None)

    def _hit_local(self, quotas: list[Quota]) -> Verdict:
        """The Python twin of the script, one quota at a time; a refusal gives back the slots already taken."""
        taken: list[tuple[Quota, float]] = []
        verdicts: list[Verdict] = []
        for quota in quotas:
            # The clock is read inside the store's atomic update, as the script reads TIME: read before it, a
            # concurrent request's later time would look like one from before a clock step and be dropped.
            verdict: Verdict = self.local.update(f"ratelimit:{quota.key}",
                                                 partial(_take, quota=quota, clock=self.clock), ttl=quota.window)
            if not verdict.allowed:
                for done, stamp in taken:
                    self.local.update(f"ratelimit:{done.key}", partial(_give_back, now=stamp), ttl=done.window)
                return verdict
            taken.append((quota, verdict.now))
            verdicts.append(verdict)
        return verdicts[0]


def _take(raw: str | None, quota: Quota, clock: Callable[[], float]) -> tuple[str | None, Verdict]:
    """(new list or None to leave it, verdict) for one quota, at the clock's now (read inside the update)."""
    now = clock()
    stamps = [float(s) for s in json.loads(raw)] if raw else []
    current = [s for s in stamps if s <= now]  # later ones predate a backward clock step (see the module doc)
    live = [s for s in current[:quota.limit] if s > now - quota.window]
    if len(live) >= quota.limit:
        # Like the script, drop the stepped times even when refusing.
        return (json.dumps(current) if len(current) < len(stamps) else None,
                Verdict(False, quota.limit, 0, live[quota.limit - 1] + quota.window, now, quota.window))
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
-- ARGV[1] is the number of quotas; the keys after theirs are gates (ARGV[2n+2] of them): one present refuses,
-- taking nothing; the keys after the gates are counters, incremented when the request is allowed.
local n = tonumber(ARGV[1])
local gates = tonumber(ARGV[2 * n + 2]) or (#KEYS - n)
for g = n + 1, n + gates do
  local closed = redis.pcall('GET', KEYS[g])  -- pcall: a key of another type reads as open, never an error
  if type(closed) == 'string' then return {0, 0, 0, tostring(now), tostring(now), closed} end
end
-- Times later than now were written before Redis's clock stepped back: drop them, as the Python twin ignores them.
-- Every push goes to the head at the then current time, and every call drops them: so the head is the newest entry,
-- and one LINDEX tells whether there are any.
for i = 1, n do
  local head = redis.call('LINDEX', KEYS[i], 0)
  if head and tonumber(head) > now then
    local kept = {}
    for _, stamp in ipairs(redis.call('LRANGE', KEYS[i], 0, -1)) do
      if tonumber(stamp) <= now then kept[#kept + 1] = stamp end
    end
    redis.call('DEL', KEYS[i])
    for j = 1, #kept, 1000 do  -- unpack has a stack limit; lists reach a quota's limit
      redis.call('RPUSH', KEYS[i], unpack(kept, j, math.min(j + 999, #kept)))
    end
    if #kept > 0 then redis.call('PEXPIRE', KEYS[i], math.ceil(tonumber(ARGV[2 * i + 1]) * 1000)) end
  end
end
-- Every quota needs a free slot: its entry at position limit-1 is missing or older than its window (one LINDEX).
for i = 1, n do
  local last = redis.call('LINDEX', KEYS[i], tonumber(ARGV[2 * i]) - 1)
  if last and tonumber(last) > now - tonumber(ARGV[2 * i + 1]) then
    return {0, i, 0, tostring(tonumber(last) + tonumber(ARGV[2 * i + 1])), tostring(now)}
  end
end
-- The first quota is the one reported: count its live entries. It keeps only those (trimmed below on every allowed
-- request), so the ones that expired since are at its tail (newest first): popped here, each entry once, LLEN then
-- counts the rest. A binary search over the list cost Redis 120 us of CPU a request at 80,000 entries (17 LINDEX
-- walks); it stays for a list with more than 64 expired entries (one written as another quota's, capped at its
-- limit rather than trimmed), so that no request pops a long backlog at once.
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local popped = 0
while popped < 64 do
  local tail = redis.call('LINDEX', KEYS[1], -1)
  if not tail or tonumber(tail) > now - window then break end
  redis.call('RPOP', KEYS[1])
  popped = popped + 1
end
local lo, hi = 0, math.min(redis.call('LLEN', KEYS[1]), limit)
if popped == 64 then
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if tonumber(redis.call('LINDEX', KEYS[1], mid)) > now - window then lo = mid + 1 else hi = mid end
  end
else
  lo = hi
end
local stamp = string.format('%.6f', now)
for i = 1, n do
  redis.call('LPUSH', KEYS[i], stamp)
  -- The reported quota keeps only its live entries; the others at most their limit.
  redis.call('LTRIM', KEYS[i], 0, i == 1 and lo or tonumber(ARGV[2 * i]) - 1)
  redis.call('PEXPIRE', KEYS[i], math.ceil(tonumber(ARGV[2 * i + 1]) * 1000))
end
for c = n + gates + 1, #KEYS do
  if redis.call('INCR', KEYS[c]) == 1 then redis.call('EXPIRE', KEYS[c], tonumber(ARGV[2 * n + 3])) end
end
local oldest = lo > 0 and tonumber(redis.call('LINDEX', KEYS[1], lo)) or now
return {1, 1, limit - lo - 1, tostring(oldest + window), tostring(now)}
"""
