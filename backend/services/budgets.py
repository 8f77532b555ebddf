"""Daily budgets as the API shows them: whose account pays for a request's calls, what a caller used today, the
operator's overrides and the top spenders (contract section 12, and GET /api/me/usage in section 7).

A caller's budget is its override when an operator set one (durable, in the database), else
BUDGET_DAILY_USD_PER_CALLER; its key's is BUDGET_DAILY_USD_PER_KEY. The meter asks for them on a paid call only
(never on a cache hit), and this process keeps what it read until an override changes anywhere (the meter sees
the overrides version move) or MAX_AGE passes: a change made while Redis was down reaches everyone that late.
"""
from __future__ import annotations

import logging
import threading
import time
from functools import partial
from typing import Any

from backend.db import budgets as repo
from backend.db.engine import Database
from backend.db.learner_data import counts
from backend.errors import DatabaseUnavailable
from backend.resilience.spend import Account, Limits
from backend.resilience.spend_meter import SpendMeter
from backend.schemas.caller import Caller

logger = logging.getLogger(__name__)

MAX_AGE = 60.0  # seconds a process trusts a caller's budgets it read, whatever the version says
DB_RETRY_SECONDS = 5.0  # after the database failed a budget read, how long the defaults apply without asking it
CACHE_LIMIT = 10_000  # callers whose budgets a process keeps; past it, it forgets them all and reads again


class BudgetService:
    """Accounts for requests and jobs, usage for learners, overrides and top spenders for operators."""

    def __init__(self, database: Database, meter: SpendMeter, *, per_caller: float | None, per_key: float | None):
        self._db = database
        self.meter = meter
        self.per_caller = per_caller
        self.per_key = per_key
        self._known: dict[str, tuple[Limits, float]] = {}
        self._lock = threading.Lock()
        self._db_down_logged = False
        self._db_down_until = 0.0
        # Whether any override exists, as of (overrides version, monotonic time): while none does, a new caller's
        # first paid call reads nothing from the database.
        self._any: tuple[bool, str, float] | None = None

    def account(self, caller: Caller) -> Account:
        """The account that pays for the calls made on ``caller``'s behalf."""
        return Account(str(caller), caller.client, partial(self.limits, caller), self.meter)

    def limits(self, caller: Caller, version: str | None = None) -> Limits:
        """The caller's and its key's budgets, read again when ``version`` (the overrides version the meter saw)
        is not the one they were read under, or when they are older than MAX_AGE."""
        written, now = str(caller), time.monotonic()
        known = self._known.get(written)
        if known is not None and now - known[1] < MAX_AGE and version in (None, known[0].version):
            return known[0]
        seen = version or self.meter.version_seen or "0"
        try:
            if now < self._db_down_until:  # a database just found down is not waited for on every paid call
                raise DatabaseUnavailable()
            override = None
            if self._overrides_exist(seen, now):
                with self._db.session() as session:
                    override = repo.get(session, caller)
        except DatabaseUnavailable:
            # Budgets keep being enforced with what is known: the last reading, else the default.
            self._db_down_until = time.monotonic() + DB_RETRY_SECONDS
            if not self._db_down_logged:
                self._db_down_logged = True
                logger.error("database unreachable: budget overrides are not read; the last known or the default "
                             "budgets apply")
            caller_usd = known[0].caller_usd if known is not None else self.per_caller
            return Limits(caller_usd, self.per_key, seen)
        self._db_down_logged = False
        self._db_down_until = 0.0
        return self._remember(written, Limits(override.daily_usd if override is not None else self.per_caller,
                                              self.per_key, seen), now)

    def _remember(self, written: str, limits: Limits, now: float) -> Limits:
        with self._lock:
            if len(self._known) >= CACHE_LIMIT:
                self._known.clear()
            self._known[written] = (limits, now)
        return limits

    def _overrides_exist(self, seen: str, now: float) -> bool:
        """Whether any override exists: asked again when the overrides version moved or after MAX_AGE."""
        known = self._any
        if known is not None and known[1] == seen and now - known[2] < MAX_AGE:
            return known[0]
        with self._db.session() as session:
            exists = repo.any_override(session)
        self._any = (exists, seen, now)
        return exists

    def check(self, caller: Caller) -> None:
        """BUDGET_EXCEEDED now when the caller (or its key) could not make a paid call: for work queued for later."""
        self.meter.check(self.account(caller))

    # -- learners --------------------------------------------------------------------------------------------

    def usage(self, caller: Caller) -> dict[str, Any]:
        """GET /api/me/usage: today's spend and requests, the caller's budget and what it may still spend (less
        when its key's budget has less left), and how many conversations and jobs it keeps."""
        account = self.account(caller)
        mine, key, requests, version = self.meter.usage(account)
        limits = self.limits(caller, version)
        remaining: float | None = None
        if limits.caller_usd is not None:
            remaining = max(0.0, limits.caller_usd - mine.spent)
        if limits.key_usd is not None:
            key_left = max(0.0, limits.key_usd - key.spent)
            remaining = key_left if remaining is None else min(remaining, key_left)
        with self._db.session() as session:
            stored = counts(session, caller)
        return {"today": {"cost_usd": round(mine.spent, 6), "requests": requests, "paid_calls": mine.calls,
                          "budget_usd": limits.caller_usd,
                          "remaining_usd": None if remaining is None else round(remaining, 6)},
                **stored}

    # -- operators -------------------------------------------------------------------------------------------

    def set_override(self, caller: Caller, daily_usd: float | None) -> dict[str, Any]:
        """Store one caller's budget (None: no budget at all) and make every process read it before its next
        admission for that caller."""
        with self._db.session(write=True) as session:
            override = repo.put(session, caller, daily_usd)
        self._changed(caller)
        return {"caller": str(caller), "daily_usd": override.daily_usd, "override": True,
                "updated_at": override.updated_at.isoformat()}

    def remove_override(self, caller: Caller) -> dict[str, Any]:
        """Give the caller the default budget again."""
        with self._db.session(write=True) as session:
            removed = repo.delete(session, caller)
        self._changed(caller)
        return {"caller": str(caller), "daily_usd": self.per_caller, "override": False, "removed": removed}

    def overrides(self, limit: int) -> list[dict[str, Any]]:
        with self._db.session() as session:
            rows = repo.all_overrides(session, limit=limit)
        return [{"caller": str(row.caller), "daily_usd": row.daily_usd, "updated_at": row.updated_at.isoformat()}
                for row in rows]

    def top_callers(self, limit: int) -> dict[str, Any]:
        """Today's top spenders with their budgets (overrides read in one query), and the day's total."""
        ranked, total = self.meter.top(limit)
        callers = [Caller.parse(name) for name, _ in ranked]
        try:
            with self._db.session() as session:
                found = repo.get_many(session, callers)
        except DatabaseUnavailable:
            found = {}
        rows = []
        for caller, (name, spent) in zip(callers, ranked, strict=True):
            override = found.get(caller)
            budget = override.daily_usd if override is not None else self.per_caller
            rows.append({"caller": name, "cost_usd": round(spent, 6), "budget_usd": budget,
                         "override": override is not None,
                         "over_budget": budget is not None and spent >= budget})
        return {"total_usd": round(total, 6), "callers": rows, "per_caller_default_usd": self.per_caller,
                "per_key_usd": self.per_key}

    def _changed(self, caller: Caller) -> None:
        with self._lock:
            self._known.pop(str(caller), None)
            self._any = None
        self.meter.overrides_changed()
