"""Lesson content: subtopics of a topic and explanations of a subtopic."""
from __future__ import annotations

from backend.llm.parse import EXPLANATION, SUBTOPICS
from backend.resilience.policy import Outcome, ProviderPolicy
from backend.schemas.requests import ExplanationRequest, SubtopicsRequest
from backend.services import prompts
from backend.services.language_model import LanguageModel, StructuredTask

SUBTOPIC_LIST = StructuredTask("subtopics", "v2", SUBTOPICS, prompts.SUBTOPICS_SYSTEM,
                               "Propose subtopics for this topic.")
EXPLAIN = StructuredTask("explanation", "v2", EXPLANATION, prompts.EXPLANATION_SYSTEM, "Explain this subtopic.")


class ContentService:
    """Generates lesson content with a language model."""

    def __init__(self, model: LanguageModel, subtopics_policy: ProviderPolicy, explanation_policy: ProviderPolicy):
        self._model = model
        self._subtopics_policy = subtopics_policy
        self._explanation_policy = explanation_policy

    def subtopics(self, request: SubtopicsRequest) -> Outcome:
        """Return `count` subtopics of the topic (fewer, marked partial, when the model gave fewer)."""
        return self._model.ask(SUBTOPIC_LIST, request.model_dump(), self._subtopics_policy)

    def explanation(self, request: ExplanationRequest) -> Outcome:
        """Return an explanation of the subtopic."""
        return self._model.ask(EXPLAIN, request.model_dump(), self._explanation_policy)
