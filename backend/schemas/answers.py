"""What the model must answer (sent to Gemini as the response schema) and what the API returns."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

CefrLevel = Literal["A1", "A2", "B1", "B2", "C1", "C2"]
ErrorType = Literal["grammar", "vocabulary", "spelling", "punctuation", "style"]


class WritingError(BaseModel):
    type: ErrorType
    text: str = Field(description="The erroneous words exactly as written by the learner")
    correction: str = Field(description="The corrected words; must differ from text")
    explanation: str


class RecommendedTask(BaseModel):
    title: str
    description: str


class CefrAssessment(BaseModel):
    level: CefrLevel
    confidence: float = Field(ge=0, le=1)
    rationale: str


class WritingAnalysis(BaseModel):
    """Writing feedback for a learner's text."""

    errors: list[WritingError]
    feedback: str
    strengths: list[str]
    improvement_areas: list[str]
    recommended_tasks: list[RecommendedTask]
    cefr_assessment: CefrAssessment


class Subtopic(BaseModel):
    title: str
    description: str


class SubtopicList(BaseModel):
    """Subtopics of a lesson topic."""

    topic: str
    subtopics: list[Subtopic]


class TopicExplanation(BaseModel):
    """An explanation of a subtopic for a learner."""

    title: str
    explanation: str
    key_points: list[str]
    examples: list[str]


class Correction(BaseModel):
    text: str = Field(description="The erroneous words exactly as the learner wrote them")
    correction: str = Field(description="The corrected words; must differ from text")
    explanation: str = Field(description="One short sentence, in the learner's native language if given")


class TurnCorrections(BaseModel):
    """Corrections of the real errors in a learner's conversation message (none when it has none)."""

    corrections: list[Correction]
