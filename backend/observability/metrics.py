"""Prometheus metrics, aggregated over gunicorn workers through prometheus-client's multiprocess mode.

The metric objects are module-level (prometheus-client's design); in multiprocess mode each worker writes its own
files under PROMETHEUS_MULTIPROC_DIR, which config/gunicorn.conf.py prepares before any worker starts.
Label values are bounded: route templates, provider and operation names, error class names.
"""
from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60)

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["route", "method", "status"])
HTTP_DURATION = Histogram("http_request_duration_seconds", "HTTP request duration", ["route", "method"],
                          buckets=LATENCY_BUCKETS)
CACHE_OPERATIONS = Counter("cache_operations_total", "Cache operations by result", ["operation", "result"])
CACHE_TIER_LOOKUPS = Counter("cache_tier_lookups_total", "Cache lookups per namespace and tier",
                             ["namespace", "tier", "result"])
AI_DURATION = Histogram("ai_operation_duration_seconds", "Upstream AI call duration (retries included)",
                        ["operation", "provider"], buckets=LATENCY_BUCKETS)
AI_ERRORS = Counter("ai_operation_errors_total", "Failed AI operations", ["operation", "error_type"])
AI_UPSTREAM_CALLS = Counter("ai_upstream_calls_total", "Upstream provider calls by outcome",
                            ["provider", "operation", "outcome"])
POLICY_DECISIONS = Counter("policy_decisions_total", "Resilience policy decisions",
                           ["provider", "operation", "decision"])
JSON_PARSE_FAILURES = Counter("json_parse_failures_total", "Model outputs that could not be used", ["source"])
JSON_PARSE_REPAIRS = Counter("json_parse_repairs_total", "Model outputs that needed repair", ["source", "kind"])
JSON_PARSE_SECONDS = Histogram("json_parse_seconds", "Time spent parsing model output", ["source"],
                               buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5))
AI_TOKENS = Counter("ai_tokens_total", "Tokens used", ["provider", "kind"])
AI_AUDIO_SECONDS = Counter("ai_audio_seconds_total", "Audio seconds sent to speech recognition", ["provider"])
AI_COST = Counter("ai_cost_usd_total", "Estimated upstream cost in USD", ["provider"])
AI_COST_AVOIDED = Counter("ai_cost_avoided_usd_total", "Estimated cost avoided in USD", ["provider", "reason"])
RATE_LIMITED = Counter("rate_limited_total", "Requests refused by a rate limit", ["route"])
# Which provider answered each AI request (gemini, fallback, local, azure_speech): the fallback share and the
# degraded (local) answers are ratios of these.
AI_ANSWERS = Counter("ai_answers_total", "AI answers by the provider that gave them", ["operation", "provider"])
# Tutor replies asked to be spoken: spoken, or failed (the turn still succeeds, with audio_url null).
TUTOR_SPEECH = Counter("tutor_speech_total", "Spoken tutor replies by outcome", ["outcome"])
AI_TTS_CHARACTERS = Counter("ai_tts_characters_total", "Characters sent to speech synthesis", ["provider"])
DB_DURATION = Histogram("db_query_duration_seconds", "Database statement duration by statement name", ["statement"],
                        buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
# Learner turns by outcome: answered, replayed (same Idempotency-Key), conflict, failed, stream_failed.
CONVERSATION_TURNS = Counter("conversation_turns_total", "Conversation turns by outcome", ["outcome", "mode"])
# Background jobs (backend/jobs/tasks.py): finished runs by outcome, and how long a run took to finish.
JOBS_TOTAL = Counter("jobs_total", "Background job runs by outcome", ["kind", "status"])
JOB_DURATION = Histogram("job_duration_seconds", "Background job run duration", ["kind"],
                         buckets=(0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600))
# Spend controls (backend/resilience/spend.py): calls refused because a daily budget (a caller's, or its client
# key's: scope) was spent, and what paid calls cost, per client key (keys are configured, so the label is bounded).
BUDGET_REFUSALS = Counter("budget_refusals_total", "Calls refused because a daily budget was spent", ["scope"])
BUDGET_SPEND = Counter("budget_spend_usd_total", "Provider spend charged to callers, per client key", ["key"])


def multiprocess_dir() -> str | None:
    """The directory workers write their metric files to, when running under gunicorn."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


def aggregated_registry() -> CollectorRegistry:
    """A registry holding every worker's samples (multiprocess), or this process's alone."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    from prometheus_client import REGISTRY

    return REGISTRY


def exposition(extra: CollectorRegistry | None = None) -> bytes:
    """Prometheus text for /metrics: all workers' samples, plus live gauges computed now."""
    body = generate_latest(aggregated_registry())
    return body + (generate_latest(extra) if extra is not None else b"")
