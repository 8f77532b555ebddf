"""Lesson content: subtopics of a topic and explanations of a subtopic."""
from __future__ import annotations

from typing import Sequence

from backend.llm.parse import EXPLANATION, SUBTOPICS
from backend.resilience.policy import Outcome
from backend.schemas.requests import ExplanationRequest, SubtopicsRequest
from backend.services import prompts
from backend.services.language_model import LanguageModel, Route, StructuredTask

SUBTOPIC_LIST = StructuredTask("subtopics", "v2", SUBTOPICS, prompts.SUBTOPICS_SYSTEM,
                               "Propose subtopics for this topic.")
EXPLAIN = StructuredTask("explanation", "v2", EXPLANATION, prompts.EXPLANATION_SYSTEM, "Explain this subtopic.")


class ContentService:
    """Generates lesson content with a language model."""

    def __init__(self, model: LanguageModel, subtopic_routes: Sequence[Route], explanation_routes: Sequence[Route]):
        self._model = model
        self._subtopic_routes = subtopic_routes
        self._explanation_routes = explanation_routes

    def subtopics(self, request: SubtopicsRequest) -> Outcome:
        """Return `count` subtopics of the topic (fewer, marked partial, when the model gave fewer)."""
        return self._model.ask(SUBTOPIC_LIST, request.model_dump(), self._subtopic_routes)

    def explanation(self, request: ExplanationRequest) -> Outcome:
        """Return an explanation of the subtopic."""
        return self._model.ask(EXPLAIN, request.model_dump(), self._explanation_routes)
