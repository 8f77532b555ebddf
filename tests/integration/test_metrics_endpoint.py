"""GET /metrics under the real gunicorn with 2 workers: lint-clean for promtool, every contract metric, same totals."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CLIENT_KEY, FAKE_PROVIDER_KEY
from tests.integration.servers import Gunicorn, access_lines
from tests.unit.test_alert_rules import promtool

pytestmark = pytest.mark.gunicorn
CONTRACT_METRICS = (
    "http_requests_total", "http_request_duration_seconds", "cache_operations_total",
    "ai_operation_duration_seconds", "ai_operation_errors_total", "circuit_breaker_state", "service_health_status",
    "json_parse_failures_total", "json_parse_repairs_total", "ai_tokens_total", "ai_cost_usd_total",
    "ai_cost_avoided_usd_total", "rate_limited_total",
)
AI_LIMIT = 3
STABLE_ROUTE = "/health/ready"  # nothing else calls it: its count only moves when this module does


@pytest.fixture(scope="module")
def server(fake_gemini, fake_azure, tmp_path_factory):
    env = {"APP_ENV": "testing", "CACHE_MODE": "disk", "CACHE_DIR": str(tmp_path_factory.mktemp("cache")),
           "API_KEYS": CLIENT_KEY, "GEMINI_API_KEY": FAKE_PROVIDER_KEY, "GEMINI_BASE_URL": fake_gemini.base_url,
           "AZURE_SPEECH_KEY": FAKE_PROVIDER_KEY, "AZURE_SPEECH_HOST": fake_azure.host_url,
           "RATE_LIMIT_AI": f"{AI_LIMIT}/minute"}
    log = tmp_path_factory.mktemp("logs") / "gunicorn.log"
    with Gunicorn(env, workers=2, threads=4, log_path=log) as instance:
        yield instance


def _post(server: Gunicorn, path: str, body: dict, user: str) -> requests.Response:
    """An AI call as its own user: each user has its own AI budget, so only the storm is limited."""
    return requests.post(f"{server.url}{path}", json=body, timeout=30,
                         headers={"X-API-Key": CLIENT_KEY, "X-User-ID": user})


@pytest.fixture(scope="module")
def exposition(server, fake_gemini) -> str:
    """/metrics after traffic that moves every contract metric (multiprocess mode shows a metric only once used)."""
    fake_gemini.reset()
    text = {"text": "I recieve many letter yesterday."}
    first = _post(server, "/api/analyze", text, "miss")
    assert first.headers.get("X-Cache") == "MISS", first.text[:300]
    assert _post(server, "/api/analyze", text, "hit").headers["X-Cache"] == "HIT"
    fake_gemini.configure(malformed="markdown")  # repaired: json_parse_repairs_total
    assert _post(server, "/api/create_subtopics", {"topic": "Music"}, "repair").status_code == 200
    fake_gemini.reset()
    fake_gemini.script([{"text": "Sorry, I cannot help with that."}] * 3)  # unusable: json_parse_failures_total
    assert _post(server, "/api/explanation", {"topic": "Verbs", "subtopic": "Modals"}, "unusable").status_code == 502
    fake_gemini.reset()
    fake_gemini.configure(error="400")  # refused upstream: ai_operation_errors_total
    assert _post(server, "/api/create_subtopics", {"topic": "Art"}, "rejected").status_code == 502
    fake_gemini.reset()
    # The limit is per process without Redis: each worker may allow AI_LIMIT before refusing.
    statuses = [_post(server, "/api/create_subtopics", {"topic": f"Storm {i}"}, "storm").status_code
                for i in range(AI_LIMIT * server.workers + 1)]
    assert 429 in statuses, statuses
    return requests.get(f"{server.url}/metrics", timeout=10).text


def _families(body: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(body)}


def test_metrics_pass_promtool_lint(exposition):
    result = promtool("check", "metrics", stdin=exposition.encode())
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0 and not output.strip(), output


def test_every_contract_metric_is_exposed(exposition):
    typed = set(re.findall(r"^# TYPE (\S+) ", exposition, flags=re.MULTILINE))
    missing = [name for name in CONTRACT_METRICS if name not in typed]
    assert not missing, f"not in /metrics after traffic that should move them: {missing}"
    health = {s.labels["service"]: s.value for s in _families(exposition)["service_health_status"].samples}
    assert health == {"api": 1.0, "cache": 1.0, "database": 1.0, "gemini": 1.0, "azure_speech": 1.0,
                      "azure_tts": 1.0}


def test_cost_follows_tokens(exposition):
    samples = {(s.name, s.labels.get("provider")): s.value
               for name in ("ai_tokens", "ai_cost_usd") for s in _families(exposition)[name].samples}
    assert samples[("ai_tokens_total", "gemini")] > 0
    assert samples[("ai_cost_usd_total", "gemini")] > 0, "tokens were used but no cost was charged"


def _stable_count(server: Gunicorn) -> tuple[float, int]:
    """The STABLE_ROUTE count in one /metrics answer, and the pid of the worker that answered."""
    response = requests.get(f"{server.url}/metrics", timeout=10)
    request_id = response.headers["X-Request-ID"]
    pid = next(line["process"] for line in access_lines(server.log_path) if line.get("request_id") == request_id)
    for sample in _families(response.text)["http_requests"].samples:
        if sample.name == "http_requests_total" and sample.labels == {
                "route": STABLE_ROUTE, "method": "GET", "status": "200"}:
            return sample.value, pid
    return 0.0, pid


def test_totals_are_the_same_whichever_worker_answers(server):
    sent = 24
    with ThreadPoolExecutor(8) as pool:  # concurrent, so both workers serve some of them
        assert all(r.status_code == 200 for r in pool.map(
            lambda _: requests.get(f"{server.url}{STABLE_ROUTE}", timeout=10), range(sent)))
    served_by = {line["process"] for line in access_lines(server.log_path) if line["route"] == STABLE_ROUTE}
    # Keep asking (bounded) until both workers have answered /metrics: the claim is about either worker. Asked
    # eight at a time, since one at a time an idle host may hand every new connection to the same worker.
    answers: list = []
    with ThreadPoolExecutor(8) as pool:
        while len({pid for _, pid in answers}) < server.workers and len(answers) < 80:
            answers += pool.map(lambda _: _stable_count(server), range(8))
    assert len(served_by) == server.workers, "one worker served every request: the sum proves nothing"
    assert len({pid for _, pid in answers}) == server.workers, "the same worker answered every /metrics"
    assert {count for count, _ in answers} == {float(sent)}, answers
