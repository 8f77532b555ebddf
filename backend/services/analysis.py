"""Writing analysis: prompt, cache key, and a result the learner can trust."""
from __future__ import annotations

from typing import Sequence

from backend.llm.parse import ANALYSIS
from backend.resilience.policy import Outcome, ProviderPolicy
from backend.schemas.requests import AnalyzeRequest
from backend.services import prompts
from backend.services.language_model import LanguageModel, LocalAnswer, Route, StructuredTask

# v2: errors checked against the text; v3: cefr_assessment may be null (a level the model did not give plainly).
ANALYZE = StructuredTask("analyze", "v3", ANALYSIS, prompts.ANALYSIS_SYSTEM, "Analyse this learner text.")


class AnalysisService:
    """Analyses a learner's text with a language model; in-process, marked degraded, when none can answer."""

    def __init__(self, model: LanguageModel, routes: Sequence[Route],
                 local: tuple[ProviderPolicy, LocalAnswer] | None = None):
        self._model = model
        self._routes = routes
        self._local = local

    def analyze(self, request: AnalyzeRequest) -> Outcome:
        """Return the analysis of the request's text (from cache when the same request was answered)."""
        return self._model.ask(ANALYZE, request.model_dump(), self._routes, self._local)
