"""The fallback language model: any OpenAI-compatible chat-completions server (OpenAI, Azure OpenAI, vLLM, Ollama,
llama.cpp, a LiteLLM proxy) through the official openai SDK, one attempt per call, every failure mapped to our types."""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Generator, Iterable, Literal, Sequence
from urllib.parse import urlsplit

import httpx2
import openai
from pydantic import BaseModel

from backend.errors import ProviderError, ProviderNotConfigured, timeout_for_input
from backend.llm.client import LLMAnswer, Message
from backend.observability.cost import TokenPrices, charge
from backend.providers.openai_compat_errors import PROVIDER, logger, map_error, refused_feature
from backend.providers.openai_compat_stream import read_stream
from backend.providers.openai_compat_wire import (
    JSON_OBJECT,
    answer_of,
    json_schema_format,
    schema_instruction,
    usage_of,
)

JsonMode = Literal["auto", "json_schema", "json_object"]
JSON_MODES = ("auto", "json_schema", "json_object")
# The SDK refuses an empty key; keyless servers (Ollama, llama.cpp) accept any.
KEYLESS = "unused"
# The same allowance as Gemini's (backend/providers/gemini.py): long texts get long answers.
INPUT_SECONDS_PER_1K_CHARS = 4.0
CONNECT_SECONDS = 5.0
JSON_TEMPERATURE = 0.2
_ROLES = {"user": "user", "model": "assistant"}


@dataclass(frozen=True)
class RequestShape:
    """The optional parts of a request, which a server's refusals switch off for good (per worker process)."""

    json_object: bool  # json_object with the schema in the system message, instead of json_schema
    temperature: bool  # send temperature (OpenAI's reasoning models refuse anything but the default)
    limit_field: str  # max_completion_tokens (OpenAI, Azure OpenAI) or max_tokens (most other servers)


class OpenAICompatClient:
    """A thin adapter (an LLMClient): builds the request, makes one call (no SDK retries), maps failures."""

    provider = PROVIDER

    def __init__(self, *, base_url: str, api_key: str = "", model: str = "gpt-4o-mini",
                 timeout_seconds: float = 20.0, max_output_tokens: int = 4096, prices: TokenPrices | None = None,
                 json_mode: JsonMode = "auto", input_seconds_per_1k_chars: float = INPUT_SECONDS_PER_1K_CHARS):
        if not base_url:
            raise ValueError("base_url is required (FALLBACK_LLM_BASE_URL)")
        if json_mode not in JSON_MODES:
            raise ValueError(f"json_mode must be one of {', '.join(JSON_MODES)}")
        self.model = model
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key or KEYLESS
        self._timeout_seconds = timeout_seconds
        self._max_output_tokens = max_output_tokens
        self._prices = prices or TokenPrices(0.0, 0.0)
        self._json_mode = json_mode
        self._input_seconds_per_1k_chars = input_seconds_per_1k_chars
        host = (urlsplit(self._base_url).hostname or "").lower()
        openai_host = host == "openai.com" or host.endswith((".openai.com", ".openai.azure.com"))
        self._shape = RequestShape(json_object=json_mode == "json_object", temperature=True,
                                   limit_field="max_completion_tokens" if openai_host else "max_tokens")
        self._client: openai.OpenAI | None = None
        self._pid = 0
        self._lock = threading.Lock()

    @property
    def json_mode(self) -> str:
        """The JSON mode in use now: json_schema or json_object ("auto" resolves to one of them)."""
        return "json_object" if self._shape.json_object else "json_schema"

    def _sdk(self) -> openai.OpenAI:
        """The SDK client, built on first use in the process that uses it (never before a fork; one per process,
        shared by its threads: httpx2's client is thread-safe)."""
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                try:
                    self._client = openai.OpenAI(
                        base_url=self._base_url, api_key=self._api_key, max_retries=0,  # retries are the policy's
                        timeout=_http_timeout(self._timeout_seconds), default_headers=_explicit_headers(self._api_key))
                except Exception as exc:  # e.g. an SSL setup failure: an operator problem, not a provider outage
                    logger.error("the fallback model's SDK client could not be built", exc_info=True)
                    raise ProviderNotConfigured("The fallback model's client could not be built",
                                                provider=PROVIDER) from exc
                self._pid = os.getpid()
            return self._client

    def warm_up(self, schemas: Iterable[type[BaseModel]]) -> None:
        """Build, without any call, what a worker's first call would: the SDK client and its chat resource, and
        each answer's response formats."""
        self._sdk().chat.completions  # noqa: B018 - the SDK imports its resources on first access
        for schema in schemas:
            json_schema_format(schema)
            schema_instruction(schema)

    def input_seconds(self, prompt: str) -> float:
        """The time a prompt's answer needs beyond a short one's: long texts get long answers."""
        return len(prompt) / 1000 * self._input_seconds_per_1k_chars

    def cost_bound(self, text: str) -> float:
        return self._prices.bound(text, self._max_output_tokens)

    def _seconds(self, timeout: float | None, input_seconds: float) -> float:
        limit = self._timeout_seconds + input_seconds
        return min(timeout, limit) if timeout is not None else limit

    # --- the three calls

    def generate_json(self, *, system: str, prompt: str, schema: type[BaseModel],
                      timeout: float | None = None) -> LLMAnswer:
        """Ask for JSON matching ``schema``; raise a ProviderError subclass on any failure."""

        def request(shape: RequestShape) -> dict[str, Any]:
            if shape.json_object:
                instruction = schema_instruction(schema)
                return {"messages": _messages(f"{system}\n\n{instruction}" if system else instruction,
                                              [{"role": "user", "content": prompt}]),
                        "response_format": JSON_OBJECT, **self._common(shape, JSON_TEMPERATURE)}
            return {"messages": _messages(system, [{"role": "user", "content": prompt}]),
                    "response_format": json_schema_format(schema), **self._common(shape, JSON_TEMPERATURE)}

        input_seconds = self.input_seconds(prompt)
        return self._answer(request, self._seconds(timeout, input_seconds), input_seconds)

    def generate_text(self, *, system: str, messages: Sequence[Message], timeout: float | None = None) -> LLMAnswer:
        """A plain-text answer to a conversation (the model's turns become the assistant's)."""
        input_seconds = self.input_seconds(_last_text(messages))
        turns = _turns(messages)
        return self._answer(lambda shape: {"messages": _messages(system, turns), **self._common(shape, None)},
                            self._seconds(timeout, input_seconds), input_seconds)

    def stream_text(self, *, system: str, messages: Sequence[Message],
                    timeout: float | None = None) -> Generator[str, None, LLMAnswer]:
        """The answer's text pieces as they arrive, the whole stream within ``timeout``; the generator's return
        value (``answer = yield from ...``) is the whole LLMAnswer. An HTTP error, or a hang before the first byte,
        raises on the first next(), before any piece (when a fallback is still possible); see read_stream."""
        input_seconds = self.input_seconds(_last_text(messages))
        seconds = self._seconds(timeout, input_seconds)
        turns = _turns(messages)
        deadline = time.monotonic() + seconds
        stream = self._call(lambda shape: {"messages": _messages(system, turns), "stream": True,
                                           "stream_options": {"include_usage": True}, **self._common(shape, None)},
                            seconds, deadline, input_seconds)
        return (yield from read_stream(stream, deadline=deadline, seconds=seconds, input_seconds=input_seconds,
                                       model=self.model, charge=self._charge))

    # --- one call

    def _answer(self, request: Callable[[RequestShape], dict[str, Any]], seconds: float,
                input_seconds: float) -> LLMAnswer:
        response = self._call(request, seconds, time.monotonic() + seconds, input_seconds)
        try:
            usage = usage_of(getattr(response, "usage", None)) if isinstance(response, openai.BaseModel) else {}
            self._charge(usage)  # billed even when the answer is unusable
            return answer_of(response, self.model, usage)
        except ProviderError:
            raise
        except Exception as exc:  # an answer of an unexpected shape (the SDK does not validate by default)
            raise map_error(exc, seconds=seconds, input_seconds=input_seconds) from exc

    def _call(self, request: Callable[[RequestShape], dict[str, Any]], seconds: float, deadline: float,
              input_seconds: float) -> Any:
        """One create() within the deadline. A server refusing an optional part of the request (json_schema,
        temperature, max_tokens) switches it off for good and the same call is made again in the time left."""
        while True:
            shape, sdk = self._shape, self._sdk()  # built first: a worker's first call pays for it within its time
            remaining = deadline - time.monotonic()
            if remaining <= 0:  # only after a refusal used the time up
                raise _timeout(f"The fallback model did not answer within {seconds:.1f} s", seconds, input_seconds)
            try:
                return sdk.chat.completions.create(**request(shape), timeout=_http_timeout(remaining))
            except Exception as exc:
                if not self._adapt(refused_feature(exc), shape):
                    raise map_error(exc, seconds=seconds, input_seconds=input_seconds) from exc

    def _adapt(self, feature: str | None, used: RequestShape) -> bool:
        """Stop sending what the server refused; True when the call should be made again."""
        changes = {"response_format": {"json_object": True} if self._json_mode == "auto" else None,
                   "temperature": {"temperature": False},
                   "max_tokens": {"limit_field": "max_completion_tokens"}}.get(feature or "")
        if not changes or all(getattr(used, name) == value for name, value in changes.items()):
            return False  # refused although not sent: nothing to switch off
        with self._lock:
            shape = replace(self._shape, **changes)
            if shape != self._shape:  # the first thread to see the refusal switches and logs; others just retry
                self._shape = shape
                logger.warning("the fallback model refused %s: not sent from now on in this worker", feature,
                               extra={"feature": feature, "json_mode": self.json_mode, "model": self.model})
        return True

    def _common(self, shape: RequestShape, temperature: float | None) -> dict[str, Any]:
        common: dict[str, Any] = {"model": self.model, shape.limit_field: self._max_output_tokens}
        if temperature is not None and shape.temperature:
            common["temperature"] = temperature
        return common

    def _charge(self, usage: dict[str, int]) -> None:
        billed = {kind: count for kind, count in usage.items() if kind != "total"}
        charge(PROVIDER, self._prices.cost(usage), tokens=billed)

    def close(self) -> None:
        """Release the SDK client's connections (this process's only)."""
        with self._lock:
            if self._client is not None and self._pid == os.getpid():
                self._client.close()
            self._client = None


def _timeout(message: str, seconds: float, input_seconds: float) -> ProviderError:
    return timeout_for_input(message, provider=PROVIDER, limit=seconds, input_seconds=input_seconds)


def _http_timeout(seconds: float) -> httpx2.Timeout:
    """Each read (and write, and the wait for a pooled connection) gets the time left; a connect at most 5 s."""
    return httpx2.Timeout(seconds, connect=min(seconds, CONNECT_SECONDS))


def _explicit_headers(api_key: str) -> dict[str, Any]:
    """Headers that cancel what the SDK would add from the environment: the lines of OPENAI_CUSTOM_HEADERS (which
    it adds to every request, its Authorization over our key), OPENAI_ORG_ID and OPENAI_PROJECT_ID. Omitted."""
    names = [line.partition(":")[0].strip() for line in os.environ.get("OPENAI_CUSTOM_HEADERS", "").split("\n")
             if ":" in line]
    headers: dict[str, Any] = {name: openai.omit for name in names if name and name.lower() != "authorization"}
    headers.update({"OpenAI-Organization": openai.omit, "OpenAI-Project": openai.omit,
                    "Authorization": f"Bearer {api_key}"})
    return headers


def _messages(system: str, turns: list[dict[str, str]]) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + turns


def _turns(messages: Sequence[Message]) -> list[dict[str, str]]:
    return [{"role": _ROLES.get(m.role, "user"), "content": m.text} for m in messages]


def _last_text(messages: Sequence[Message]) -> str:
    return messages[-1].text if messages else ""
