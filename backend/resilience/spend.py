"""Per-caller daily budgets, exact across workers and instances: who pays for a call, and whether it may be made.

The HTTP layer (or a job's task) says who pays for the calls made in its context (``paying``, an Account: the
caller, its client key, and how its budgets are found). The policy asks the meter before each paid upstream call
(``paid_call``): a cache hit and a joined flight never get that far, so they cost the caller nothing and are never
refused. Admission and settlement are one atomic step each (spend_state), on Redis when configured, so every
worker and instance counts against the same budget; while Redis is down, this host's (or process's) store counts
alone, which is logged once per outage.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable, Iterator

from backend.observability import cost

if TYPE_CHECKING:
    from backend.resilience.spend_meter import SpendMeter

@dataclass(frozen=True)
class Limits:
    """A caller's and its key's daily budgets in USD (None: no budget), and the overrides version they were read
    under: a change of an override anywhere bumps the version, and a meter seeing another one reads them again."""

    caller_usd: float | None
    key_usd: float | None
    version: str


@dataclass(frozen=True)
class Account:
    """Who pays: the caller as written (KEYNAME or KEYNAME:USERID), its client key, its budgets (resolved on the
    first paid call, given the version the meter saw, or None for any), and the meter that counts."""

    caller: str
    key: str
    limits: Callable[[str | None], Limits]
    meter: SpendMeter


@dataclass(frozen=True)
class Hold:
    """An admitted call's claim on its caller's and key's budgets, until it settles."""

    account: Account
    day: str
    hold_id: str
    on_redis: bool


@dataclass(frozen=True)
class Usage:
    """One subject's day: what was spent, what calls in flight hold now, how many paid calls settled."""

    spent: float
    held: float
    calls: int


_account: ContextVar[Account | None] = ContextVar("spend_account", default=None)


def current() -> Account | None:
    """Who pays for calls made in this context, if anyone (nobody: the CLI, warm-ups, tests of a bare policy)."""
    return _account.get()


def enter(account: Account | None) -> Token:
    """Make ``account`` pay for the calls of this context until ``leave`` (a request's before and teardown)."""
    return _account.set(account)


def leave(token: Token) -> None:
    _account.reset(token)


@contextmanager
def paying(account: Account | None) -> Iterator[None]:
    """Make ``account`` pay for the calls made inside the block (a job's run, a stream's later steps)."""
    token = _account.set(account)
    try:
        yield
    finally:
        _account.reset(token)


@contextmanager
def paid_call(provider: str, operation: str, bound_usd: float, seconds: float) -> Iterator[None]:
    """Admit one paid upstream call for whoever pays in this context (BUDGET_EXCEEDED when its budget is spent),
    holding ``bound_usd`` (an upper bound of its cost) for at most ``seconds``; settle what it really cost."""
    account = _account.get()
    if account is None:
        yield
        return
    hold = account.meter.admit(account, bound_usd, seconds, provider=provider, operation=operation)
    with cost.ledger() as book:
        try:
            yield
        finally:
            account.meter.settle(hold, book.cost_usd)


def admit_current(provider: str, operation: str, bound_usd: float, seconds: float) -> Hold | None:
    """``paid_call``'s admission alone, for a call that outlives the block (a stream): settle it with ``settle``."""
    account = _account.get()
    if account is None:
        return None
    return account.meter.admit(account, bound_usd, seconds, provider=provider, operation=operation)


def settle(hold: Hold | None, cost_usd: float) -> None:
    if hold is not None:
        hold.account.meter.settle(hold, cost_usd)


def utc_day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d")


def seconds_to_midnight(epoch: float) -> float:
    """Whole seconds until the next 00:00 UTC (at least 1)."""
    now = datetime.fromtimestamp(epoch, timezone.utc)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return float(max(1, math.ceil((midnight - now).total_seconds())))


