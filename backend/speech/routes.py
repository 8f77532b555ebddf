"""Speech routes: validate, call the synthesis service, answer the audio itself (errors stay JSON envelopes)."""
from __future__ import annotations

from flask import Response, request

from backend.http.auth import require_client_key
from backend.http.caller import current_caller
from backend.http.context import current_backend
from backend.http.envelope import ok
from backend.http.validation import json_body, validate
from backend.resilience.policy import Outcome
from backend.schemas.speech import CONTENT_TYPES, SpeechRequest, VoicesQuery
from backend.services.speech_out import spoken
from backend.speech import bp


@bp.post("/speech")
@require_client_key
def synthesize() -> Response:
    """The text spoken aloud, as audio."""
    body = json_body(SpeechRequest)
    request_ = spoken(body.text, body.language, body.voice, body.rate, body.format)
    return _audio(current_backend().speech_out.synthesize(request_), body.format)


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
    """Binary audio with its type and length; X-Cache and X-Provider as on every AI answer."""
    audio: bytes = outcome.value
    return Response(audio, mimetype=CONTENT_TYPES[fmt],
                    headers={"X-Cache": outcome.cache, "X-Provider": outcome.provider,
                             "Content-Length": str(len(audio))})
