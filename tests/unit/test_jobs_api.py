"""Lessons as background jobs through the API (contract section 10): submit, follow, cancel; the job run by calling
the task function directly, with the app's own Backend. Each test runs on SQLite and on PostgreSQL."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from backend.db import jobs as repo
from backend.db.models import utcnow
from backend.jobs.tasks import run_lesson, sweep
from backend.schemas.caller import Caller
from backend.schemas.lessons import LessonInputs
from backend.services.jobs import JobService

LESSON = {"topic": "Travel", "sections": 2}
STEPS = 1 + 2 * LESSON["sections"]


def _wire(app, enqueued):
    """The app with its job engine replaced by a recorder of what it is handed: here the task runs in this process
    (``_run``); real worker processes are tests/integration/test_job_workers.py's."""
    backend = app.extensions["backend"]
    backend.jobs = JobService(backend.database, lambda kind, job_id: enqueued.append((kind, job_id)),
                              max_active=backend.settings.max_active_jobs_per_caller)
    return app


@pytest.fixture
def enqueued():
    return []


@pytest.fixture
def jobs_app(make_app, database_url, enqueued):
    return _wire(make_app(DATABASE_URL=database_url, MAX_ACTIVE_JOBS_PER_CALLER=2), enqueued)


@pytest.fixture
def jobs_client(jobs_app):
    return jobs_app.test_client()


def _run(app, job_id, stopping=None):
    """Run the job's task in this process, as a worker would: its outcome."""
    return run_lesson(app.extensions["backend"], job_id, stopping=stopping or threading.Event(),
                      hand_back=lambda job: None)


def _submit(client, auth, body=LESSON):
    response = client.post("/api/lessons", headers=auth, json=body)
    assert response.status_code == 202, response.get_json()
    return response


def test_submit_answers_202_then_the_job_runs_to_a_lesson(jobs_app, jobs_client, auth, fake_gemini):
    response = _submit(jobs_client, auth)
    data = response.get_json()["data"]
    assert set(data) == {"job_id", "status", "status_url"} and data["status"] == "queued"
    assert data["status_url"] == f"/api/jobs/{data['job_id']}" and response.headers["Location"] == data["status_url"]
    queued = jobs_client.get(data["status_url"], headers=auth).get_json()["data"]
    assert set(queued) == {"id", "kind", "status", "progress", "created_at", "started_at", "finished_at", "result",
                           "error"}
    assert (queued["kind"], queued["status"], queued["progress"], queued["result"]) == ("lesson", "queued", 0.0, None)
    assert _run(jobs_app, data["job_id"]) == "succeeded"
    done = jobs_client.get(data["status_url"], headers=auth).get_json()["data"]
    assert (done["status"], done["progress"], done["error"]) == ("succeeded", 1.0, None)
    assert done["started_at"] and done["finished_at"]
    lesson = done["result"]
    assert set(lesson) == {"topic", "level", "title", "sections", "partial"} and len(lesson["sections"]) == 2
    assert fake_gemini.calls == STEPS
    # Run again (a duplicate delivery): finished jobs are not claimed, nothing is paid.
    assert _run(jobs_app, data["job_id"]) == "skipped" and fake_gemini.calls == STEPS


def test_the_service_enqueues_after_the_row_is_committed_and_survives_a_lost_message(jobs_app):
    backend = jobs_app.extensions["backend"]
    caller, seen = Caller("tester", "u1"), []

    def enqueue(kind, job_id):
        with backend.database.session() as session:  # another session: the row must already be committed
            seen.append((kind, repo.get(session, caller, job_id).status))

    accepted = JobService(backend.database, enqueue, max_active=2).submit(caller, LessonInputs(topic="Travel"))
    assert seen == [("lesson", "queued")] and accepted["status"] == "queued"

    def engine_down(kind, job_id):
        raise ConnectionError("the engine is down")

    kept = JobService(backend.database, engine_down, max_active=2).submit(caller, LessonInputs(topic="Travel"))
    with backend.database.session() as session:  # still queued: the sweeper hands it over later
        assert repo.get(session, caller, kept["job_id"]).status == "queued"


@pytest.mark.parametrize("body", [{}, {"topic": ""}, {"topic": "x" * 201}, {"topic": "T", "level": "D1"},
                                  {"topic": "T", "sections": 1}, {"topic": "T", "sections": 9},
                                  {"topic": "T", "surprise": 1}])
def test_invalid_lessons_are_refused_without_a_job(jobs_client, auth, body):
    response = jobs_client.post("/api/lessons", headers=auth, json=body)
    assert response.status_code in (400, 422)
    assert response.get_json()["error"]["code"] == "VALIDATION_ERROR"


def test_beyond_the_active_limit_is_429_until_one_finishes(jobs_app, jobs_client, auth, fake_gemini):
    first = _submit(jobs_client, auth).get_json()["data"]["job_id"]
    _submit(jobs_client, auth)
    refused = jobs_client.post("/api/lessons", headers=auth, json=LESSON)
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "RATE_LIMITED"
    other_user = jobs_client.post("/api/lessons", headers={**auth, "X-User-ID": "someone-else"}, json=LESSON)
    assert other_user.status_code == 202  # the limit is per caller
    assert _run(jobs_app, first) == "succeeded"
    _submit(jobs_client, auth)


def test_another_callers_job_is_not_found(jobs_client, auth):
    url = _submit(jobs_client, auth).get_json()["data"]["status_url"]
    other = {**auth, "X-User-ID": "someone-else"}
    assert jobs_client.get(url, headers=other).status_code == 404
    assert jobs_client.delete(url, headers=other).status_code == 404
    assert jobs_client.get(url, headers=auth).status_code == 200
    assert jobs_client.get("/api/jobs/" + "0" * 32, headers=auth).get_json()["error"]["code"] == "NOT_FOUND"


def test_cancel_a_queued_job_then_delete_it(jobs_app, jobs_client, auth, fake_gemini):
    data = _submit(jobs_client, auth).get_json()["data"]
    assert jobs_client.delete(data["status_url"], headers=auth).get_json()["data"] == {
        "id": data["job_id"], "cancelled": True}
    assert _run(jobs_app, data["job_id"]) == "skipped" and fake_gemini.calls == 0
    view = jobs_client.get(data["status_url"], headers=auth).get_json()["data"]
    assert (view["status"], view["result"]) == ("cancelled", None)
    assert jobs_client.delete(data["status_url"], headers=auth).get_json()["data"]["deleted"] is True
    assert jobs_client.get(data["status_url"], headers=auth).status_code == 404


def test_cancel_a_running_job_stops_it_at_a_step_boundary(jobs_app, jobs_client, auth, fake_gemini):
    fake_gemini.configure(latency_ms=300)
    data = _submit(jobs_client, auth, {"topic": "Travel", "sections": 6}).get_json()["data"]
    outcome = []
    runner = threading.Thread(target=lambda: outcome.append(_run(jobs_app, data["job_id"])))
    runner.start()
    deadline = time.monotonic() + 20
    while jobs_client.get(data["status_url"], headers=auth).get_json()["data"]["progress"] == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert jobs_client.delete(data["status_url"], headers=auth).get_json()["data"]["cancelled"] is True
    runner.join(30)
    assert outcome == ["cancelled"]
    view = jobs_client.get(data["status_url"], headers=auth).get_json()["data"]
    assert (view["status"], view["result"]) == ("cancelled", None)
    assert fake_gemini.calls < 1 + 2 * 6  # it stopped before asking for every step


def test_a_lesson_whose_plan_fails_is_failed_with_the_error(jobs_app, jobs_client, auth, fake_gemini):
    fake_gemini.configure(error="400")
    data = _submit(jobs_client, auth).get_json()["data"]
    assert _run(jobs_app, data["job_id"]) == "failed"
    view = jobs_client.get(data["status_url"], headers=auth).get_json()["data"]
    assert view["status"] == "failed" and view["result"] is None
    assert set(view["error"]) == {"code", "message"} and view["error"]["code"].startswith("PROVIDER")
    # Operators see it: the JSON summary (the dashboard) counts today's failed jobs.
    today = jobs_client.get("/api/metrics").get_json()["data"]["today"]["jobs"]
    assert today == {"queued": 0, "running": 0, "failed": 1, "succeeded": 0}


def test_the_sweeper_hands_over_jobs_whose_lease_ran_out(jobs_app, jobs_client, auth):
    backend = jobs_app.extensions["backend"]
    job_id = _submit(jobs_client, auth).get_json()["data"]["job_id"]
    with backend.database.session(write=True) as session:
        assert repo.claim(session, job_id, token="dead-worker", lease_seconds=5, max_attempts=3) is not None
    handed = []
    assert sweep(backend, lambda kind, job: handed.append((kind, job)), now=utcnow()) == 0
    later = utcnow() + timedelta(seconds=6)
    assert sweep(backend, lambda kind, job: handed.append((kind, job)), now=later) == 1
    assert handed == [("lesson", job_id)]


def test_the_queue_depth_gauge_counts_queued_jobs(jobs_client, auth, fake_gemini):
    _submit(jobs_client, auth)
    _submit(jobs_client, {**auth, "X-User-ID": "someone-else"})
    exposition = jobs_client.get("/metrics").get_data(as_text=True)
    assert 'job_queue_depth{kind="lesson"} 2.0' in exposition


def test_without_a_language_model_a_lesson_is_refused_at_once(make_app, database_url, auth, enqueued):
    app = _wire(make_app(DATABASE_URL=database_url, GEMINI_API_KEY=""), enqueued)
    response = app.test_client().post("/api/lessons", headers=auth, json=LESSON)
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "PROVIDER_NOT_CONFIGURED"
    assert "GEMINI_API_KEY" in response.get_json()["error"]["message"]
    assert enqueued == [] and app.extensions["backend"].jobs.today()["queued"] == 0
