"""Writing analysis: prompt, cache key, and a result the learner can trust."""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from backend.errors import ProviderNotConfigured
from backend.llm.ask import ask_json
from backend.llm.parse import ANALYSIS, DEFAULT_MAX_REPAIR_CHARS
from backend.resilience.policy import Outcome, ProviderPolicy
from backend.schemas.requests import AnalyzeRequest
from backend.services import prompts
from backend.services.keys import cache_key

NOT_CONFIGURED = "Gemini is not configured: set GEMINI_API_KEY (and GEMINI_BASE_URL to use a proxy)"

if TYPE_CHECKING:
    from backend.providers.gemini import GeminiClient


class AnalysisService:
    """Analyses a learner's text with Gemini."""

    def __init__(self, gemini: GeminiClient | None, policy: ProviderPolicy, model: str, *, reask: bool = True,
                 max_repair_chars: int = DEFAULT_MAX_REPAIR_CHARS):
        self._gemini = gemini
        self._policy = policy
        self._model = model
        self._reask = reask
        self._max_repair_chars = max_repair_chars

    def analyze(self, request: AnalyzeRequest) -> Outcome:
        """Return the analysis of the request's text (from cache when the same request was answered)."""
        gemini = self._gemini
        if gemini is None:
            raise ProviderNotConfigured(NOT_CONFIGURED, provider="gemini")
        inputs = request.model_dump()
        # The version changes whenever the meaning of a cached answer does (v2: errors checked against the text).
        key = cache_key("analyze", "v2", self._model, inputs)
        prompt = prompts.input_prompt("Analyse this learner text.", inputs)

        def call(timeout: float) -> dict[str, Any]:
            parsed = ask_json(gemini, ANALYSIS, system=prompts.ANALYSIS_SYSTEM, prompt=prompt, timeout=timeout,
                              context=inputs, reask=partial(prompts.reask_prompt, prompt) if self._reask else None,
                              max_repair_chars=self._max_repair_chars)
            return {**parsed.value.model_dump(), "partial": parsed.partial}

        # A long text legitimately takes longer: the deadline, the call's limit and the breaker's judgement allow it.
        return self._policy.execute(key, call, input_seconds=gemini.input_seconds(prompt))
