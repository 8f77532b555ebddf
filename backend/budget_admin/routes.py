"""Set and remove one caller's budget override (durable; every worker and instance applies it to the caller's next
paid call), list the overrides, and see today's top spenders."""
from __future__ import annotations

from flask import Response, request

from backend.budget_admin import bp
from backend.errors import ValidationFailed
from backend.http.auth import require_admin_key
from backend.http.context import current_backend
from backend.http.envelope import ok
from backend.http.validation import json_body, validate
from backend.schemas.admin import BudgetRequest, CallersQuery
from backend.schemas.caller import Caller


def _caller(written: str) -> Caller:
    """A caller as admin paths write it: KEYNAME:USERID or KEYNAME (URL-decoded by the router)."""
    try:
        return Caller.parse(written)
    except ValueError as exc:
        raise ValidationFailed(f"Not a caller: {exc}", status=422,
                               details=[{"field": "caller", "message": "KEYNAME or KEYNAME:USERID"}]) from None


@bp.get("/callers")
@require_admin_key
def callers() -> Response:
    """Today's top callers by spend, with their budgets, and the day's total."""
    query = validate(CallersQuery, request.args.to_dict())
    return ok(current_backend().budgets.top_callers(query.limit))


@bp.get("/budgets")
@require_admin_key
def overrides() -> Response:
    """Every caller's override (up to ``limit``), and the defaults they replace."""
    query = validate(CallersQuery, request.args.to_dict())
    budgets = current_backend().budgets
    return ok({"overrides": budgets.overrides(query.limit), "per_caller_default_usd": budgets.per_caller,
               "per_key_usd": budgets.per_key})


@bp.put("/budgets/<path:caller>")
@require_admin_key
def put_budget(caller: str) -> Response:
    """Override one caller's daily budget (``{"daily_usd": number|null}``; null = no budget)."""
    fields = json_body(BudgetRequest)
    return ok(current_backend().budgets.set_override(_caller(caller), fields.daily_usd))


@bp.delete("/budgets/<path:caller>")
@require_admin_key
def delete_budget(caller: str) -> Response:
    """Remove one caller's override: the default budget applies again."""
    return ok(current_backend().budgets.remove_override(_caller(caller)))
