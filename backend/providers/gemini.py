"""Gemini through google-genai: JSON and plain-text answers, text streams, every SDK failure mapped to our types."""
from __future__ import annotations

import functools
import logging
import threading
from typing import Any, Iterable, Iterator, Sequence

from google import genai
from google.genai import types
from pydantic import BaseModel

from backend.errors import ProviderRejected
from backend.llm.client import LLMAnswer, Message
from backend.observability.cost import TokenPrices
from backend.providers.gemini_errors import map_api_error, map_failure  # noqa: F401  (map_api_error: public)
from backend.providers.gemini_request import RequestTemplates
from backend.providers.gemini_response import answer_of, charge_usage, usage_of
from backend.providers.gemini_stream import on_response, stream_answer

PROVIDER = "gemini"
logger = logging.getLogger(__name__)
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
        self._templates = RequestTemplates()
        self._configs: dict[tuple, types.GenerateContentConfig] = {}  # per operation, built on first use

    def _sdk(self) -> genai.Client:
        """Create the SDK client on first use, in the worker process that uses it (never before a fork)."""
        with self._lock:
            if self._client is None:
                # The response hook lets a stream's deadline end a read that is blocked on its connection.
                options = types.HttpOptions(api_version="v1beta", timeout=int(self._timeout_seconds * 1000),
                                            client_args={"event_hooks": {"response": [on_response]}})
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
            self._templates.warm(self._sdk(), ("json", schema), self.model,
                                 self._config("", schema, self._timeout_seconds))
        self._templates.warm(self._sdk(), ("text",), self.model, self._text_config("", self._timeout_seconds))

    def input_seconds(self, prompt: str) -> float:
        """The time a prompt's answer needs beyond a short one's: long texts get long answers."""
        return len(prompt) / 1000 * self._input_seconds_per_1k_chars

    def cost_bound(self, text: str) -> float:
        return self._prices.bound(text, self._max_output_tokens + max(0, self._thinking_budget))

    def generate_json(self, *, system: str, prompt: str, schema: type[BaseModel],
                      timeout: float | None = None) -> LLMAnswer:
        """Ask for JSON matching ``schema``; raise a ProviderError subclass on any failure."""
        input_seconds = self.input_seconds(prompt)
        limit = self._timeout_seconds + input_seconds
        seconds = min(timeout, limit) if timeout is not None else limit
        return self._generate(("json", schema), [{"role": "user", "parts": [{"text": prompt}]}],
                              self._config(system, schema, seconds), seconds, input_seconds)

    def generate_text(self, *, system: str, messages: Sequence[Message], timeout: float | None = None) -> LLMAnswer:
        """A plain-text answer to a conversation, within ``timeout`` (at most the client's own timeout: a
        conversational answer does not grow with the history, so no input allowance)."""
        seconds = self._text_seconds(timeout)
        return self._generate(("text",), _contents(messages), self._text_config(system, seconds), seconds,
                              0.0)

    def stream_text(self, *, system: str, messages: Sequence[Message],
                    timeout: float | None = None) -> Iterator[str]:
        """The answer to a conversation as pieces of text as they arrive (see gemini_stream.stream_answer).

        ``timeout`` bounds the whole stream (by default the client's timeout), counted from the first ``next()``;
        the client's timeout is also the longest silence allowed between pieces. The generator's return value
        (``answer = yield from ...``) is the whole LLMAnswer, for callers that want the finish reason and usage.
        """
        contents = _contents(messages)
        seconds = timeout if timeout is not None else self._timeout_seconds

        def open_stream(read_seconds: float) -> Iterator[types.GenerateContentResponse]:
            config = self._text_config(system, read_seconds)
            return self._sdk().models.generate_content_stream(model=self.model, contents=contents, config=config)

        return stream_answer(open_stream, seconds=seconds, read_seconds=self._timeout_seconds, model=self.model,
                             prices=self._prices)

    def _generate(self, key: tuple, contents: list[dict[str, Any]], config: types.GenerateContentConfig,
                  seconds: float, input_seconds: float) -> LLMAnswer:
        """One generateContent call: its failures mapped, its usage charged even when the answer is unusable.
        ``key`` names everything in ``config`` but its timeout: the request's wire form is built once per key
        (backend/providers/gemini_request.py)."""
        try:
            response = self._templates.generate(self._sdk(), key, self.model, contents, config)
        except Exception as exc:
            raise map_failure(exc, seconds=seconds, input_seconds=input_seconds) from exc
        usage = usage_of(response.usage_metadata)
        charge_usage(self._prices, usage)
        return answer_of(response, self.model, usage)

    def _text_seconds(self, timeout: float | None) -> float:
        return min(timeout, self._timeout_seconds) if timeout is not None else self._timeout_seconds

    def _config(self, system: str, schema: type[BaseModel], seconds: float) -> types.GenerateContentConfig:
        return self._per_call(("json", schema), system, seconds)

    def _text_config(self, system: str, seconds: float) -> types.GenerateContentConfig:
        return self._per_call(("text",), system, seconds)

    def _per_call(self, key: tuple, system: str, seconds: float) -> types.GenerateContentConfig:
        """The operation's config with this call's system prompt and timeout. The rest is the same for every call
        of the operation, so it is validated once and copied (shallow, as the request templates share it too):
        building the whole config per call cost 100 us (JSON) and 66 us (text), the copy 23 us, measured."""
        base = self._configs.get(key)
        if base is None:
            structured = key[0] == "json"
            answer_format: dict[str, Any] = (
                {"response_mime_type": "application/json", "response_json_schema": _json_schema(key[1])}
                if structured else {})
            base = self._configs[key] = types.GenerateContentConfig(
                **answer_format, max_output_tokens=self._max_output_tokens + max(0, self._thinking_budget),
                thinking_config=(types.ThinkingConfig(thinking_budget=self._thinking_budget)
                                 if self._thinking_budget >= 0 else None),
                temperature=0.2 if structured else 0.7)
        return base.model_copy(update={
            "system_instruction": system or None,
            # A per-call timeout only when it differs from the client's own: the deadline leaves less, or a long
            # input allows more (merging options per call costs the SDK about 25 us, measured).
            "http_options": (types.HttpOptions(timeout=max(1, int(seconds * 1000)))
                             if seconds != self._timeout_seconds else None)})

    def close(self) -> None:
        """Release the SDK client's connections and those of the thin HTTP path (gemini_http.py)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
        self._templates.close()


@functools.cache
def _json_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """The response schema of a model, built once: pydantic takes about a millisecond to build it."""
    return schema.model_json_schema()


def _contents(messages: Sequence[Message]) -> list[Any]:
    """A conversation as Gemini's contents, oldest turn first (roles "user" and "model", as Gemini names them).

    Plain dicts in the SDK's shape rather than types.Content: the SDK validates and converts every model object it is
    given, which cost 17.6 ms for a 66-message history against 8.3 ms for the same dicts (bench/conversation.py)."""
    if not messages:
        raise ProviderRejected("A conversation needs at least one message", provider=PROVIDER)
    return [{"role": m.role, "parts": [{"text": m.text}]} for m in messages]
