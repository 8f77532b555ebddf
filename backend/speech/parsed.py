"""POST /api/speech bodies, each parsed and validated once: what a cache hit asks for was asked for before.

A cache hit is the same request again (its cache key is made of the body's fields), and parsing its JSON,
validating it (pydantic) and resolving its voice cost about a tenth of a hit. The synthesis requests of the last few
hundred distinct small bodies are remembered by their bytes: the same bytes with a JSON Content-Type parse and
validate the same way, always. Only bodies that validated are remembered (an invalid one is refused each time, as
before), and only small ones (a clip's text is at most 2,000 characters), so the memory stays bounded.
"""
from __future__ import annotations

from flask import request

from backend.db.speech_clips import Spoken
from backend.http.validation import json_body
from backend.schemas.speech import SpeechRequest
from backend.services.speech_out import spoken

MAX_REMEMBERED_BYTES = 8192  # a body larger than this (or of unknown length) is parsed every time
REMEMBERED = 256  # distinct bodies; the whole memory is dropped when full (rare: it is rebuilt by the next hits)

_known: dict[bytes, Spoken] = {}


def synthesis_request() -> Spoken:
    """The synthesis the request's JSON body asks for (VALIDATION_ERROR and the like as json_body raises them)."""
    raw = _small_json_body()
    if raw is not None:
        found = _known.get(raw)
        if found is not None:
            return found
    body = json_body(SpeechRequest)
    said = spoken(body.text, body.language, body.voice, body.rate, body.format)
    if raw is not None:
        if len(_known) >= REMEMBERED:
            _known.clear()
        _known[raw] = said
    return said


def _small_json_body() -> bytes | None:
    """The body, when it declares a JSON type and a length small enough to remember it by; else None."""
    length = request.content_length
    if length is None or length > MAX_REMEMBERED_BYTES or not request.is_json:
        return None
    return request.get_data(cache=True)
