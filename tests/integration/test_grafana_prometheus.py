"""The Grafana dashboard (config/grafana/backend-ai.json) and the alert rules (config/prometheus/alerts.yml) against
a real Prometheus (Debian's package) scraping a real 2-worker gunicorn instance, with a job worker writing into the
same multiprocess directory: every panel expression evaluates and returns series, every metric the dashboard or an
alert reads is exported, every alert rule group loads and evaluates healthy.

Grafana itself is not run: its variables are replaced as Grafana would ($__rate_interval and $__range by a window
holding many scrapes, $job by the scrape job, $instance by the variable's "All" value).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import yaml

from backend.db.migrate import upgrade
from tests.conftest import ADMIN_KEY, CLIENT_KEY, FAKE_PROVIDER_KEY
from tests.integration.prometheus_server import JOB, RULES, Prometheus
from tests.integration.servers import ROOT, Gunicorn, _base_env
from tests.redis_helpers import MAIN_REDIS_URL, purge, unique_prefix

pytestmark = pytest.mark.gunicorn
DASHBOARD = ROOT / "config/grafana/backend-ai.json"
PROVISIONING = ROOT / "config/grafana/provisioning"
WINDOW = "1m"  # $__rate_interval and $__range: 60 scrapes at 1 s, so every rate() has its two samples
AI_LIMIT = 4
# Metrics read by the dashboard or an alert that the traffic below does not make appear (the multiprocess mode
# exports a counter only once incremented), each checked against the definitions instead. None today.
AFTER_EVENT: dict[str, str] = {}
PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
                "bool", "inf", "nan"}


@dataclass(frozen=True)
class Stack:
    server: Gunicorn
    prometheus: Prometheus


@pytest.fixture(scope="module")
def stack(fake_gemini, tmp_path_factory) -> Iterator[Stack]:
    """The instance, its job worker and Prometheus; traffic driven while Prometheus scrapes, then settled."""
    directory = tmp_path_factory.mktemp("grafana")
    database_url = f"sqlite:///{directory / 'backend-ai.db'}"
    upgrade(database_url)
    prefix = unique_prefix("grafana")
    env = {"APP_ENV": "testing", "API_KEYS": f"tester:{CLIENT_KEY}", "ADMIN_API_KEY": ADMIN_KEY,
           "GEMINI_API_KEY": FAKE_PROVIDER_KEY, "GEMINI_BASE_URL": fake_gemini.base_url,
           "GEMINI_TIMEOUT_SECONDS": "5", "REQUEST_DEADLINE_SECONDS": "10", "RETRY_MAX_ATTEMPTS": "1",
           "DATABASE_URL": database_url, "CACHE_MODE": "redis", "REDIS_URL": MAIN_REDIS_URL,
           "REDIS_KEY_PREFIX": prefix, "CACHE_DIR": str(directory / "cache"), "RATE_LIMIT_AI": f"{AI_LIMIT}/minute",
           "BUDGET_DAILY_USD_PER_KEY": "100", "PROMETHEUS_MULTIPROC_DIR": str(directory / "metrics")}
    server = Gunicorn(env, workers=2, threads=4, log_path=directory / "gunicorn.log")
    prometheus = Prometheus(directory / "prometheus", target=f"127.0.0.1:{server.port}")
    worker: subprocess.Popen | None = None
    try:
        server.start()
        # Started after gunicorn, whose master empties the metrics directory; the worker writes its own files there.
        with open(directory / "worker.log", "ab") as log:
            worker = subprocess.Popen([sys.executable, "-m", "backend.jobs.worker", "-w", "2"], cwd=ROOT,
                                      env={**_base_env(), **env}, stdout=log, stderr=log, start_new_session=True)
        prometheus.start()
        drive_traffic(server, fake_gemini)
        prometheus.settle()
        yield Stack(server, prometheus)
    finally:
        prometheus.stop()
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait(10)
        server.stop()
        purge(prefix)


def _call(server: Gunicorn, method: str, path: str, user: str, body: dict | None = None) -> requests.Response:
    return requests.request(method, f"{server.url}{path}", json=body, timeout=30,
                            headers={"X-API-Key": CLIENT_KEY, "X-User-ID": user})


def drive_traffic(server: Gunicorn, fake_gemini) -> None:
    """A cache miss and hit, a rate-limit storm, a 404, a conversation turn, a lesson run by the job worker, a
    budget refusal, a degraded (local) answer and a 5xx: together they make every metric read appear."""
    fake_gemini.reset()
    words = {"text": "I recieve many letter yesterday and I goes to school."}
    first = _call(server, "POST", "/api/analyze", "miss", words)
    assert first.status_code == 200 and first.headers["X-Cache"] == "MISS", first.text[:300]
    assert _call(server, "POST", "/api/analyze", "hit", words).headers["X-Cache"] == "HIT"
    # Cached answers, so free: only the limit (shared through Redis) refuses.
    storm = [_call(server, "POST", "/api/analyze", "storm", words).status_code for _ in range(AI_LIMIT + 1)]
    assert storm.count(429) == 1, storm
    assert _call(server, "GET", "/api/no-such-route", "miss").status_code == 404

    created = _call(server, "POST", "/api/conversations", "talker", {"scenario": "at the cafe"})
    assert created.status_code == 201, created.text[:300]
    turn = _call(server, "POST", f"/api/conversations/{created.json()['data']['id']}/messages", "talker",
                 {"text": "I would like a coffee, please."})
    assert turn.status_code == 201, turn.text[:300]
    accepted = _call(server, "POST", "/api/lessons", "learner", {"topic": "Travel", "sections": 2})
    assert accepted.status_code == 202, accepted.text[:300]
    deadline = time.monotonic() + 30
    while (job := _call(server, "GET", f"/api/jobs/{accepted.json()['data']['job_id']}", "learner").json()["data"])[
            "status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job["status"] == "succeeded", job

    # A caller whose daily budget is 0: refused before any provider is asked.
    override = requests.put(f"{server.url}/api/admin/budgets/tester:spender", json={"daily_usd": 0},
                            headers={"X-Admin-Key": ADMIN_KEY}, timeout=10)
    assert override.status_code == 200, override.text[:300]
    refused = _call(server, "POST", "/api/analyze", "spender", {"text": "Another text, never analysed before."})
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "BUDGET_EXCEEDED", refused.text[:300]

    # Gemini failing: the analysis falls back to the local one (degraded); subtopics have no fallback (5xx).
    fake_gemini.configure(error="503")
    degraded = _call(server, "POST", "/api/analyze", "degraded",
                     {"text": "Yesterday I go to the market and buyed three apple for my sister."})
    assert degraded.status_code == 200 and degraded.json()["data"]["degraded"] is True, degraded.text[:300]
    failed = _call(server, "POST", "/api/create_subtopics", "failed", {"topic": "Music"})
    assert failed.status_code >= 500, failed.text[:300]
    fake_gemini.reset()


# -- what the dashboard and the rules read ---------------------------------------------------------------------

def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panel_targets() -> list[tuple[str, str]]:
    """(panel title, expression) of every query of every panel, those inside collapsed rows included."""
    panels = [panel for top in dashboard()["panels"] for panel in [top, *top.get("panels", [])]]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel.get("targets", [])]


def rule_expressions() -> list[str]:
    return [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def as_grafana_sends(expr: str) -> str:
    """The expression with the dashboard's variables replaced; no other variable may be left."""
    for variable, value in (("$__rate_interval", WINDOW), ("$__range", WINDOW), ("$job", JOB), ("$instance", ".*")):
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"an unknown variable in {expr}"
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers left once strings, label matchers, ranges and label
    lists are removed, that are neither functions (followed by a parenthesis), keywords nor parts of numbers."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    return {match.group() for match in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", expr)
            if match.group().lower() not in PROMQL_WORDS and not expr[match.end():].lstrip().startswith("(")}


def defined_samples() -> set[str]:
    """Every sample name the service can export: metrics.py's metrics and the live gauges."""
    from prometheus_client import Counter, Gauge, Histogram

    from backend.observability import metrics

    names = set()
    for value in vars(metrics).values():
        if isinstance(value, (Counter, Gauge, Histogram)):
            family = next(iter(value.describe()))
            names |= {"counter": {family.name + "_total"}, "gauge": {family.name},
                      "histogram": {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}}[family.type]
    live = re.findall(r'GaugeMetricFamily\(\s*"(\w+)"', (ROOT / "backend/monitoring/live_gauges.py").read_text())
    assert len(live) >= 4, live
    return names | set(live)


def exported_samples(exposition: str) -> set[str]:
    return set(re.findall(r"^([A-Za-z_:][\w:]*)[{ ]", exposition, flags=re.MULTILINE))


# -- the checks ------------------------------------------------------------------------------------------------

def test_metric_names_are_read_from_promql():
    assert metric_names('histogram_quantile(0.95, sum by (job, le) (rate(a_bucket{route!~"/x|y(z)"}[5m]))) > 1e3 '
                        "and on (job) group_left b_total offset 5m or vector(0) * c:d") == {"a_bucket", "b_total",
                                                                                               "c:d"}


def test_every_panel_expression_evaluates_and_returns_series(stack: Stack):
    assert JOB in stack.prometheus.api("label/job/values", **{"match[]": "http_requests_total"})
    deadline = time.monotonic() + 30
    while True:  # a series scraped once has no rate yet: under load, give the next scrapes a moment
        failures, empty = [], []
        for title, expr in panel_targets():
            status, result = stack.prometheus.query(as_grafana_sends(expr))
            if status != "success":
                failures.append((title, expr, result))
            elif not result:
                empty.append((title, expr))
        if failures or not empty or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not failures, failures
    assert not empty, f"no series after traffic that moves their metrics: {empty}"


def test_panels_show_the_traffic(stack: Stack):
    def labels(title: str, label: str) -> set[str]:
        status, result = stack.prometheus.query(as_grafana_sends(dict(panel_targets())[title]))
        assert status == "success", result
        return {series["metric"].get(label, "") for series in result}

    routes = labels("Requests per second by route", "route")
    assert {"/api/analyze", "/api/lessons", "/metrics"} <= routes and any("/messages" in r for r in routes), routes
    assert "/api/create_subtopics" in labels("5xx share by route", "route")
    assert "/api/analyze" in labels("Rate-limited requests by route", "route")
    assert labels("Budget refusals per minute by scope", "scope") == {"caller"}
    assert {"gemini", "local"} <= labels("Answers by provider (share)", "provider")
    assert labels("Job runs by status", "status") == {"succeeded"}


def test_every_metric_read_is_defined_and_exported(stack: Stack):
    read = set().union(*(metric_names(expr) for expr in [e for _, e in panel_targets()] + rule_expressions()))
    read |= {re.match(r"label_values\((\w+)", variable["definition"]).group(1)  # type: ignore[union-attr]
             for variable in dashboard()["templating"]["list"] if variable["type"] == "query"}
    defined = defined_samples()
    assert read - defined == set(), "read by the dashboard or an alert, but defined nowhere"
    assert set(AFTER_EVENT) <= read & defined, "stale AFTER_EVENT entries"
    exported = exported_samples(requests.get(f"{stack.server.url}/metrics", timeout=10).text)
    missing = read - exported - set(AFTER_EVENT)
    assert not missing, f"read by the dashboard or an alert, but not in /metrics after the traffic: {missing}"


def test_every_alert_rule_group_loads_and_evaluates_healthy(stack: Stack):
    expected = {group["name"]: [rule.get("alert") or rule.get("record") for rule in group["rules"]]
                for group in yaml.safe_load(RULES.read_text())["groups"]}
    loaded = {group["name"]: group for group in stack.prometheus.rule_groups()}
    assert set(loaded) == set(expected)
    for name, group in loaded.items():
        assert [rule["name"] for rule in group["rules"]] == expected[name]
        unhealthy = [(rule["name"], rule["health"], rule.get("lastError")) for rule in group["rules"]
                     if rule["health"] != "ok"]
        assert not unhealthy, unhealthy


def test_provisioning_points_at_the_dashboard_and_its_datasource():
    """The provisioned datasource is the dashboard's default; the provider reads where compose mounts the JSON."""
    board = dashboard()
    datasource = yaml.safe_load((PROVISIONING / "datasources/prometheus.yml").read_text())["datasources"][0]
    variable = next(v for v in board["templating"]["list"] if v["name"] == "datasource")
    assert (datasource["type"], datasource["uid"], datasource["name"]) == (
        variable["query"], variable["current"]["value"], variable["current"]["text"])
    provider = yaml.safe_load((PROVISIONING / "dashboards/backend-ai.yml").read_text())["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert board["uid"] == "backend-ai" and board["schemaVersion"] >= 39
    assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])
    for panel in board["panels"]:
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        for source in [panel.get("datasource")] + [target["datasource"] for target in panel.get("targets", [])]:
            assert source is None or source["uid"] == "${datasource}", panel["title"]
