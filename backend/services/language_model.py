"""How services ask a language model for a structured answer: one prompt, one cache key per provider, each
provider of the chain through its own policy (asked again once when unusable), answered as the result's fields
plus ``partial``; when every provider fails for a reason that is not the caller's, an in-process answer if any."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Sequence, TypeVar

from pydantic import BaseModel

from backend.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderInputTimeout,
    ProviderNotConfigured,
    ProviderUnavailable,
)
from backend.llm.ask import ask_json
from backend.llm.client import LLMClient
from backend.llm.parse import DEFAULT_MAX_REPAIR_CHARS, Operation
from backend.observability import metrics
from backend.observability.decisions import record_decision
from backend.resilience.policy import Outcome, ProviderPolicy
from backend.services import prompts
from backend.services.keys import cache_key

C = TypeVar("C")
LocalAnswer = Callable[[dict[str, Any]], "dict[str, Any] | None"]


def configured(client: C | None, provider: str, how: str) -> C:
    """The client, or PROVIDER_NOT_CONFIGURED saying how to configure it."""
    if client is None:
        raise ProviderNotConfigured(how, provider=provider)
    return client


def may_fall_back(exc: ProviderError) -> bool:
    """Whether the next provider may answer instead: a failure that is not the caller's (breaker open, bulkhead
    full, timeout, connection, 5xx or 429 after retries, our credentials refused). Not a refusal of the request
    itself, an input too long for any provider's time, nor an answer that stayed unusable after the re-ask."""
    if isinstance(exc, ProviderInputTimeout):
        return False
    return exc.transient or isinstance(exc, (ProviderUnavailable, ProviderAuthError))


@dataclass(frozen=True)
class StructuredTask:
    """One kind of structured answer: its cache namespace and version, what the model must answer, its system
    instruction and the task line of its prompt. The version changes whenever the meaning of a cached answer does."""

    namespace: str
    version: str
    operation: Operation[Any]
    system: str
    task: str


@dataclass(frozen=True)
class Route:
    """One provider for one operation: its client and the policy its calls go through."""

    client: LLMClient
    policy: ProviderPolicy


@dataclass(frozen=True)
class LanguageModel:
    """Language models as the services use them: routes in order of preference (primary, fallback)."""

    not_configured: str
    reask: bool = True
    max_repair_chars: int = DEFAULT_MAX_REPAIR_CHARS

    def ask(self, task: StructuredTask, inputs: dict[str, Any], routes: Sequence[Route],
            local: tuple[ProviderPolicy, LocalAnswer] | None = None) -> Outcome:
        """The answer to ``task`` for ``inputs`` from the first provider that can give one, within one deadline:
        each tries its fresh cache, one upstream call per flight, then its stale entry; a long prompt gets more
        time. A stand-in's answer is cached briefly (its policy's TTL), so the primary's replaces it soon."""
        prompt = prompts.input_prompt(task.task, inputs)
        if not routes:
            raise ProviderNotConfigured(self.not_configured)
        deadline, failure = None, None
        for route in routes:
            input_seconds = route.client.input_seconds(prompt)
            deadline = deadline if deadline is not None else route.policy.deadline_for(input_seconds)
            key = cache_key(task.namespace, task.version, route.client.model, inputs)
            try:
                # A re-ask of an unusable answer is a second call within the same admission.
                bound = route.client.cost_bound(task.system + prompt) * (2 if self.reask else 1)
                outcome = route.policy.execute(key, self._call(route.client, task, prompt, inputs),
                                               input_seconds=input_seconds, deadline=deadline, cost_bound=bound)
            except ProviderError as exc:
                if not may_fall_back(exc):
                    raise
                failure = failure or exc  # the primary's failure is the one to report if nobody answers
                record_decision(route.policy.provider, route.policy.operation, "fell_back", error=type(exc).__name__)
                continue
            metrics.AI_ANSWERS.labels(route.policy.operation, outcome.provider).inc()
            return outcome
        if local is not None:
            degraded = self._local(task, inputs, *local)
            if degraded is not None:
                return degraded
        assert failure is not None
        raise failure

    def _call(self, client: LLMClient, task: StructuredTask, prompt: str, inputs: dict[str, Any]):
        """The upstream call of one provider: ask (and re-ask once when unusable), answer fields + partial."""
        reask = partial(prompts.reask_prompt, prompt) if self.reask else None

        def call(timeout: float) -> dict[str, Any]:
            parsed = ask_json(client, task.operation, system=task.system, prompt=prompt, timeout=timeout,
                              context=inputs, reask=reask, max_repair_chars=self.max_repair_chars)
            value: BaseModel = parsed.value
            return {**value.model_dump(), "partial": parsed.partial}

        return call

    @staticmethod
    def _local(task: StructuredTask, inputs: dict[str, Any], policy: ProviderPolicy,
               answer: LocalAnswer) -> Outcome | None:
        """The in-process answer (cached briefly by its policy), or None when it has none for these inputs."""
        def call(_timeout: float) -> dict[str, Any]:
            value = answer(inputs)
            if value is None:
                raise ProviderUnavailable("No local answer for this input", provider=policy.provider)
            return value

        try:
            outcome = policy.execute(cache_key(task.namespace, task.version, "local", inputs), call)
        except ProviderUnavailable:
            return None
        metrics.AI_ANSWERS.labels(policy.operation, outcome.provider).inc()
        return outcome
