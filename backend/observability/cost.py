"""Cost accounting: adapters and services charge what a call cost; the policy reads the total per flight."""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Iterator

from backend.observability import metrics


@dataclass
class Ledger:
    """What the upstream calls of one policy execution (or one conversation turn, around several) cost."""

    cost_usd: float = 0.0
    tokens: dict[str, int] = field(default_factory=dict)
    parent: "Ledger | None" = None  # an enclosing ledger is charged too (a turn's total holds each call's)


_current: ContextVar[Ledger | None] = ContextVar("cost_ledger", default=None)


@contextmanager
def ledger() -> Iterator[Ledger]:
    """Collect the charges made inside the block."""
    book = Ledger(parent=_current.get())
    token = _current.set(book)
    try:
        yield book
    finally:
        _current.reset(token)


@contextmanager
def charging(book: Ledger) -> Iterator[Ledger]:
    """Charge the calls made inside the block to ``book`` (a ledger opened elsewhere: a streamed turn's, between
    the pieces it hands out)."""
    token = _current.set(book)
    try:
        yield book
    finally:
        _current.reset(token)


@contextmanager
def within(book: Ledger) -> Iterator[Ledger]:
    """Charge the calls made inside the block to ``book`` and to the ledgers open around the block: a stream's own
    ledger, kept across its pieces, beneath whichever ledger is open as each piece is read."""
    book.parent = _current.get()
    token = _current.set(book)
    try:
        yield book
    finally:
        _current.reset(token)
        book.parent = None


def charge(provider: str, cost_usd: float, *, tokens: dict[str, int] | None = None,
           audio_seconds: float | None = None) -> None:
    """Record a call's usage and estimated cost in the metrics and the open ledger."""
    metrics.AI_COST.labels(provider).inc(cost_usd)
    for kind, count in (tokens or {}).items():
        if count:
            metrics.AI_TOKENS.labels(provider, kind).inc(count)
    if audio_seconds:
        metrics.AI_AUDIO_SECONDS.labels(provider).inc(audio_seconds)
    book = _current.get()
    while book is not None:
        book.cost_usd += cost_usd
        for kind, count in (tokens or {}).items():
            book.tokens[kind] = book.tokens.get(kind, 0) + count
        book = book.parent


def avoided(provider: str, reason: str, cost_usd: float) -> None:
    """Record what a cache hit or a joined flight saved."""
    if cost_usd > 0:
        metrics.AI_COST_AVOIDED.labels(provider, reason).inc(cost_usd)


@dataclass(frozen=True)
class TokenPrices:
    """A language model's USD per million tokens; thinking tokens are billed as output."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, usage: dict[str, int]) -> float:
        output = usage.get("output", 0) + usage.get("thoughts", 0)
        return (usage.get("prompt", 0) * self.input_per_mtok + output * self.output_per_mtok) / 1_000_000

    def bound(self, text: str, output_limit: int) -> float:
        """The most one call can cost: no token is shorter than a UTF-8 byte (plus a message template's few
        tokens), and the whole output limit (thinking included) may be used."""
        return self.cost({"prompt": len(text.encode()) + 64, "output": output_limit})
