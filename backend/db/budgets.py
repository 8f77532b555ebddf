"""Per-caller daily budget overrides: an operator's USD budget for one caller, in place of the default.

A row is an explicit decision, ``daily_usd`` None included (that caller has no budget at all); no row means the
default applies. Queries read plain columns, never ORM entities, so a value is never a stale one from the session.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import delete as sql_delete
from sqlalchemy import select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from backend.db.models import BudgetOverride, utcnow
from backend.db.timing import statement
from backend.schemas.caller import Caller

# Callers per query of get_many: two parameters each, well within every driver's limit on one statement.
CHUNK = 500
_COLUMNS = (BudgetOverride.client, BudgetOverride.user_id, BudgetOverride.daily_usd, BudgetOverride.updated_at)


@dataclass(frozen=True)
class Override:
    """One caller's budget override: ``daily_usd`` None means unlimited (not "the default")."""

    caller: Caller
    daily_usd: float | None
    updated_at: datetime


def get(session: Session, caller: Caller) -> Override | None:
    """The caller's override, or None when the default applies."""
    with statement("budgets.get"):
        row = session.execute(select(*_COLUMNS).where(BudgetOverride.client == caller.client,
                                                      BudgetOverride.user_id == caller.user_id)).first()
    return _override(row) if row is not None else None


def any_override(session: Session) -> bool:
    """Whether any caller has an override (most deployments have none: then no caller's needs reading)."""
    with statement("budgets.any"):
        return session.execute(select(BudgetOverride.client).limit(1)).first() is not None


def get_many(session: Session, callers: Sequence[Caller]) -> dict[Caller, Override]:
    """The overrides of those callers that have one (a caller without one is simply absent)."""
    keys = list(dict.fromkeys((caller.client, caller.user_id) for caller in callers))
    found: dict[Caller, Override] = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start:start + CHUNK]
        with statement("budgets.get_many"):
            rows = session.execute(select(*_COLUMNS).where(
                tuple_(BudgetOverride.client, BudgetOverride.user_id).in_(chunk)))
            for row in rows:
                override = _override(row)
                found[override.caller] = override
    return found


def put(session: Session, caller: Caller, daily_usd: float | None) -> Override:
    """Set the caller's override (None: no budget at all), creating it or replacing it.

    One INSERT .. ON CONFLICT DO UPDATE: two concurrent puts for a new caller both succeed (the later one wins)
    instead of one failing on the primary key, which a select-then-insert would do on PostgreSQL."""
    now = utcnow()
    values: dict[str, Any] = {"client": caller.client, "user_id": caller.user_id, "daily_usd": daily_usd,
                              "updated_at": now}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        pg_insert = postgresql.insert(BudgetOverride).values(**values)
        upsert: Any = pg_insert.on_conflict_do_update(
            index_elements=[BudgetOverride.client, BudgetOverride.user_id],
            set_={"daily_usd": pg_insert.excluded.daily_usd, "updated_at": pg_insert.excluded.updated_at})
    elif dialect == "sqlite":
        lite_insert = sqlite.insert(BudgetOverride).values(**values)
        upsert = lite_insert.on_conflict_do_update(
            index_elements=[BudgetOverride.client, BudgetOverride.user_id],
            set_={"daily_usd": lite_insert.excluded.daily_usd, "updated_at": lite_insert.excluded.updated_at})
    else:
        raise NotImplementedError(f"budget overrides need SQLite or PostgreSQL, not {dialect}")
    with statement("budgets.put"):
        session.execute(upsert)
    return Override(caller, daily_usd, now)


def delete(session: Session, caller: Caller) -> bool:
    """Remove the caller's override (the default applies again); whether there was one."""
    with statement("budgets.delete"):
        result: Any = session.execute(sql_delete(BudgetOverride)
                                      .where(BudgetOverride.client == caller.client,
                                             BudgetOverride.user_id == caller.user_id)
                                      .execution_options(synchronize_session=False))
    return bool(result.rowcount)


def all_overrides(session: Session, limit: int = 1000) -> list[Override]:
    """Every override, by client then user, up to ``limit`` (operators' listing)."""
    with statement("budgets.all"):
        rows = session.execute(select(*_COLUMNS).order_by(BudgetOverride.client, BudgetOverride.user_id)
                               .limit(limit))
        return [_override(row) for row in rows]


def _override(row: Any) -> Override:
    return Override(Caller(row.client, row.user_id), row.daily_usd, row.updated_at)
