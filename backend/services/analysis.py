"""Writing analysis: prompt, cache key, and a result the learner can trust."""
from __future__ import annotations

from backend.llm.parse import ANALYSIS
from backend.resilience.policy import Outcome, ProviderPolicy
from backend.schemas.requests import AnalyzeRequest
from backend.services import prompts
from backend.services.language_model import LanguageModel, StructuredTask

# v2: errors checked against the text.
ANALYZE = StructuredTask("analyze", "v2", ANALYSIS, prompts.ANALYSIS_SYSTEM, "Analyse this learner text.")


class AnalysisService:
    """Analyses a learner's text with a language model."""

    def __init__(self, model: LanguageModel, policy: ProviderPolicy):
        self._model = model
        self._policy = policy

    def analyze(self, request: AnalyzeRequest) -> Outcome:
        """Return the analysis of the request's text (from cache when the same request was answered)."""
        return self._model.ask(ANALYZE, request.model_dump(), self._policy)
