"""A lesson job's steps are charged to the caller who asked for it, and refused once its budget is spent, though the
job runs in a worker with no request (on SQLite and on PostgreSQL)."""
from __future__ import annotations

import pytest

from tests.envelope import assert_ok
from tests.redis_helpers import MAIN_REDIS_URL, purge, unique_prefix
from tests.unit.test_jobs_api import LESSON, STEPS, _run, _submit, _wire


@pytest.fixture
def budget_jobs_app(make_app, database_url):
    prefix = unique_prefix("budget-jobs")
    yield _wire(make_app(DATABASE_URL=database_url, REDIS_URL=MAIN_REDIS_URL, REDIS_KEY_PREFIX=prefix,
                         CACHE_MODE="redis", BUDGET_DAILY_USD_PER_CALLER="5"), [])
    purge(prefix)


def test_a_job_s_steps_are_charged_to_its_caller(budget_jobs_app, auth, fake_gemini):
    client = budget_jobs_app.test_client()
    ann = {**auth, "X-User-ID": "ann"}
    job_id = _submit(client, ann, LESSON).get_json()["data"]["job_id"]
    assert _run(budget_jobs_app, job_id) == "succeeded"
    usage = assert_ok(client.get("/api/me/usage", headers=ann))
    assert usage["today"]["paid_calls"] == STEPS == fake_gemini.calls and usage["today"]["cost_usd"] > 0
    assert usage["jobs"] == 1
    assert assert_ok(client.get("/api/me/usage", headers=auth))["today"]["cost_usd"] == 0


def test_a_job_whose_caller_spent_its_budget_meanwhile_fails_with_budget_exceeded(budget_jobs_app, auth, admin,
                                                                                fake_gemini):
    client = budget_jobs_app.test_client()
    ann = {**auth, "X-User-ID": "ann"}
    job_id = _submit(client, ann, LESSON).get_json()["data"]["job_id"]
    assert_ok(client.put("/api/admin/budgets/tester:ann", json={"daily_usd": 0}, headers=admin))
    assert _run(budget_jobs_app, job_id) == "failed"
    job = assert_ok(client.get(f"/api/jobs/{job_id}", headers=ann))
    assert job["error"]["code"] == "BUDGET_EXCEEDED" and fake_gemini.calls == 0
