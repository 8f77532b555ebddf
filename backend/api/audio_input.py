"""Audio from a request: a multipart `audio` file or a JSON `audio_url`, decoded and checked by content."""
from __future__ import annotations

from typing import TypeVar

from flask import request
from pydantic import BaseModel

from backend.errors import UnsupportedMediaType
from backend.http.audio_upload import uploaded_raw_audio
from backend.http.context import current_backend
from backend.http.validation import is_json_request, json_body, validate
from backend.media.audio import DecodedAudio, decode_audio
from backend.schemas.requests import AudioUrlRequest

F = TypeVar("F", bound=BaseModel)
U = TypeVar("U", bound=AudioUrlRequest)


def audio_request(form_model: type[F], url_model: type[U]) -> tuple[DecodedAudio, F | U]:
    """Return the decoded audio and the validated fields of the request."""
    backend = current_backend()
    settings = backend.settings
    fields: F | U
    if is_json_request():
        url_fields = json_body(url_model)
        # One fetcher per worker: its bulkhead bounds the downloads in flight in this process.
        raw = backend.audio_fetcher.fetch(url_fields.audio_url)
        fields = url_fields
    elif request.mimetype == "multipart/form-data":
        if "audio" not in request.files:
            uploaded_raw_audio()  # the 422 naming the missing file, before the other fields are judged
        fields = validate(form_model, request.form.to_dict())
        raw = uploaded_raw_audio()
    else:
        raise UnsupportedMediaType("Send multipart/form-data with an 'audio' file, or JSON with 'audio_url'")
    return decode_audio(raw, max_seconds=settings.max_audio_seconds), fields
