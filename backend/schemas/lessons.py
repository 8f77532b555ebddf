"""Lessons: what a lesson job is asked for, and the three answers a model gives to build one (their class names
are the response schemas' titles)."""
from __future__ import annotations

from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from backend.schemas.answers import CefrLevel, TopicExplanation
from backend.schemas.requests import Language, Text

DEFAULT_LEVEL = "B1"
DEFAULT_SECTIONS = 4
# Exercises per section: asked for, and the range a complete section holds (fewer is partial, more are cut).
EXERCISES_ASKED, EXERCISES_MIN, EXERCISES_MAX = 4, 3, 5


class LessonInputs(BaseModel):
    """What a lesson is generated from (the body of POST /api/lessons, as stored with its job)."""

    model_config = ConfigDict(extra="forbid")

    topic: Annotated[Text, StringConstraints(min_length=1, max_length=200)]
    level: Optional[CefrLevel] = None
    sections: int = Field(DEFAULT_SECTIONS, ge=2, le=8)
    language: Language = "en-US"


class LessonPlan(BaseModel):
    """The plan of a lesson: its title and the titles of its sections, from basic to advanced."""

    title: str
    sections: list[str] = Field(description="Exactly the requested number of distinct section titles")


class SectionContent(TopicExplanation):
    """One section of a lesson: an explanation with key points and example sentences."""


class Exercise(BaseModel):
    question: str
    options: list[str] = Field(description="Two to six distinct possible answers")
    answer: str = Field(description="The correct answer: exactly one of the options, written the same way")


class ExerciseSet(BaseModel):
    """Multiple-choice exercises on one section of a lesson."""

    exercises: list[Exercise]
