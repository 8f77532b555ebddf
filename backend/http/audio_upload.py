"""An uploaded audio file (multipart `audio`), read within MAX_AUDIO_BYTES and decoded by its content."""
from __future__ import annotations

from flask import request

from backend.errors import PayloadTooLarge, ValidationFailed
from backend.http.context import current_backend
from backend.media.audio import DecodedAudio, decode_audio


def uploaded_raw_audio() -> bytes:
    """The bytes of the request's `audio` file (422 without one, 413 beyond MAX_AUDIO_BYTES)."""
    settings = current_backend().settings
    upload = request.files.get("audio")
    if upload is None:
        raise ValidationFailed("Request validation failed", status=422, details=[
            {"field": "audio", "message": "an audio file is required", "type": "missing"}])
    raw = upload.read(settings.max_audio_bytes + 1)
    if len(raw) > settings.max_audio_bytes:
        raise PayloadTooLarge(f"Audio is larger than MAX_AUDIO_BYTES ({settings.max_audio_bytes} bytes)")
    return raw


def uploaded_audio() -> DecodedAudio:
    """The request's `audio` file, decoded (415 for what cannot be decoded, 422 when too long)."""
    return decode_audio(uploaded_raw_audio(), max_seconds=current_backend().settings.max_audio_seconds)
