"""Reading Gemini's responses (whole or streamed chunks): text, finish reason, usage; refusing unusable answers."""
from __future__ import annotations

from typing import Any

from google.genai import types

from backend.errors import ProviderBadResponse
from backend.llm.client import LLMAnswer
from backend.observability.cost import TokenPrices, charge

PROVIDER = "gemini"
# Finish reasons that mean the model refused to produce (or we must not use) the text.
BLOCKING_FINISH = {"SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY"}


def answer_of(response: types.GenerateContentResponse, model: str, usage: dict[str, int]) -> LLMAnswer:
    """Extract text, finish reason and usage, refusing blocked and empty answers."""
    refuse_blocked_prompt(response)
    candidate = first_candidate(response)
    if candidate is None:
        raise ProviderBadResponse("Gemini returned no candidate", provider=PROVIDER)
    finish = enum_name(candidate.finish_reason) or "STOP"
    text = text_of(response)
    refuse_blocked_finish(finish)
    if not text.strip():
        raise ProviderBadResponse(f"Gemini returned an empty answer ({finish})", provider=PROVIDER)
    return LLMAnswer(text=text, finish_reason=finish, model=response.model_version or model, usage=usage)


def refuse_blocked_prompt(response: types.GenerateContentResponse) -> None:
    """Raise when Gemini refused the prompt itself (promptFeedback.blockReason, no candidates)."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        raise ProviderBadResponse(f"Gemini blocked the prompt ({enum_name(feedback.block_reason)})",
                                  provider=PROVIDER)


def refuse_blocked_finish(finish: str) -> None:
    """Raise when the model stopped for a reason whose text must not be used (safety, recitation, ...)."""
    if finish in BLOCKING_FINISH:
        raise ProviderBadResponse(f"Gemini stopped the answer ({finish})", provider=PROVIDER)


def text_of(response: types.GenerateContentResponse) -> str:
    """The answer's text in the first candidate (thoughts left out); empty when there is none."""
    candidate = first_candidate(response)
    parts = candidate.content.parts if candidate and candidate.content and candidate.content.parts else []
    return "".join(part.text for part in parts if part.text and not part.thought)


def finish_of(response: types.GenerateContentResponse) -> str:
    """The first candidate's finish reason, or "" while the answer goes on (a streamed chunk)."""
    candidate = first_candidate(response)
    return enum_name(candidate.finish_reason) if candidate is not None else ""


def first_candidate(response: types.GenerateContentResponse) -> types.Candidate | None:
    """The first candidate (Gemini is asked for one), or None when there is none."""
    return response.candidates[0] if response.candidates else None


def usage_of(usage: Any) -> dict[str, int]:
    """Token counts from usageMetadata (missing counts are zero)."""
    if usage is None:
        return {}
    return {
        "prompt": usage.prompt_token_count or 0,
        "output": usage.candidates_token_count or 0,
        "thoughts": usage.thoughts_token_count or 0,
        "total": usage.total_token_count or 0,
    }


def charge_usage(prices: TokenPrices, usage: dict[str, int]) -> None:
    """Charge a call's reported usage (the total is not billed on its own: it sums the others)."""
    billed = {kind: count for kind, count in usage.items() if kind != "total"}
    charge(PROVIDER, prices.cost(usage), tokens=billed)


def enum_name(value: Any) -> str:
    """The name of an SDK enum value (or the raw string the SDK kept when it did not know it)."""
    if value is None:
        return ""
    return getattr(value, "name", None) or str(value)
