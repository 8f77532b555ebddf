"""The conversation and learner-data endpoints in the OpenAPI document (contract sections 7 and 8)."""
from __future__ import annotations

from typing import Any, Callable

from pydantic import BaseModel

from backend.openapi.common import CLIENT, envelope, error_responses, json_body
from backend.schemas.conversations import (
    ConversationCreate,
    ConversationList,
    ConversationView,
    Deleted,
    TurnForm,
    TurnText,
    TurnView,
)

Ref = Callable[[type[BaseModel]], dict[str, str]]
DATA_ERRORS = (401, 404, 422, 429, 503)
USER = {"name": "X-User-ID", "in": "header", "required": False,
        "description": "The learner within the client key (1..128 of A-Z a-z 0-9 . _ : @ -); absent: the key's own "
                       "data. Another caller's conversation is 404.",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:@-]{1,128}$"}}
ID = {"name": "conversation_id", "in": "path", "required": True, "schema": {"type": "string"}}
KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
       "description": "The same key on the same conversation returns the first answer (same ids, no second model "
                      "call); with another body, 422. Kept at least 24 h.",
       "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"}}
TURN = ("The learner's turn and the tutor's reply, stored together once the reply is complete (a failure stores "
        "nothing). A turn posted while another of the same conversation is answered gets 409 with Retry-After. "
        "With `Accept: text/event-stream` the reply streams as server-sent events: `delta` events "
        "(`{\"text\": ...}`) as the model writes, then `done` (`{\"learner\", \"tutor\"}`), or `error` "
        "(`{\"code\", \"message\"}`, nothing stored) if it fails after it began; a worker serves at most "
        "STREAM_MAX_CONCURRENCY streams at once (beyond it 503 with Retry-After). Every text is untrusted text: "
        "render it as text, never as markup.")


COUNT = {"type": "integer", "minimum": 0}
ERASED = {"type": "object", "required": ["deleted"], "additionalProperties": False, "properties": {
    "deleted": {"type": "object", "required": ["conversations", "messages", "jobs", "audio"],
                "additionalProperties": False,
                "properties": {kind: COUNT for kind in ("conversations", "messages", "jobs", "audio")}}}}


def conversation_paths(ref: Ref) -> dict[str, Any]:
    """The conversation paths, their bodies and answers."""
    def operation(summary: str, answer: dict[str, Any], errors: tuple[int, ...] = DATA_ERRORS,
                  parameters: list[dict[str, Any]] | None = None, body: dict[str, Any] | None = None,
                  status: str = "200", description: str = "") -> dict[str, Any]:
        spec: dict[str, Any] = {"summary": summary, "security": CLIENT, "parameters": [USER, *(parameters or [])],
                                "responses": {status: answer, **error_responses(errors)}}
        if body is not None:
            spec["requestBody"] = body
        if description:
            spec["description"] = description
        return spec

    form = {"type": "object", "required": ["audio"], "additionalProperties": False, "properties": {
        "audio": {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"},
        **TurnForm.model_json_schema()["properties"]}}
    turn_body = {"required": True, "content": {"application/json": {"schema": ref(TurnText)},
                                               "multipart/form-data": {"schema": form}}}
    turn_answer = envelope(ref(TurnView), "Both stored messages")
    turn_answer["content"]["text/event-stream"] = {"schema": {"type": "string"}}
    page = [{"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
            {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 512}}]
    return {
        "/api/me": {
            "delete": operation("Erase everything stored for the caller", envelope(ERASED, "How much was deleted"),
                                (401, 422, 429, 503)),
        },
        "/api/conversations": {
            "post": operation("Start a conversation", envelope(ref(ConversationView)), (400, 401, 422, 429, 503),
                              body=json_body(ref(ConversationCreate), required=False), status="201"),
            "get": operation("The caller's conversations, most recently updated first",
                             envelope(ref(ConversationList)), (401, 422, 429, 503), parameters=page),
        },
        "/api/conversations/{conversation_id}": {
            "get": operation("A conversation with its messages, oldest first", envelope(ref(ConversationView)),
                             parameters=[ID]),
            "delete": operation("Delete a conversation and its messages", envelope(ref(Deleted)), parameters=[ID]),
        },
        "/api/conversations/{conversation_id}/messages": {
            "post": operation("The learner's turn (text or audio) and the tutor's reply", turn_answer,
                              (400, 401, 404, 409, 413, 415, 422, 429, 502, 503, 504), parameters=[ID, KEY],
                              body=turn_body, status="201", description=TURN),
        },
    }
