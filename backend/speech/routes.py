"""Speech routes: validate, call the synthesis service, answer the audio itself (errors stay JSON envelopes)."""
from __future__ import annotations

from typing import Any

from flask import Response, g, request
from werkzeug.exceptions import HTTPException

from backend.errors import AppError
from backend.http.auth import identify_client, require_client_key
from backend.http.caller import current_caller
from backend.http.context import current_backend
from backend.http.envelope import ok
from backend.http.validation import validate
from backend.resilience.policy import Outcome
from backend.schemas.speech import CONTENT_TYPES, VoicesQuery
from backend.speech import bp
from backend.speech.parsed import synthesis_request


@bp.url_value_preprocessor
def _read_ahead(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """POST /api/speech: the cached clip read in the AI rate limits' Redis round trip, not in one of its own.

    Flask runs a blueprint's URL value preprocessors before any before_request hook, the limits' included: the
    request is parsed and its clip asked for here (SynthesisService.read_ahead), and the limits' script carries
    the read (backend/resilience/redis_prefetch.py). The limits decide as before; what a refused request read is
    dropped with it (_forget_read_ahead). A request without a valid key, or that does not validate, reads nothing
    ahead, and the view answers it as before (401, 400, 422), after the limits."""
    if endpoint != "speech.synthesize":
        return
    backend = current_backend()
    if backend.settings.client_keys and identify_client() is None:
        return
    try:
        said = synthesis_request()
    except (AppError, HTTPException):
        return
    g.speech_request = said
    backend.speech_out.read_ahead(said)


@bp.teardown_request
def _forget_read_ahead(_: BaseException | None) -> None:
    if "speech_request" in g:
        current_backend().speech_out.forget_read_ahead()


@bp.post("/speech")
@require_client_key
def synthesize() -> Response:
    """The text spoken aloud, as audio."""
    said = g.get("speech_request") or synthesis_request()
    return _audio(current_backend().speech_out.synthesize(said), said.format)


@bp.get("/speech/<clip_id>")
@require_client_key
def clip(clip_id: str) -> Response:
    """A tutor reply spoken earlier for this caller (its audio_url)."""
    backend = current_backend()
    said = backend.clips.get(current_caller(), clip_id)
    return _audio(backend.speech_out.synthesize(said), said.format)


@bp.get("/voices")
@require_client_key
def voices() -> Response:
    """The voices of a language."""
    query = validate(VoicesQuery, request.args.to_dict())
    outcome = current_backend().speech_out.voices(query.language)
    return ok(outcome.value, cached=outcome.cached, headers={"X-Cache": outcome.cache, "X-Provider": outcome.provider},
              provider=outcome.provider)


def _audio(outcome: Outcome, fmt: str) -> Response:
    """Binary audio with its type and length (the Response sets Content-Length from the bytes); X-Cache and
    X-Provider as on every AI answer. The type is given whole (no charset to add) and the headers appended: half
    the cost of a Response built from a mimetype and a header dict, on every hit."""
    response = Response(outcome.value, content_type=CONTENT_TYPES[fmt])
    response.headers.extend((("X-Cache", outcome.cache), ("X-Provider", outcome.provider)))
    return response
