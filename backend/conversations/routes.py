"""Conversation routes: parse and validate, resolve the caller, call a service; turns as JSON or as a stream."""
from __future__ import annotations

import json
from typing import Iterator

from flask import Response, request
from pydantic import TypeAdapter, ValidationError
from werkzeug.wsgi import ClosingIterator

from backend.conversations import bp
from backend.errors import UnsupportedMediaType, ValidationFailed
from backend.http.audio_upload import uploaded_audio
from backend.http.auth import require_client_key
from backend.http.caller import current_caller
from backend.http.context import current_backend
from backend.http.envelope import ok
from backend.http.validation import field_errors, is_json_request, json_body, validate
from backend.schemas.conversations import ConversationCreate, ConversationPage, IdempotencyKey, TurnForm, TurnText
from backend.services.turn_stream import TurnEvents
from backend.services.turn_types import TurnRequest

# Conversation ids are 32 hex digits (an id that is not one is simply not found).
ID = "<conversation_id>"
_KEY = TypeAdapter(IdempotencyKey)


@bp.post("")
@require_client_key
def create() -> Response:
    """Start a conversation."""
    body = json_body(ConversationCreate) if request.get_data(cache=True) else ConversationCreate()
    return ok(current_backend().conversations.create(current_caller(), body), status=201)


@bp.get("")
@require_client_key
def listing() -> Response:
    """The caller's conversations, most recently updated first."""
    page = validate(ConversationPage, request.args.to_dict())
    return ok(current_backend().conversations.page(current_caller(), page))


@bp.get(f"/{ID}")
@require_client_key
def read(conversation_id: str) -> Response:
    """One conversation with its messages, oldest first."""
    return ok(current_backend().conversations.read(current_caller(), conversation_id))


@bp.delete(f"/{ID}")
@require_client_key
def delete(conversation_id: str) -> Response:
    """Delete a conversation and everything in it."""
    current_backend().conversations.delete(current_caller(), conversation_id)
    return ok({"deleted": True})


@bp.post(f"/{ID}/messages")
@require_client_key
def post_message(conversation_id: str) -> Response:
    """The learner's turn (text, or audio to transcribe) and the tutor's reply, as JSON or as server-sent events."""
    backend, caller = current_backend(), current_caller()
    turn = _turn_request()
    if request.accept_mimetypes.best_match(["application/json", "text/event-stream"]) == "text/event-stream":
        events = backend.streams.open(caller, conversation_id, turn)
        return Response(ClosingIterator(_sse(events), [events.close]), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    result = backend.turns.take(caller, conversation_id, turn)
    headers = {"Idempotent-Replayed": "true"} if result.replayed else None
    return ok(result.body(), status=201, headers=headers, provider=result.provider or None)


def _turn_request() -> TurnRequest:
    """The turn as posted: JSON text, or a multipart audio file; with its Idempotency-Key."""
    key = _idempotency_key()
    if is_json_request():
        body = json_body(TurnText)
        return TurnRequest(text=body.text, speak=body.speak, key=key)
    if request.mimetype == "multipart/form-data":
        form = validate(TurnForm, request.form.to_dict())
        return TurnRequest(audio=uploaded_audio(), speak=form.speak, key=key)
    raise UnsupportedMediaType("Send JSON with 'text', or multipart/form-data with an 'audio' file")


def _idempotency_key() -> str | None:
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return None
    try:
        return _KEY.validate_python(raw)
    except ValidationError as exc:
        raise ValidationFailed("Idempotency-Key must be 1..255 visible ASCII characters", status=422,
                               details=field_errors(exc)) from None


def _sse(events: TurnEvents) -> Iterator[bytes]:
    """Server-sent events: one `event:` line and one `data:` line (compact JSON) per event."""
    for name, data in events:
        yield f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()
