"""The speech synthesis endpoints in the OpenAPI document (contract section 9)."""
from __future__ import annotations

from typing import Any, Callable

from pydantic import BaseModel

from backend.openapi.common import CLIENT, envelope, error_responses, json_body
from backend.schemas.speech import CONTENT_TYPES, LOCALE_PATTERN, SpeechRequest, VoiceList

Ref = Callable[[type[BaseModel]], dict[str, str]]
SPOKEN = ("The text is escaped into SSML: whatever it holds (tags, entities) is spoken as text, never interpreted. "
          "The same text, language, voice, rate and format is one cache entry in every tier (X-Cache), and identical "
          "concurrent requests make one synthesis.")


def _audio(description: str) -> dict[str, Any]:
    """A binary audio answer in each format's content type."""
    return {"description": description, "headers": {"X-Cache": {"schema": {"type": "string"}}},
            "content": {kind: {"schema": {"type": "string", "format": "binary"}} for kind in CONTENT_TYPES.values()}}


def speech_paths(ref: Ref) -> dict[str, Any]:
    """POST /api/speech, GET /api/speech/{clip_id}, GET /api/voices."""
    user = {"name": "X-User-ID", "in": "header", "required": False,
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:@-]{1,128}$"}}
    return {
        "/api/speech": {"post": {
            "summary": "A text spoken aloud (mp3, wav or ogg)", "description": SPOKEN, "security": CLIENT,
            "requestBody": json_body(ref(SpeechRequest)),
            "responses": {"200": _audio("The audio"), **error_responses((400, 401, 422, 429, 502, 503, 504))}}},
        "/api/speech/{clip_id}": {"get": {
            "summary": "A tutor reply spoken earlier for this caller (a message's audio_url)", "security": CLIENT,
            "parameters": [user, {"name": "clip_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _audio("The audio"), **error_responses((401, 404, 422, 429, 502, 503, 504))}}},
        "/api/voices": {"get": {
            "summary": "The voices of a language", "security": CLIENT,
            "parameters": [{"name": "language", "in": "query", "required": False,
                            "schema": {"type": "string", "default": "en-US", "pattern": LOCALE_PATTERN}}],
            "responses": {"200": envelope(ref(VoiceList)), **error_responses((401, 422, 429, 502, 503, 504))}}},
    }
