"""Request models of the AI endpoints; the routes validate with these and the OpenAPI document is built from them."""
from __future__ import annotations

from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from backend.schemas.answers import CefrLevel

Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$")]
# Not stripped: the length the schema promises is the length that is checked. At least one visible character.
Text = Annotated[str, StringConstraints(pattern=r"\S")]


class _Request(BaseModel):
    """Strict by default: unknown fields are an error, so typos surface instead of being ignored."""

    model_config = ConfigDict(extra="forbid")


class AnalyzeRequest(_Request):
    text: Annotated[Text, StringConstraints(min_length=1, max_length=5000)]
    level: Optional[CefrLevel] = None
    native_language: Optional[Annotated[Text, StringConstraints(min_length=1, max_length=50)]] = None


class SubtopicsRequest(_Request):
    topic: Annotated[Text, StringConstraints(min_length=1, max_length=200)]
    count: int = Field(5, ge=3, le=12)


class ExplanationRequest(_Request):
    topic: Annotated[Text, StringConstraints(min_length=1, max_length=200)]
    subtopic: Annotated[Text, StringConstraints(min_length=1, max_length=200)]
    level: Optional[CefrLevel] = None


class AudioUrlRequest(_Request):
    audio_url: Annotated[str, StringConstraints(min_length=8, max_length=2048)]
    language: Language = "en-US"


class TranscribeForm(_Request):
    language: Language = "en-US"


class PronunciationForm(_Request):
    reference_text: Annotated[Text, StringConstraints(min_length=1, max_length=1000)]
    language: Language = "en-US"


class PronunciationUrlRequest(AudioUrlRequest):
    reference_text: Annotated[Text, StringConstraints(min_length=1, max_length=1000)]
