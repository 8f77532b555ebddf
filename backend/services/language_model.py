"""How services ask a language model for a structured answer: one prompt, one cache key, one upstream call
through the policy (asked again once when unusable), answered as the result's fields plus ``partial``."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from pydantic import BaseModel

from backend.errors import ProviderNotConfigured
from backend.llm.ask import ask_json
from backend.llm.client import LLMClient
from backend.llm.parse import DEFAULT_MAX_REPAIR_CHARS, Operation
from backend.resilience.policy import Outcome, ProviderPolicy
from backend.services import prompts
from backend.services.keys import cache_key

C = TypeVar("C")


def configured(client: C | None, provider: str, how: str) -> C:
    """The client, or PROVIDER_NOT_CONFIGURED saying how to configure it."""
    if client is None:
        raise ProviderNotConfigured(how, provider=provider)
    return client


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
class LanguageModel:
    """A language model as the services use it (None: not configured, with how to configure it)."""

    client: LLMClient | None
    not_configured: str
    reask: bool = True
    max_repair_chars: int = DEFAULT_MAX_REPAIR_CHARS

    def ask(self, task: StructuredTask, inputs: dict[str, Any], policy: ProviderPolicy) -> Outcome:
        """The answer to ``task`` for ``inputs``: from the cache when the same inputs were answered, else one
        upstream call per flight; a long prompt gets more time (the deadline, the call's limit, the breaker)."""
        client = configured(self.client, policy.provider, self.not_configured)
        prompt = prompts.input_prompt(task.task, inputs)
        reask = partial(prompts.reask_prompt, prompt) if self.reask else None

        def call(timeout: float) -> dict[str, Any]:
            parsed = ask_json(client, task.operation, system=task.system, prompt=prompt, timeout=timeout,
                              context=inputs, reask=reask, max_repair_chars=self.max_repair_chars)
            value: BaseModel = parsed.value
            return {**value.model_dump(), "partial": parsed.partial}

        key = cache_key(task.namespace, task.version, client.model, inputs)
        return policy.execute(key, call, input_seconds=client.input_seconds(prompt))
