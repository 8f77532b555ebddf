"""Models of what the AI endpoints answer (the `data` of the envelope), used for the OpenAPI document."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, Field

from backend.schemas.answers import CefrAssessment, Subtopic, TopicExplanation, WritingAnalysis


class AnalysisAnswer(WritingAnalysis):
    """A writing analysis as recovered from the model's answer: the level may be missing, never invented.

    The model is still asked for a level (WritingAnalysis requires one); this is what is kept of its answer."""

    # Narrowing a required field to an optional one is the point here (pydantic overrides fields by name).
    cefr_assessment: Optional[CefrAssessment] = Field(  # type: ignore[assignment]
        description="null when the model gave no level that could be read unambiguously as A1..C2 "
                    "(partial is then true); a level is never invented")


class AnalysisResult(AnalysisAnswer):
    partial: bool = Field(description="True when the model's answer had to be repaired, completed with defaults, "
                                      "or had parts dropped (such as a CEFR level that could not be read)")


class SubtopicsResult(BaseModel):
    topic: str
    subtopics: list[Subtopic]
    partial: bool = Field(description="True when subtopics had to be repaired, completed (a missing description "
                                      "is empty) or dropped, or fewer than requested were usable")


class ExplanationResult(TopicExplanation):
    partial: bool = Field(description="True when the model's answer had to be repaired or completed, such as an "
                                      "explanation sent as a list or an object of strings and joined into text")


class TimedWord(BaseModel):
    word: str
    offset_seconds: float
    duration_seconds: float


class TranscriptionResult(BaseModel):
    text: str
    confidence: float = Field(ge=0, le=1)
    duration_seconds: float
    language: str
    words: list[TimedWord]


class AssessedWord(BaseModel):
    word: str
    accuracy_score: float = Field(ge=0, le=100)
    error_type: Literal["None", "Omission", "Insertion", "Mispronunciation"]


class PronunciationResult(BaseModel):
    recognized_text: str
    accuracy_score: float = Field(ge=0, le=100)
    fluency_score: float = Field(ge=0, le=100)
    completeness_score: float = Field(ge=0, le=100)
    pronunciation_score: float = Field(ge=0, le=100)
    prosody_score: Optional[float] = Field(None, ge=0, le=100)
    words: list[AssessedWord]
