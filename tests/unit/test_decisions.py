"""Policy decisions: always counted; logged at INFO unless they can happen on every request."""
from __future__ import annotations

import logging

from backend.observability import metrics
from backend.observability.decisions import record_decision


def count(decision: str) -> float:
    return metrics.POLICY_DECISIONS.labels("gemini", "analyze", decision)._value.get()


def test_every_decision_is_counted_and_per_request_ones_stay_quiet(caplog):
    caplog.set_level(logging.INFO, logger="backend.policy")
    before = {name: count(name) for name in ("retry", "short_circuited")}
    record_decision("gemini", "analyze", "retry", attempt=2)
    record_decision("gemini", "analyze", "short_circuited", retry_after=3.0)
    assert count("retry") == before["retry"] + 1
    assert count("short_circuited") == before["short_circuited"] + 1
    logged = [(r.levelname, r.decision, getattr(r, "attempt", None)) for r in caplog.records]
    assert logged == [("INFO", "retry", 2)]
