"""Statement names, their durations (db_query_duration_seconds{statement}) and the slow-statement log.

Repositories name what they run (``with statement("conversations.list"):``); every cursor execution inside is timed
under that name. Slow statements are logged by name only: their parameters hold learner text, which is personal.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

from sqlalchemy import event
from sqlalchemy.engine import Engine

from backend.observability.metrics import DB_DURATION

logger = logging.getLogger(__name__)

SLOW_SECONDS = 0.1
_name: ContextVar[str] = ContextVar("db_statement", default="other")


@contextmanager
def statement(name: str) -> Iterator[None]:
    """Time the statements run inside the block under ``name`` (a fixed, bounded label)."""
    token = _name.set(name)
    try:
        yield
    finally:
        _name.reset(token)


def instrument(engine: Engine) -> None:
    """Time every statement of ``engine``, and log the slow ones without their parameters."""

    @event.listens_for(engine, "before_cursor_execute")
    def _started(conn: Any, cursor: Any, sql: str, params: Any, context: Any, executemany: bool) -> None:
        conn.info.setdefault("statement_started", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _finished(conn: Any, cursor: Any, sql: str, params: Any, context: Any, executemany: bool) -> None:
        _observe(conn)

    @event.listens_for(engine, "handle_error")
    def _failed(context: Any) -> None:
        if context.connection is not None:
            _observe(context.connection)

    def _observe(conn: Any) -> None:
        stack = conn.info.get("statement_started")
        if not stack:
            return
        seconds = time.perf_counter() - stack.pop()
        name = _name.get()
        DB_DURATION.labels(name).observe(seconds)
        if seconds > SLOW_SECONDS:
            logger.warning("slow database statement", extra={"statement": name, "seconds": round(seconds, 3)})
