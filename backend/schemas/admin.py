"""Request models of the admin endpoints."""
from __future__ import annotations

from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StringConstraints

# A provider's name; which ones exist is the provider registry's to say (an unknown one is refused by the route).
ProviderName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class ClearRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    namespace: Optional[str] = Field(None, pattern=r"^[a-z_]{1,40}$")


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Optional[ProviderName] = None


class OpenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ProviderName


class BudgetRequest(BaseModel):
    """PUT /api/admin/budgets/{caller}: one caller's daily budget in USD; null = no budget at all for this caller."""

    model_config = ConfigDict(extra="forbid")
    daily_usd: Optional[StrictFloat] = Field(..., ge=0, le=1_000_000, allow_inf_nan=False)  # not "1", not false


class CallersQuery(BaseModel):
    """GET /api/admin/callers?limit= (and GET /api/admin/budgets?limit=)."""

    model_config = ConfigDict(extra="forbid")
    limit: int = Field(20, ge=1, le=1000)
