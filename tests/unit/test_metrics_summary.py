"""GET /api/metrics: per-route window figures, cache hit rate, cost spent and what the cache saved."""
from __future__ import annotations

from backend.observability.summary import quantile
from tests.envelope import assert_ok


def summary(client) -> dict:
    return assert_ok(client.get("/api/metrics"))


def test_a_hit_saves_what_the_miss_cost(client, auth):
    before = summary(client)["cost_usd"]
    body = {"topic": "Saving money", "count": 3}
    client.post("/api/create_subtopics", json=body, headers=auth)
    after_miss = summary(client)["cost_usd"]
    spent = after_miss["spent"] - before["spent"]
    assert spent > 0, "the fake reports token usage, so the miss must cost something"
    client.post("/api/create_subtopics", json=body, headers=auth)
    after_hit = summary(client)["cost_usd"]
    assert after_hit["spent"] == after_miss["spent"]
    saved = after_hit["avoided"].get("cache", 0) - after_miss["avoided"].get("cache", 0)
    assert abs(saved - spent) < 2.5e-6  # each total is rounded to 6 decimals: a difference of two is off by 2e-6


def test_route_figures_over_the_window(client, auth):
    summary(client)  # first snapshot: later calls report the window since it
    for _ in range(4):
        client.post("/api/explanation", json={"topic": "Window", "subtopic": "Figures"}, headers=auth)
    client.get("/api/nope")
    data = summary(client)
    route = data["routes"]["/api/explanation"]
    assert route["count"] == 4 and route["error_rate"] == 0.0
    assert 0 < route["p50_ms"] <= route["p95_ms"] <= route["p99_ms"]
    assert data["window_seconds"] > 0 and data["cache"]["lookups"] >= 4
    assert set(data["breakers"]) == {"gemini", "azure_speech", "azure_tts"}


def test_quantile_interpolates_within_buckets():
    buckets = {0.01: 0.0, 0.1: 50.0, 1.0: 100.0, float("inf"): 100.0}
    assert abs(quantile(0.5, buckets) - 0.1) < 1e-9
    assert abs(quantile(0.75, buckets) - 0.55) < 1e-9
    assert quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None


def test_invented_methods_do_not_create_metric_series(client):
    for i in range(5):
        client.open("/health", method=f"X{i:05d}")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'method="X00001"' not in text and 'method="OTHER"' in text


def test_snapshots_stay_bounded_however_often_the_summary_is_asked(monkeypatch):
    """The attack: every call to the unauthenticated route used to keep a full snapshot for 600 s."""
    from backend.observability import summary as summary_module
    from backend.observability.summary import MetricsSummary

    # What is bounded is the snapshots kept, not the reading of them: one real reading of the registry, returned
    # 2,000 times (late in a full run, the registry holds every earlier test's series and one reading costs ~20 ms).
    totals = summary_module.read_totals()
    monkeypatch.setattr(summary_module, "read_totals", lambda: totals)
    now = [1_000_000.0]
    summary_ = MetricsSummary(window_seconds=300.0, snapshot_interval=5.0, clock=lambda: now[0])
    for _ in range(500):  # a burst within one second keeps one snapshot
        summary_.summary()
    assert summary_.snapshots_held == 1
    for _ in range(1500):  # 25 minutes at one call a second: 300 snapshot times, more than two windows
        now[0] += 1.0
        summary_.summary()
    assert summary_.snapshots_held <= 2 * 300 / 5 + 2
    data = summary_.summary()
    assert 300 <= data["window_seconds"] <= 310, "the window still reaches back about window_seconds"
