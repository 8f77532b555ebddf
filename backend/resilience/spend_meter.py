"""The spend meter: daily budgets counted in one shared place (Redis, else this host's or process's store), each
admission and each settlement one atomic step (backend.resilience.spend_state, in Lua and in Python)."""
from __future__ import annotations

import logging
import time
import uuid
from functools import partial
from typing import Any, Callable

from backend.errors import BudgetExceeded
from backend.observability import metrics
from backend.observability.decisions import record_decision
from backend.resilience import spend_state as machine
from backend.resilience.redis_batch import script_write
from backend.resilience.spend import Account, Hold, Limits, Usage, seconds_to_midnight, utc_day
from backend.resilience.store import Store, StoreUnavailable
from backend.resilience.store_redis import RedisStore

logger = logging.getLogger(__name__)

VERSION_KEY = "spend:overrides-version"
HOLD_RETRY_AFTER = 2.0  # refused because calls in flight hold the rest: they settle within moments
HOLD_WAIT = 3.0  # how long an admission waits for calls in flight to settle before it is refused
HOLD_POLL = 0.1


class SpendMeter:
    """Counts what each caller and key spends per UTC day and admits paid calls within their budgets."""

    def __init__(self, local: Store, redis: RedisStore | None = None, clock: Callable[[], float] = time.time):
        self.local = local
        self.redis = redis
        self.clock = clock  # UTC days and the local store's hold expiry; on Redis the script reads Redis's clock
        self._lua = redis.script(machine.LUA) if redis is not None else None
        self._alone_logged = False
        self._malformed_logged = False
        self.version_seen: str | None = None  # the overrides version last seen, for the first lookup of a caller

    # -- admission --------------------------------------------------------------------------------------------

    def admit(self, account: Account, bound_usd: float, seconds: float, *, provider: str = "",
              operation: str = "") -> Hold:
        """A hold for one call, or BUDGET_EXCEEDED (counted, with Retry-After) when the caller or its key has
        spent its budget. ``bound_usd`` 0 checks without holding.

        Refused only because calls in flight hold the rest of the budget, it waits (at most HOLD_WAIT seconds,
        within its own ``seconds``) for them to settle: they usually leave money over, and a learner's second
        request should not fail because the first one is still being answered."""
        day, hold_id = utc_day(self.clock()), uuid.uuid4().hex[:16]
        # The budgets as of the overrides version this process last saw (every admission and settle tells it), so
        # that a changed override is usually read before the script, not after its "stale" answer.
        limits = account.limits(self.version_seen)
        give_up = time.monotonic() + min(HOLD_WAIT, max(0.0, seconds - 1))
        stale = 0
        while True:
            answer, scope, spent, on_redis, version = self._admit(account, day, hold_id, max(0.0, bound_usd),
                                                                  max(1.0, seconds), limits)
            self.version_seen = version
            if answer == "stale" and stale < 2:  # a changed override: read it again (twice if it changes meanwhile)
                stale += 1
                limits = account.limits(version)
                continue
            if answer != "refuse":
                return Hold(account, day, hold_id, on_redis)
            budget = limits.caller_usd if scope == "caller" else limits.key_usd
            spent_out = budget is None or spent >= budget
            if spent_out or time.monotonic() >= give_up:
                raise self._refusal(account, scope, spent, budget, provider, operation)
            time.sleep(HOLD_POLL)

    def check(self, account: Account) -> None:
        """BUDGET_EXCEEDED now if the caller or its key could not make a paid call (work queued for later)."""
        self.admit(account, 0.0, 1.0, operation="check")

    def _admit(self, account: Account, day: str, hold_id: str, amount: float, seconds: float,
               limits: Limits) -> tuple[str, str, float, bool, str]:
        """(answer ok|refuse|stale, refusing scope, its spend, whether Redis answered, overrides version)."""
        keys = self._keys(day, account)
        if self._lua is not None and self.redis is not None and self.redis.available():
            try:
                args = ["admit", hold_id, repr(amount), repr(seconds), _budget_arg(limits.caller_usd),
                        _budget_arg(limits.key_usd), limits.version, machine.DAY_TTL]
                redis, lua = self.redis, self._lua
                answer, index, spent, _, version, malformed = redis.call(
                    lambda: lua(keys=[redis.k(k) for k in keys], args=args))
                self._redis_back(int(malformed))
                return answer, _SCOPES[int(index)], float(spent), True, version
            except StoreUnavailable:
                pass
        self._counting_alone()
        return (*self._admit_local(keys, hold_id, amount, seconds, limits), False, self._local_version())

    def _admit_local(self, keys: list[str], hold_id: str, amount: float, seconds: float,
                     limits: Limits) -> tuple[str, str, float]:
        """The Python twin: the caller's document, then the key's; a refusal by the key gives the caller's hold back."""
        if self._local_version() != limits.version:
            return "stale", "", 0.0
        taken: list[str] = []
        for index, budget in ((0, limits.caller_usd), (1, limits.key_usd)):
            try:
                refused, spent = self.local.update(keys[index], partial(
                    machine.admit_update, clock=self.clock, budget=budget, hold_id=hold_id, amount=amount,
                    seconds=seconds, report=self._report_malformed), ttl=machine.DAY_TTL)
            except StoreUnavailable:
                return "ok", "", 0.0  # nowhere to count at all: allow rather than fail every paid call
            if refused:
                for key in taken:
                    self.local.update(key, lambda raw: machine.settle_update(raw, hold_id, 0.0), ttl=machine.DAY_TTL)
                return "refuse", _SCOPES[index + 1], spent
            taken.append(keys[index])
        return "ok", "", 0.0

    # -- settlement --------------------------------------------------------------------------------------------

    def settle(self, hold: Hold, cost_usd: float) -> None:
        """The call ended: free its hold and charge what it cost to its caller and key (counted in the metrics)."""
        cost_usd = max(0.0, cost_usd)
        account, keys = hold.account, self._keys(hold.day, hold.account)
        if cost_usd > 0:
            metrics.BUDGET_SPEND.labels(account.key).inc(cost_usd)
        if (hold.on_redis or cost_usd > 0) and self._lua is not None and self.redis is not None \
                and self.redis.available():
            # Nobody waits for the settlement: on Redis it goes with the thread's next round trip (redis_batch.py);
            # if it cannot be written there, this host's store counts it, as while Redis is down.
            redis = self.redis
            redis.send(script_write(self._lua, [redis.k(k) for k in keys],
                                    ["settle", hold.hold_id, repr(cost_usd), account.caller, machine.DAY_TTL]),
                       replied=self._settled, failed=lambda: self._settle_local(hold, keys, cost_usd))
            return
        self._settle_local(hold, keys, cost_usd)

    def _settled(self, reply: list[Any]) -> None:
        *_, version, malformed = reply
        self.version_seen = str(version)
        self._redis_back(int(malformed))

    def _settle_local(self, hold: Hold, keys: list[str], cost_usd: float) -> None:
        ttl = machine.DAY_TTL
        try:
            for key in keys[:2]:
                self.local.update(key, lambda raw: machine.settle_update(raw, hold.hold_id, cost_usd), ttl=ttl)
            if cost_usd > 0:
                self.local.update(keys[3], lambda raw: machine.index_update(raw, hold.account.caller, cost_usd),
                                  ttl=ttl)
            self.version_seen = self._local_version()
        except StoreUnavailable:
            logger.warning("a paid call's cost could not be counted anywhere", extra={"cost_usd": cost_usd})

    # -- what operators and learners see -----------------------------------------------------------------------

    def usage(self, account: Account) -> tuple[Usage, Usage, int, str]:
        """Today's usage of the caller and of its key, the caller's AI requests today, and the overrides version
        (so that the budgets shown are read again after an override changed anywhere)."""
        keys = self._keys(utc_day(self.clock()), account)
        if self._lua is not None and self.redis is not None and self.redis.available():
            redis, lua = self.redis, self._lua
            try:
                *values, malformed = redis.call(lambda: lua(keys=[redis.k(k) for k in keys], args=["read"]))
                self._redis_back(int(malformed))
                return (Usage(float(values[0]), float(values[1]), int(float(values[2]))),
                        Usage(float(values[3]), float(values[4]), int(float(values[5]))), int(values[6]),
                        str(values[7]))
            except StoreUnavailable:
                pass
        raw_caller, raw_key, requests, version = self.local.get_many([keys[0], keys[1], keys[5], keys[2]])
        caller, key = machine.parse(raw_caller)[0], machine.parse(raw_key)[0]
        now = self.clock()
        return (Usage(caller["spent"], machine.held(caller, now), int(caller["calls"])),
                Usage(key["spent"], machine.held(key, now), int(key["calls"])), int(requests or 0), version or "0")

    def top(self, limit: int) -> tuple[list[tuple[str, float]], float]:
        """Today's top callers by spend (most first) and the day's total spend."""
        day = utc_day(self.clock())
        if self.redis is not None and self.redis.available():
            redis = self.redis

            def read() -> list[Any]:
                pipe = redis.client.pipeline(transaction=False)
                pipe.zrevrange(redis.k(f"spend:{day}:top"), 0, limit - 1, withscores=True)
                pipe.get(redis.k(f"spend:{day}:total"))
                return pipe.execute()

            try:
                ranked, total = redis.call(read)
                return [(str(name), float(score)) for name, score in ranked], float(total or 0)
            except StoreUnavailable:
                pass
        index = machine.parse_index(self.local.get(f"spend:{day}:top"))
        callers = sorted(index["callers"].items(), key=lambda item: (-item[1], item[0]))[:limit]
        return callers, float(index["total"])

    # -- overrides ---------------------------------------------------------------------------------------------

    def overrides_changed(self) -> None:
        """An override was written: every meter reads budgets again before its next admission (Redis, and this
        host's store, which decides while Redis is down)."""
        for store in (self.redis, self.local):
            if store is not None:
                try:
                    store.incr(VERSION_KEY)
                except StoreUnavailable:
                    logger.warning("budget override written, but not announced to %s", store.name)

    def _local_version(self) -> str:
        try:
            return self.local.get(VERSION_KEY) or "0"
        except StoreUnavailable:
            return "0"

    # -- helpers -----------------------------------------------------------------------------------------------

    @staticmethod
    def _keys(day: str, account: Account) -> list[str]:
        return [f"spend:{day}:caller:{account.caller}", f"spend:{day}:key:{account.key}", VERSION_KEY,
                f"spend:{day}:top", f"spend:{day}:total", requests_key(day, account.caller)]

    def _refusal(self, account: Account, scope: str, spent: float, budget: float | None, provider: str,
                 operation: str) -> BudgetExceeded:
        metrics.BUDGET_REFUSALS.labels(scope).inc()
        if provider:
            record_decision(provider, operation, "budget_refused", scope=scope)
        now = self.clock()
        spent_out = budget is not None and spent >= budget
        whose = "this caller's" if scope == "caller" else "this client key's"
        message = (f"Today's budget of {whose} paid AI calls is spent; it renews at 00:00 UTC" if spent_out else
                   f"Calls in progress hold the rest of {whose} budget for today; retry in a moment")
        return BudgetExceeded(message, provider=provider,
                              retry_after=seconds_to_midnight(now) if spent_out else HOLD_RETRY_AFTER,
                              details={"scope": scope, "budget_usd": budget, "spent_usd": round(spent, 6)})

    def _counting_alone(self) -> None:
        if self.redis is not None and not self._alone_logged:
            self._alone_logged = True
            logger.error("redis unreachable: daily budgets are counted by this host (or process) alone until it "
                         "is back")

    def _redis_back(self, malformed: int) -> None:
        if self._alone_logged:
            self._alone_logged = False
            logger.warning("redis is back: daily budgets are counted across every instance again")
        if malformed:
            self._report_malformed()

    def _report_malformed(self) -> None:
        if not self._malformed_logged:
            self._malformed_logged = True
            logger.warning("a stored spend document has an unexpected shape: read as an empty day")


_SCOPES = {0: "", 1: "caller", 2: "key"}


def requests_key(day: str, caller: str) -> str:
    """Where a caller's AI requests of one day are counted (by the rate limits' round trip)."""
    return f"spend:{day}:requests:{caller}"


def _budget_arg(budget: float | None) -> str:
    return "" if budget is None else repr(float(budget))
