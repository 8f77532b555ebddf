"""Gemini through google-genai: one JSON generation call, every SDK failure mapped to our types."""
from __future__ import annotations

import functools
import logging
import threading
from typing import Any, Iterable

import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from pydantic import BaseModel

from backend.errors import (
    ProviderAuthError,
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderServerError,
    ProviderTimeout,
    timeout_for_input,
)
from backend.llm.client import LLMAnswer
from backend.observability.cost import TokenPrices, charge

PROVIDER = "gemini"
logger = logging.getLogger(__name__)
# Finish reasons that mean the model refused to produce (or we must not use) the text.
_BLOCKING_FINISH = {"SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY"}
# Time allowed per 1,000 prompt characters on top of GEMINI_TIMEOUT_SECONDS: the answer grows with the text (every
# error is listed), and at ~200 output tokens/s (an estimate, not a measurement of the real service) the largest
# answer plus thinking (4,096 + 1,024 tokens) takes ~27 s. A 5,000-character text thus gets 20 s more, and is
# judged slow by the breaker only past 30 s (CIRCUIT_BREAKER_TIMEOUT 10 + 20).
INPUT_SECONDS_PER_1K_CHARS = 4.0


class GeminiClient:
    """A thin adapter (an LLMClient): builds the request, makes one call (no SDK retries), maps failures."""

    provider = PROVIDER

    def __init__(self, *, api_key: str, model: str, base_url: str = "", timeout_seconds: float = 20.0,
                 max_output_tokens: int = 4096, thinking_budget: int = -1, prices: TokenPrices | None = None,
                 input_seconds_per_1k_chars: float = INPUT_SECONDS_PER_1K_CHARS):
        self.model = model
        self._input_seconds_per_1k_chars = input_seconds_per_1k_chars
        self._prices = prices or TokenPrices(0.0, 0.0)
        self._api_key = api_key
        self._base_url = base_url
        self._timeout_seconds = timeout_seconds
        self._max_output_tokens = max_output_tokens
        self._thinking_budget = thinking_budget
        self._client: genai.Client | None = None
        self._lock = threading.Lock()

    def _sdk(self) -> genai.Client:
        """Create the SDK client on first use, in the worker process that uses it (never before a fork)."""
        with self._lock:
            if self._client is None:
                options = types.HttpOptions(api_version="v1beta", timeout=int(self._timeout_seconds * 1000))
                if self._base_url:
                    options.base_url = self._base_url
                # retry_options stays unset: the SDK then makes exactly one attempt; retries are our policy's.
                self._client = genai.Client(api_key=self._api_key, http_options=options)
            return self._client

    def warm_up(self, schemas: Iterable[type[BaseModel]]) -> None:
        """Build, without calling Gemini, what a worker's first call would: the SDK client, the response schemas
        and the SDK's request models (about 0.2 s that the first request would otherwise wait)."""
        self._sdk()
        for schema in schemas:
            self._config("", schema, self._timeout_seconds)

    def input_seconds(self, prompt: str) -> float:
        """The time a prompt's answer needs beyond a short one's: long texts get long answers."""
        return len(prompt) / 1000 * self._input_seconds_per_1k_chars

    def generate_json(self, *, system: str, prompt: str, schema: type[BaseModel],
                      timeout: float | None = None) -> LLMAnswer:
        """Ask for JSON matching ``schema``; raise a ProviderError subclass on any failure."""
        input_seconds = self.input_seconds(prompt)
        limit = self._timeout_seconds + input_seconds
        seconds = min(timeout, limit) if timeout is not None else limit
        config = self._config(system, schema, seconds)
        try:
            response = self._sdk().models.generate_content(model=self.model, contents=prompt, config=config)
        except genai_errors.APIError as exc:
            raise map_api_error(exc) from exc
        except httpx2.TimeoutException as exc:
            raise timeout_for_input(f"Gemini did not answer within {seconds:.1f} s", provider=PROVIDER, limit=seconds,
                                    input_seconds=input_seconds) from exc
        except httpx2.TransportError as exc:
            raise ProviderConnectionError(f"Could not reach Gemini ({type(exc).__name__})", provider=PROVIDER) from exc
        except Exception as exc:  # the SDK's own parsing/validation failures must not escape as 500s
            raise ProviderBadResponse(f"Gemini answer could not be read ({type(exc).__name__})",
                                      provider=PROVIDER) from exc
        usage = _usage_of(response.usage_metadata)
        billed = {kind: count for kind, count in usage.items() if kind != "total"}
        charge(PROVIDER, self._prices.cost(usage), tokens=billed)  # billed even when the answer is unusable
        return _answer_of(response, self.model, usage)

    def _config(self, system: str, schema: type[BaseModel], seconds: float) -> types.GenerateContentConfig:
        return types.GenerateContentConfig(
            system_instruction=system or None,
            response_mime_type="application/json",
            response_json_schema=_json_schema(schema),
            max_output_tokens=self._max_output_tokens + max(0, self._thinking_budget),
            thinking_config=(types.ThinkingConfig(thinking_budget=self._thinking_budget)
                             if self._thinking_budget >= 0 else None),
            temperature=0.2,
            # A per-call timeout only when it differs from the client's own: the deadline leaves less, or a long
            # input allows more (merging options per call costs the SDK about half a millisecond).
            http_options=(types.HttpOptions(timeout=max(1, int(seconds * 1000)))
                          if seconds != self._timeout_seconds else None),
        )

    def close(self) -> None:
        """Release the SDK client's connections."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


@functools.cache
def _json_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """The response schema of a model, built once: pydantic takes about a millisecond to build it."""
    return schema.model_json_schema()


def _answer_of(response: types.GenerateContentResponse, model: str, usage: dict[str, int]) -> LLMAnswer:
    """Extract text, finish reason and usage, refusing blocked and empty answers."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        raise ProviderBadResponse(f"Gemini blocked the prompt ({_enum_name(feedback.block_reason)})",
                                  provider=PROVIDER)
    candidate = (response.candidates or [None])[0]
    if candidate is None:
        raise ProviderBadResponse("Gemini returned no candidate", provider=PROVIDER)
    finish = _enum_name(candidate.finish_reason) or "STOP"
    parts = candidate.content.parts if candidate.content and candidate.content.parts else []
    text = "".join(part.text for part in parts if part.text and not part.thought)
    if finish in _BLOCKING_FINISH:
        raise ProviderBadResponse(f"Gemini stopped the answer ({finish})", provider=PROVIDER)
    if not text.strip():
        raise ProviderBadResponse(f"Gemini returned an empty answer ({finish})", provider=PROVIDER)
    return LLMAnswer(text=text, finish_reason=finish, model=response.model_version or model,
                        usage=usage)


def _usage_of(usage: Any) -> dict[str, int]:
    """Token counts from usageMetadata (missing counts are zero)."""
    if usage is None:
        return {}
    return {
        "prompt": usage.prompt_token_count or 0,
        "output": usage.candidates_token_count or 0,
        "thoughts": usage.thoughts_token_count or 0,
        "total": usage.total_token_count or 0,
    }


def _enum_name(value: Any) -> str:
    """The name of an SDK enum value (or the raw string the SDK kept when it did not know it)."""
    if value is None:
        return ""
    return getattr(value, "name", None) or str(value)


def map_api_error(exc: genai_errors.APIError) -> ProviderError:
    """Map an HTTP error from Gemini to our exception types."""
    code, status, message = exc.code or 0, exc.status or "", (exc.message or "")[:300]
    detail = f"Gemini answered {code} {status}".strip()
    if code == 429 or status == "RESOURCE_EXHAUSTED":
        return ProviderRateLimited(detail, provider=PROVIDER, retry_after=_retry_after(exc))
    if code in (401, 403) or (code == 400 and "api key" in message.lower()):
        logger.error("Gemini refused our credentials: check GEMINI_API_KEY", extra={"status": status})
        return ProviderAuthError("Gemini refused the service's credentials", provider=PROVIDER)
    if code == 504:
        return ProviderTimeout(detail, provider=PROVIDER)
    if code >= 500:
        return ProviderServerError(detail, provider=PROVIDER, retry_after=_retry_after(exc))
    # Google's message can describe the request in detail: it goes to our log, the client gets the status.
    logger.warning("Gemini rejected the request", extra={"status": status, "code": code, "detail": message})
    return ProviderRejected(detail, provider=PROVIDER)


def _retry_after(exc: genai_errors.APIError) -> float | None:
    """The Retry-After header of the failed response, in seconds, if it has a numeric one."""
    headers = getattr(exc.response, "headers", None)
    raw = headers.get("retry-after") if headers is not None else None
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None
