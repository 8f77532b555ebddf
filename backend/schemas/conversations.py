"""Request models of tutor conversations (contract section 8)."""
from __future__ import annotations

from typing import Annotated, Optional

from pydantic import Field, StringConstraints

from backend.schemas.answers import CefrLevel
from backend.schemas.requests import Language, Text, _Request


class ConversationCreate(_Request):
    scenario: Annotated[Text, StringConstraints(min_length=1, max_length=500)] = "free conversation"
    level: Optional[CefrLevel] = None
    native_language: Optional[Annotated[Text, StringConstraints(min_length=1, max_length=64)]] = None
    language: Language = "en-US"
    voice: Optional[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9:_-]{1,100}$")]] = None


class ConversationPage(_Request):
    limit: int = Field(20, ge=1, le=100)
    cursor: Optional[Annotated[str, StringConstraints(min_length=1, max_length=512)]] = None


class TurnText(_Request):
    text: Annotated[Text, StringConstraints(min_length=1, max_length=2000)]
    speak: bool = False


class TurnForm(_Request):
    """The fields of a spoken turn (multipart, with an `audio` file)."""

    speak: bool = False


IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
