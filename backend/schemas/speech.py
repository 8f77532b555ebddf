"""Speech synthesis (contract section 9): what may be asked for, and the voices."""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, Field, StringConstraints

from backend.schemas.requests import Text, _Request

AudioFormat = Literal["mp3", "wav", "ogg"]
CONTENT_TYPES: dict[str, str] = {"mp3": "audio/mpeg", "wav": "audio/wav", "ogg": "audio/ogg"}
# An Azure voice name: locale, then a name (en-US-JennyNeural, zh-CN-XiaoxiaoMultilingualNeural).
# Synthesis speaks a locale: language, optional script, region (en-US, zh-Hans-CN), as Azure names them.
LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Z][a-z]{3})?-([A-Z]{2}|[0-9]{3})$"
Locale = Annotated[str, StringConstraints(pattern=LOCALE_PATTERN)]
VOICE_PATTERN = r"^[a-z]{2,3}-[A-Za-z0-9]{2,8}(-[A-Za-z0-9]{2,8})?-[A-Za-z0-9]{2,60}$"
VoiceName = Annotated[str, StringConstraints(pattern=VOICE_PATTERN)]


class SpeechRequest(_Request):
    text: Annotated[Text, StringConstraints(min_length=1, max_length=2000)]
    language: Locale = "en-US"
    voice: Optional[VoiceName] = None
    rate: float = Field(1.0, ge=0.5, le=2.0)
    format: AudioFormat = "mp3"


class VoicesQuery(_Request):
    language: Locale = "en-US"


class Voice(BaseModel):
    name: str
    locale: str
    gender: str


class VoiceList(BaseModel):
    voices: list[Voice]
