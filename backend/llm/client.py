"""The one interface every language-model adapter implements, so that prompts, parsing, services and cost
accounting never depend on a particular provider (Gemini, an OpenAI-compatible fallback, ...)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Literal, Protocol, Sequence

from pydantic import BaseModel

# How adapters name the reasons an answer stopped at the output limit (Gemini's and OpenAI's words).
TRUNCATED = frozenset({"MAX_TOKENS", "length"})


@dataclass(frozen=True)
class LLMAnswer:
    """The model's text with what parsing and cost accounting need."""

    text: str
    finish_reason: str
    model: str
    usage: dict[str, int] = field(default_factory=dict)

    @property
    def truncated(self) -> bool:
        """Whether the model stopped at the output token limit."""
        return self.finish_reason in TRUNCATED


@dataclass(frozen=True)
class Message:
    """One turn of a conversation: the learner's (user) or the model's."""

    role: Literal["user", "model"]
    text: str


class LLMClient(Protocol):
    """A language model behind one provider. Every method raises only backend.errors.ProviderError subclasses,
    makes exactly one attempt (retries are the policy's), and honours ``timeout`` (seconds) for the whole call."""

    provider: str  # the breaker's, the metrics' and X-Provider's name for it
    model: str

    def input_seconds(self, prompt: str) -> float:
        """The time an answer to ``prompt`` needs beyond a short prompt's (long texts get long answers)."""
        ...

    def cost_bound(self, text: str) -> float:
        """The most one call whose input is ``text`` (instruction and messages) can cost, in USD: held against the
        caller's daily budget while the call runs."""
        ...

    def generate_json(self, *, system: str, prompt: str, schema: type[BaseModel],
                      timeout: float | None = None) -> LLMAnswer:
        """A JSON answer meant to match ``schema`` (parsing and repair are backend.llm's)."""
        ...

    def generate_text(self, *, system: str, messages: Sequence[Message], timeout: float | None = None) -> LLMAnswer:
        """A plain-text answer to a conversation (oldest turn first, the last one the user's)."""
        ...

    def stream_text(self, *, system: str, messages: Sequence[Message],
                    timeout: float | None = None) -> Iterator[str]:
        """The same answer as pieces of text as they arrive; ``timeout`` bounds the whole stream."""
        ...

    def warm_up(self, schemas: Iterable[type[BaseModel]]) -> None:
        """Build, without any call, what the first call would (so a new worker's first request does not wait)."""
        ...

    def close(self) -> None:
        """Release connections (on worker exit)."""
        ...


def input_text(system: str, messages: Sequence[Message]) -> str:
    """All the text a conversation's call sends (what its cost bound is computed from)."""
    return "\n".join([system, *(message.text for message in messages)])
