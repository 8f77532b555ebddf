"""Lesson content: subtopics of a topic and explanations of a subtopic."""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from backend.errors import ProviderNotConfigured
from backend.llm.ask import ask_json
from backend.llm.parse import DEFAULT_MAX_REPAIR_CHARS, EXPLANATION, SUBTOPICS
from backend.resilience.policy import Outcome, ProviderPolicy
from backend.schemas.requests import ExplanationRequest, SubtopicsRequest
from backend.services import prompts
from backend.services.analysis import NOT_CONFIGURED
from backend.services.keys import cache_key

if TYPE_CHECKING:
    from backend.providers.gemini import GeminiClient


class ContentService:
    """Generates lesson content with Gemini."""

    def __init__(self, gemini: GeminiClient | None, subtopics_policy: ProviderPolicy,
                 explanation_policy: ProviderPolicy, model: str, *, reask: bool = True,
                 max_repair_chars: int = DEFAULT_MAX_REPAIR_CHARS):
        self._gemini = gemini
        self._subtopics_policy = subtopics_policy
        self._explanation_policy = explanation_policy
        self._model = model
        self._reask = reask
        self._max_repair_chars = max_repair_chars

    def _client(self) -> GeminiClient:
        if self._gemini is None:
            raise ProviderNotConfigured(NOT_CONFIGURED, provider="gemini")
        return self._gemini

    def subtopics(self, request: SubtopicsRequest) -> Outcome:
        """Return `count` subtopics of the topic (fewer, marked partial, when the model gave fewer)."""
        gemini, inputs = self._client(), request.model_dump()
        prompt = prompts.input_prompt("Propose subtopics for this topic.", inputs)

        def call(timeout: float) -> dict[str, Any]:
            parsed = ask_json(gemini, SUBTOPICS, system=prompts.SUBTOPICS_SYSTEM, prompt=prompt, timeout=timeout,
                              context=inputs, reask=self._reask_for(prompt), max_repair_chars=self._max_repair_chars)
            return {**parsed.value.model_dump(), "partial": parsed.partial}

        # The version changes whenever the meaning of a cached answer does.
        return self._subtopics_policy.execute(cache_key("subtopics", "v2", self._model, inputs), call,
                                              input_seconds=gemini.input_seconds(prompt))

    def explanation(self, request: ExplanationRequest) -> Outcome:
        """Return an explanation of the subtopic."""
        gemini, inputs = self._client(), request.model_dump()
        prompt = prompts.input_prompt("Explain this subtopic.", inputs)

        def call(timeout: float) -> dict[str, Any]:
            parsed = ask_json(gemini, EXPLANATION, system=prompts.EXPLANATION_SYSTEM, prompt=prompt,
                              timeout=timeout, context=inputs, reask=self._reask_for(prompt),
                              max_repair_chars=self._max_repair_chars)
            return {**parsed.value.model_dump(), "partial": parsed.partial}

        return self._explanation_policy.execute(cache_key("explanation", "v2", self._model, inputs), call,
                                                input_seconds=gemini.input_seconds(prompt))

    def _reask_for(self, prompt: str) -> Callable[[str], str] | None:
        """The re-ask prompt builder for this prompt, or None when re-asking is off."""
        return partial(prompts.reask_prompt, prompt) if self._reask else None
