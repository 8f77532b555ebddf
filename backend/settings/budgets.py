"""Spend controls: the daily budgets of a caller and of a whole client key (contract section 12)."""
from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


class BudgetSettings(BaseModel):
    """Daily USD budgets; empty = none. A caller's may be overridden by an operator (PUT /api/admin/budgets/...)."""

    # What one caller (a key's name and X-User-ID) may spend on paid provider calls per UTC day.
    budget_daily_usd_per_caller: float | None = Field(None, ge=0, le=1_000_000)
    # What every caller of one client key may spend together per UTC day, so that inventing X-User-IDs does not
    # multiply a leaked key's spend.
    budget_daily_usd_per_key: float | None = Field(None, ge=0, le=1_000_000)

    @field_validator("budget_daily_usd_per_caller", "budget_daily_usd_per_key", mode="before")
    @classmethod
    def _empty_means_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value
