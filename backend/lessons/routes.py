"""Lesson job routes: parse and validate, resolve the caller, call the job service."""
from __future__ import annotations

from flask import Response

from backend.http.auth import require_client_key
from backend.http.caller import current_caller
from backend.http.context import current_backend
from backend.http.envelope import ok
from backend.http.validation import json_body
from backend.lessons import bp
from backend.schemas.lessons import LessonInputs

# Job ids are 32 hex digits (an id that is not one is simply not found).
ID = "<job_id>"


@bp.post("/lessons")
@require_client_key
def create() -> Response:
    """Queue a lesson: 202 with where to follow it."""
    backend, inputs = current_backend(), json_body(LessonInputs)
    backend.lessons.check_configured()
    backend.budgets.check(current_caller())  # a lesson's calls are paid: refused now, not failed in its worker
    accepted = backend.jobs.submit(current_caller(), inputs)
    return ok(accepted, status=202, headers={"Location": accepted["status_url"]})


@bp.get(f"/jobs/{ID}")
@require_client_key
def job(job_id: str) -> Response:
    """A job's status, progress and, once finished, its result or error."""
    return ok(current_backend().jobs.get(current_caller(), job_id))


@bp.delete(f"/jobs/{ID}")
@require_client_key
def cancel_job(job_id: str) -> Response:
    """Cancel a queued or running job; delete a finished one."""
    return ok(current_backend().jobs.cancel(current_caller(), job_id))
