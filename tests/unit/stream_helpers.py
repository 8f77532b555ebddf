"""A scripted provider stream and a policy to run it through, for the stream-policy tests."""
from __future__ import annotations

import time

from prometheus_client import REGISTRY

from backend.errors import ProviderUnavailable
from backend.llm.client import LLMAnswer
from backend.observability import metrics
from backend.resilience.breaker import CircuitBreaker
from backend.resilience.breaker_state import BreakerConfig
from backend.resilience.bulkhead import Bulkhead
from backend.resilience.policy import ProviderPolicy
from backend.resilience.retry import RetryPolicy
from backend.resilience.store import MemoryStore
from backend.resilience.streams import ProviderStream, open_stream

OPERATION = "converse_stream"


class Clock:
    """The breaker's clock, moved by hand so that a recovery timeout passes without waiting."""

    now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Script:
    """A ``start`` function: each call plays the next scenario (the last one repeats), a list of text pieces,
    exception types (raised there) and pauses (floats, slept); the generator returns the whole LLMAnswer."""

    def __init__(self, *plays: list) -> None:
        self.plays = plays
        self.calls = 0
        self.finished = 0  # generators whose finally ran
        self.abandoned = 0  # generators closed before their end (GeneratorExit at a yield)

    def __call__(self, seconds: float):
        assert seconds > 0
        play = self.plays[min(self.calls, len(self.plays) - 1)]
        self.calls += 1
        return self._run(play)

    def _run(self, play: list):
        text = []
        try:
            for item in play:
                if isinstance(item, float):
                    time.sleep(item)
                elif isinstance(item, str):
                    text.append(item)
                    yield item
                else:
                    raise item("scripted failure", provider="gemini")
            return LLMAnswer(text="".join(text), finish_reason="STOP", model="scripted")
        except GeneratorExit:
            self.abandoned += 1
            raise
        finally:
            self.finished += 1


def make_policy(*, limit: int = 2, attempts: int = 3, threshold: int = 1, slow: float = 10.0,
                clock: Clock | None = None, breaker: CircuitBreaker | None = None) -> ProviderPolicy:
    breaker = breaker or CircuitBreaker("gemini", BreakerConfig(failure_threshold=threshold, recovery_timeout=30),
                                        local=MemoryStore(), clock=clock or Clock(), slow_call_seconds=slow,
                                        open_hint_seconds=0)
    return ProviderPolicy("gemini", OPERATION, deadline_seconds=5, breaker=breaker,
                          bulkhead=Bulkhead("gemini", limit), retry=RetryPolicy(attempts, base=0.01, cap=0.02))


def begin(policy: ProviderPolicy, script: Script, input_seconds: float = 0.0) -> ProviderStream:
    return open_stream(policy, script, deadline=policy.deadline_for(input_seconds), input_seconds=input_seconds)


def free_slots(policy: ProviderPolicy) -> int:
    """How many bulkhead slots can be taken now (all given back afterwards)."""
    bulkhead, taken = policy.bulkhead, 0
    assert bulkhead is not None
    while True:
        try:
            bulkhead.acquire()
        except ProviderUnavailable:
            break
        taken += 1
    for _ in range(taken):
        bulkhead.release()
    return taken


def breaker_state(policy: ProviderPolicy) -> dict:
    return policy.breaker.state()  # type: ignore[union-attr]


def decisions(decision: str) -> float:
    return metrics.POLICY_DECISIONS.labels("gemini", OPERATION, decision)._value.get()


def errors(error_type: str) -> float:
    return metrics.AI_ERRORS.labels(OPERATION, error_type)._value.get()


def durations() -> float:
    labels = {"operation": OPERATION, "provider": "gemini"}
    return REGISTRY.get_sample_value("ai_operation_duration_seconds_count", labels) or 0.0
