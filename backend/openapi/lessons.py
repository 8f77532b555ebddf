"""Lessons as background jobs in the OpenAPI document (contract section 10)."""
from __future__ import annotations

from typing import Any, Callable

from pydantic import BaseModel

from backend.openapi.common import CLIENT, envelope, error_responses, json_body
from backend.schemas.lessons import Exercise, LessonInputs

Ref = Callable[[type[BaseModel]], dict[str, str]]
STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"]
TIME = {"type": ["string", "null"], "format": "date-time"}


def lesson_paths(ref: Ref) -> dict[str, Any]:
    """POST /api/lessons, GET and DELETE /api/jobs/{job_id}."""
    section = {"type": "object", "required": ["title", "explanation", "key_points", "examples", "exercises"],
               "properties": {"title": {"type": "string"}, "explanation": {"type": "string"},
                              "key_points": {"type": "array", "items": {"type": "string"}},
                              "examples": {"type": "array", "items": {"type": "string"}},
                              "exercises": {"type": "array", "items": ref(Exercise)}}}
    lesson = {"type": "object", "required": ["topic", "level", "title", "sections", "partial"],
              "properties": {"topic": {"type": "string"}, "level": {"type": "string"}, "title": {"type": "string"},
                             "sections": {"type": "array", "items": section}, "partial": {"type": "boolean"}}}
    job = {"type": "object", "required": ["id", "kind", "status", "progress", "created_at", "started_at",
                                          "finished_at", "result", "error"],
           "properties": {"id": {"type": "string"}, "kind": {"const": "lesson"},
                          "status": {"type": "string", "enum": STATUSES},
                          "progress": {"type": "number", "minimum": 0, "maximum": 1},
                          "created_at": {"type": "string", "format": "date-time"}, "started_at": TIME,
                          "finished_at": TIME, "result": {"anyOf": [lesson, {"type": "null"}]},
                          "error": {"anyOf": [{"type": "object", "required": ["code", "message"], "properties": {
                              "code": {"type": "string"}, "message": {"type": "string"}}}, {"type": "null"}]}}}
    accepted = {"type": "object", "required": ["job_id", "status", "status_url"], "properties": {
        "job_id": {"type": "string"}, "status": {"const": "queued"}, "status_url": {"type": "string"}}}
    user = {"name": "X-User-ID", "in": "header", "required": False,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:@-]{1,128}$"}}
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    submitted = envelope(accepted, "Accepted: poll status_url (also the Location header)")
    submitted["headers"] = {"Location": {"schema": {"type": "string"}}}
    return {
        "/api/lessons": {"post": {
            "summary": "Generate a lesson in the background", "security": CLIENT, "parameters": [user],
            "description": "Answers at once with the job to poll; at most MAX_ACTIVE_JOBS_PER_CALLER queued or "
                           "running jobs per caller (429 beyond). Model text in the result is untrusted: render "
                           "it as text.",
            "requestBody": json_body(ref(LessonInputs)),
            "responses": {"202": submitted, **error_responses((400, 401, 422, 429, 503))}}},
        "/api/jobs/{job_id}": {
            "get": {"summary": "A job: status, progress, result or error", "security": CLIENT,
                    "parameters": [user, job_id],
                    "responses": {"200": envelope(job), **error_responses((401, 404, 422, 429, 503))}},
            "delete": {"summary": "Cancel a queued or running job; delete a finished one", "security": CLIENT,
                       "parameters": [user, job_id],
                       "responses": {"200": envelope({"type": "object"}),
                                     **error_responses((401, 404, 422, 429, 503))}}},
    }
