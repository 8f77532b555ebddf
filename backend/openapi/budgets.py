"""Spend controls in the OpenAPI document: the caller's usage today, budget overrides, top spenders (section 12)."""
from __future__ import annotations

from typing import Any, Callable

from pydantic import BaseModel

from backend.openapi.common import ADMIN, CLIENT, envelope, error_responses, json_body
from backend.schemas.admin import BudgetRequest

Ref = Callable[[type[BaseModel]], dict[str, str]]
MONEY = {"type": ["number", "null"], "minimum": 0}
USAGE = {"type": "object", "required": ["today", "conversations", "jobs"], "properties": {
    "today": {"type": "object", "required": ["cost_usd", "requests", "budget_usd", "remaining_usd"], "properties": {
        "cost_usd": {"type": "number", "minimum": 0, "description": "Paid provider calls charged today (UTC)"},
        "requests": {"type": "integer", "minimum": 0, "description": "AI requests today, cache hits included"},
        "paid_calls": {"type": "integer", "minimum": 0},
        "budget_usd": {**MONEY, "description": "The caller's daily budget; null = none"},
        "remaining_usd": {**MONEY, "description": "What may still be spent today (less when the client key's "
                                                  "budget has less left); null = no budget"}}},
    "conversations": {"type": "integer", "minimum": 0}, "jobs": {"type": "integer", "minimum": 0}}}
CALLER = {"name": "caller", "in": "path", "required": True, "description": "KEYNAME:USERID or KEYNAME, URL-encoded",
          "schema": {"type": "string"}}
LIMIT = {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 20}}
ROUTED = (404,)  # a path no route takes (a caller with a line break in it) is not found before it is validated
BUDGET_REFUSAL = ("A caller (or client key) whose provider spend since 00:00 UTC reached its daily budget gets 429 "
                  "BUDGET_EXCEEDED with Retry-After (until midnight UTC) on calls that would reach a provider; "
                  "cache hits keep answering.")


def budget_paths(ref: Ref) -> dict[str, Any]:
    """GET /api/me/usage; GET /api/admin/callers; GET /api/admin/budgets; PUT and DELETE /api/admin/budgets/{caller}."""
    def admin(summary: str, data: dict[str, Any], statuses: tuple[int, ...] = (), **extra: Any) -> dict[str, Any]:
        return {"summary": summary, "security": ADMIN, **extra,
                "responses": {"200": envelope(data), **error_responses((400, 401, 403, 422, 429, 503, *statuses))}}

    user = {"name": "X-User-ID", "in": "header", "required": False,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:@-]{1,128}$"}}
    override = {"type": "object", "required": ["caller", "daily_usd"], "properties": {
        "caller": {"type": "string"}, "daily_usd": MONEY, "override": {"type": "boolean"},
        "updated_at": {"type": "string", "format": "date-time"}, "removed": {"type": "boolean"}}}
    top = {"type": "object", "required": ["total_usd", "callers"], "properties": {
        "total_usd": {"type": "number"}, "per_caller_default_usd": MONEY, "per_key_usd": MONEY,
        "callers": {"type": "array", "items": {"type": "object", "required": ["caller", "cost_usd", "budget_usd"],
                                                "properties": {"caller": {"type": "string"},
                                                               "cost_usd": {"type": "number"}, "budget_usd": MONEY,
                                                               "override": {"type": "boolean"},
                                                               "over_budget": {"type": "boolean"}}}}}}
    listing = {"type": "object", "required": ["overrides"], "properties": {
        "overrides": {"type": "array", "items": override}, "per_caller_default_usd": MONEY, "per_key_usd": MONEY}}
    return {
        "/api/me/usage": {"get": {
            "summary": "The caller's spend and requests today, its budget and what is left, what it keeps",
            "security": CLIENT, "parameters": [user], "description": BUDGET_REFUSAL,
            "responses": {"200": envelope(USAGE), **error_responses((401, 422, 429, 503))}}},
        "/api/admin/callers": {"get": admin("Today's top callers by spend, with their budgets", top,
                                            parameters=[LIMIT])},
        "/api/admin/budgets": {"get": admin("Every caller's budget override", listing, parameters=[LIMIT])},
        "/api/admin/budgets/{caller}": {
            "put": admin("Override one caller's daily budget (null = no budget); durable, effective everywhere "
                         "on the caller's next paid call", override, ROUTED, parameters=[CALLER],
                         requestBody=json_body(ref(BudgetRequest))),
            "delete": admin("Remove one caller's override: the default budget applies again", override, ROUTED,
                            parameters=[CALLER])},
    }
