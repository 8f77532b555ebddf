"""The JSON summary of /api/metrics: per-route rates and latency percentiles over a recent window, for all workers.

Totals come from the aggregated (multiprocess) registry, so they are the same whichever worker answers. A window
is the difference between now and a snapshot taken about `window_seconds` ago; percentiles are interpolated
within histogram buckets, as Prometheus' histogram_quantile does.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from typing import Any, Callable

from backend.observability import metrics

Totals = dict[str, Any]
# Counters summed as they are, by their labels.
_FLAT = ("cache_operations_total", "ai_upstream_calls_total", "ai_tokens_total", "ai_answers_total",
         "ai_cost_usd_total", "ai_cost_avoided_usd_total", "rate_limited_total", "ai_tts_characters_total",
         "budget_refusals_total")
# Every scope a budget refusal can have (backend/resilience/spend_meter.py): each is reported, 0 before the first.
_REFUSAL_SCOPES = ("caller", "key")


def read_totals() -> Totals:
    """Counters and histogram buckets of interest, summed over workers."""
    routes: dict[str, dict[str, Any]] = defaultdict(lambda: {"count": 0, "errors": 0, "client_errors": 0,
                                                             "buckets": defaultdict(float)})
    flat: dict[str, dict[tuple, float]] = defaultdict(lambda: defaultdict(float))
    for metric in metrics.aggregated_registry().collect():
        for sample in metric.samples:
            labels = sample.labels
            if sample.name == "http_requests_total":
                slot = routes[labels["route"]]
                slot["count"] += sample.value
                status = int(labels["status"])
                slot["errors"] += sample.value if status >= 500 else 0
                slot["client_errors"] += sample.value if 400 <= status < 500 else 0
            elif sample.name == "http_request_duration_seconds_bucket":
                routes[labels["route"]]["buckets"][float(labels["le"])] += sample.value
            elif sample.name in _FLAT:
                flat[sample.name][tuple(sorted(labels.items()))] += sample.value
    return {"routes": {r: {**v, "buckets": dict(v["buckets"])} for r, v in routes.items()},
            "flat": {name: dict(series) for name, series in flat.items()}}


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """histogram_quantile over cumulative buckets {upper bound: count}; None without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    previous_bound, previous_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return previous_bound
            span = count - previous_count
            fraction = (rank - previous_count) / span if span else 1.0
            return previous_bound + (bound - previous_bound) * fraction
        previous_bound, previous_count = bound, count
    return previous_bound


class MetricsSummary:
    """Keeps snapshots of the totals (per worker) to report a recent window rather than all time.

    A snapshot is kept at most every ``snapshot_interval`` seconds and only for two windows, so the memory held
    and the scan per request are bounded however often the (unauthenticated) route is called: once, every call
    appended a snapshot, and 16 threads for 3 minutes grew each worker by 330 MB.
    """

    def __init__(self, window_seconds: float = 300.0, *, snapshot_interval: float = 5.0,
                 clock: Callable[[], float] = time.time):
        self.window_seconds = window_seconds
        self.snapshot_interval = snapshot_interval
        self._clock = clock
        self._snapshots: deque[tuple[float, Totals]] = deque(
            maxlen=int(2 * window_seconds / snapshot_interval) + 2)
        self._lock = threading.Lock()

    @property
    def snapshots_held(self) -> int:
        """How many snapshots this worker holds (bounded by construction)."""
        return len(self._snapshots)

    def summary(self) -> dict[str, Any]:
        """Routes (count, rate, error rate, p50/p95/p99 in ms) over the window; cache, upstream and cost totals."""
        now, totals = self._clock(), read_totals()
        with self._lock:
            baseline_time, baseline = self._baseline(now)
            if not self._snapshots or now - self._snapshots[-1][0] >= self.snapshot_interval:
                self._snapshots.append((now, totals))
            while self._snapshots and self._snapshots[0][0] < now - 2 * self.window_seconds:
                self._snapshots.popleft()
        span = max(now - baseline_time, 1e-9) if baseline is not None else None
        routes = {}
        for route, current in sorted(totals["routes"].items()):
            before = (baseline or {}).get("routes", {}).get(route)
            routes[route] = _route_window(current, before, span)
        return {"window_seconds": round(span, 3) if span else None, "routes": routes,
                **_flat_summary(totals["flat"])}

    def _baseline(self, now: float) -> tuple[float, Totals | None]:
        """The newest snapshot at least a window old, else the oldest held (None: count since start)."""
        chosen: tuple[float, Totals | None] = (0.0, None)
        for taken, totals in self._snapshots:
            if taken <= now - self.window_seconds or chosen[1] is None:
                chosen = (taken, totals)
        return chosen


def _route_window(current: dict[str, Any], before: dict[str, Any] | None, span: float | None) -> dict[str, Any]:
    """Deltas of one route between the baseline and now."""
    before = before or {"count": 0, "errors": 0, "client_errors": 0, "buckets": {}}
    count = current["count"] - before["count"]
    errors = current["errors"] - before["errors"]
    buckets = {le: n - before["buckets"].get(le, 0.0) for le, n in current["buckets"].items()}

    def ms(q: float) -> float | None:
        value = quantile(q, buckets)
        return round(value * 1000, 2) if value is not None else None

    return {"count": int(count), "requests_per_second": round(count / span, 3) if span else None,
            "error_rate": round(errors / count, 4) if count else 0.0,
            "client_error_rate": round((current["client_errors"] - before["client_errors"]) / count, 4)
            if count else 0.0,
            "p50_ms": ms(0.5), "p95_ms": ms(0.95), "p99_ms": ms(0.99),
            "total_count": int(current["count"])}


def _flat_summary(flat: dict[str, dict[tuple, float]]) -> dict[str, Any]:
    """Since-start totals: cache hit rate, upstream calls, tokens, cost spent and avoided, budget refusals (the
    rest of "spend", today's figures, is read from the spend meter by the route)."""
    def by(name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for labels, value in flat.get(name, {}).items():
            out[dict(labels)[label]] += value
        return dict(out)

    gets = {dict(k)["result"]: v for k, v in flat.get("cache_operations_total", {}).items()
            if dict(k)["operation"] == "get"}
    looked = sum(gets.values())
    avoided: dict[str, float] = defaultdict(float)
    for labels, value in flat.get("ai_cost_avoided_usd_total", {}).items():
        avoided[dict(labels)["reason"]] += value
    return {
        "cache": {"hit_rate": round(gets.get("hit", 0) / looked, 4) if looked else 0.0,
                  "hits": int(gets.get("hit", 0)), "lookups": int(looked)},
        "upstream_calls": {provider: int(v) for provider, v in by("ai_upstream_calls_total", "provider").items()},
        "answers_by_provider": {provider: int(v) for provider, v in by("ai_answers_total", "provider").items()},
        "tokens": {kind: int(v) for kind, v in by("ai_tokens_total", "kind").items()},
        "speech_characters": int(sum(flat.get("ai_tts_characters_total", {}).values())),
        "cost_usd": {"spent": round(sum(flat.get("ai_cost_usd_total", {}).values()), 6),
                     "avoided": {reason: round(v, 6) for reason, v in avoided.items()},
                     "by_provider": {p: round(v, 6) for p, v in by("ai_cost_usd_total", "provider").items()}},
        "rate_limited": int(sum(flat.get("rate_limited_total", {}).values())),
        "spend": {"refusals": {**dict.fromkeys(_REFUSAL_SCOPES, 0),
                               **{scope: int(v) for scope, v in by("budget_refusals_total", "scope").items()}}},
    }
