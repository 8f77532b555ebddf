"""Gauges computed at scrape time from shared state, identical whichever worker answers."""
from __future__ import annotations

from typing import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from backend.errors import DatabaseUnavailable
from backend.resilience.breaker import STATE_VALUES

HEALTH_VALUES = {"healthy": 1.0, "degraded": 0.5, "unhealthy": 0.0}


class LiveStateCollector(Collector):
    """circuit_breaker_state{name}, service_health_status{service}, job_queue_depth{kind}, read now, and
    budget_daily_usd_per_key (the setting)."""

    def __init__(self, backend) -> None:
        self.backend = backend

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from backend.health.report import component_report

        report = component_report(self.backend)
        breakers = GaugeMetricFamily("circuit_breaker_state", "Breaker state: 0 closed, 1 half-open, 2 open",
                                     labels=["name"])
        for name, provider in report["components"]["providers"].items():
            breakers.add_metric([name], STATE_VALUES[provider["breaker"]])
        yield breakers
        health = GaugeMetricFamily("service_health_status", "1 up, 0.5 degraded, 0 down", labels=["service"])
        health.add_metric(["api"], HEALTH_VALUES[report["status"]])
        cache = report["components"]["cache"]
        health.add_metric(["cache"], 0.5 if cache["fallback_active"] or cache["disk"] == "failing" else 1.0)
        if cache["redis_configured"]:
            health.add_metric(["redis"], 1.0 if cache["connected"] else 0.0)
        health.add_metric(["database"], 1.0 if report["components"]["database"]["status"] == "ok" else 0.0)
        for name, provider in report["components"]["providers"].items():
            if provider["configured"]:  # an unconfigured provider is not down: it is not in use
                usable = provider["breaker"] not in ("open", "forced_open")
                health.add_metric([name], 1.0 if usable else 0.0)
        yield health
        depth = GaugeMetricFamily("job_queue_depth", "Background jobs queued now (the database's count)",
                                  labels=["kind"])
        if report["components"]["database"]["status"] == "ok":  # no number rather than a wrong one
            try:
                depth.add_metric(["lesson"], float(self.backend.jobs.queue_depth("lesson")))
            except DatabaseUnavailable:
                pass
        yield depth
        # The per-key daily budget, which the BackendAIKeyBudgetBurnRate alert (config/prometheus/alerts.yml) compares
        # each key's spend with. Absent without one: the alert then matches nothing, rather than comparing with 0.
        per_key = self.backend.settings.budget_daily_usd_per_key
        if per_key is not None:
            yield GaugeMetricFamily("budget_daily_usd_per_key", "Daily budget of each client key in USD "
                                    "(BUDGET_DAILY_USD_PER_KEY)", value=float(per_key))


def live_registry(backend) -> CollectorRegistry:
    """A registry of this app's live gauges (not the global one: tests build many apps)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LiveStateCollector(backend))
    return registry
