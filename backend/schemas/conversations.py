"""Request models of tutor conversations (contract section 8)."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, Field, StrictBool, StringConstraints

from backend.schemas.answers import CefrLevel
from backend.schemas.requests import Language, Text, _Request
from backend.schemas.speech import VoiceName


class ConversationCreate(_Request):
    scenario: Annotated[Text, StringConstraints(min_length=1, max_length=500)] = "free conversation"
    level: Optional[CefrLevel] = None
    native_language: Optional[Annotated[Text, StringConstraints(min_length=1, max_length=64)]] = None
    language: Language = "en-US"
    voice: Optional[VoiceName] = None


class ConversationPage(_Request):
    limit: int = Field(20, ge=1, le=100)
    cursor: Optional[Annotated[str, StringConstraints(min_length=1, max_length=512)]] = None


class TurnText(_Request):
    text: Annotated[Text, StringConstraints(min_length=1, max_length=2000)]
    speak: StrictBool = False  # JSON true/false only (lax parsing would take 0, "no", ...)


class TurnForm(_Request):
    """The fields of a spoken turn (multipart, with an `audio` file)."""

    speak: bool = False


IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]


# -- what the conversation endpoints answer (the `data` of the envelope; used for the OpenAPI document) --------------

class CorrectionView(BaseModel):
    text: str
    correction: str
    explanation: str


class MessageView(BaseModel):
    id: str
    role: Literal["learner", "tutor"]
    text: str
    created_at: datetime
    corrections: list[CorrectionView] = Field(description="Corrections of real errors of a learner's message "
                                                          "(always empty on the tutor's)")
    audio_url: Optional[str] = Field(description="The tutor's spoken reply when `speak` was asked (null for now)")


class ConversationSummary(BaseModel):
    id: str
    scenario: str
    level: Optional[CefrLevel]
    language: str
    created_at: datetime
    updated_at: datetime
    message_count: int


class ConversationView(BaseModel):
    id: str
    scenario: str
    level: Optional[CefrLevel]
    language: str
    native_language: Optional[str]
    voice: Optional[str]
    created_at: datetime
    updated_at: datetime
    messages: list[MessageView]


class ConversationList(BaseModel):
    conversations: list[ConversationSummary]
    next_cursor: Optional[str] = Field(description="Pass as `cursor` for the next page; null on the last page")


class TurnView(BaseModel):
    learner: MessageView
    tutor: MessageView


class Deleted(BaseModel):
    deleted: bool
