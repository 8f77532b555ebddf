"""AI routes: parse and validate, call a service, wrap the outcome in the envelope. No logic here."""
from __future__ import annotations

from flask import Response

from backend.api import bp
from backend.api.audio_input import audio_request
from backend.http.auth import require_client_key
from backend.http.context import current_backend
from backend.http.envelope import ok
from backend.http.validation import json_body
from backend.resilience.policy import Outcome
from backend.schemas.requests import (
    AnalyzeRequest,
    AudioUrlRequest,
    ExplanationRequest,
    PronunciationForm,
    PronunciationUrlRequest,
    SubtopicsRequest,
    TranscribeForm,
)


def _services():
    return current_backend()


def _answer(outcome: Outcome) -> Response:
    """The envelope of an AI answer: X-Cache says how it was obtained, X-Provider (and meta.provider) who gave it."""
    return ok(outcome.value, cached=outcome.cached, headers={"X-Cache": outcome.cache, "X-Provider": outcome.provider},
              provider=outcome.provider)


@bp.post("/analyze")
@require_client_key
def analyze() -> Response:
    """Writing feedback with a CEFR level."""
    return _answer(_services().analysis.analyze(json_body(AnalyzeRequest)))


@bp.post("/create_subtopics")
@require_client_key
def create_subtopics() -> Response:
    """Subtopics of a lesson topic."""
    return _answer(_services().content.subtopics(json_body(SubtopicsRequest)))


@bp.post("/explanation")
@require_client_key
def explanation() -> Response:
    """An explanation of a subtopic."""
    return _answer(_services().content.explanation(json_body(ExplanationRequest)))


@bp.post("/transcribe")
@require_client_key
def transcribe() -> Response:
    """A transcript of the whole recording."""
    audio, fields = audio_request(TranscribeForm, AudioUrlRequest)
    return _answer(_services().speech.transcribe(audio, fields.language))


@bp.post("/pronunciation")
@require_client_key
def pronunciation() -> Response:
    """Pronunciation scores against a reference text."""
    audio, fields = audio_request(PronunciationForm, PronunciationUrlRequest)
    return _answer(_services().speech.assess(audio, fields.reference_text, fields.language))
