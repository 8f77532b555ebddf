"""Lessons generated in steps (contract section 10), through the real google-genai SDK against the fake Gemini."""
from __future__ import annotations

import json
import threading

import pydantic
import pytest

from backend.composition import GEMINI_NOT_CONFIGURED, LANGUAGE_MODELS
from backend.errors import ProviderError, ProviderServerError
from backend.resilience.policy import ProviderPolicy
from backend.resilience.retry import RetryPolicy
from backend.services.language_model import LanguageModel, Route
from backend.services.lessons import LessonCancelled, LessonGenerator

LESSON = {"topic": "Travel", "level": None, "sections": 3, "language": "en-US"}
FAIL = {"status": 503}  # a scripted call answered 503 (retried by the policy)
OK: dict = {}  # a scripted call answered normally


class Concurrency:
    """A client that counts the calls in flight through it, and the most at once."""

    def __init__(self, client):
        self._client, self._lock = client, threading.Lock()
        self.now = self.peak = 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    def generate_json(self, **kwargs):
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            return self._client.generate_json(**kwargs)
        finally:
            with self._lock:
                self.now -= 1


def _routes(backend, operation, client=None):
    """The configured language models' routes (Gemini, then the fallback), built as the composition root does;
    ``client`` stands in for Gemini's."""
    settings, routes = backend.settings, []
    for name in LANGUAGE_MODELS:
        provider = backend.providers[name] if name in backend.providers else None
        if provider is None or provider.client is None:
            continue
        policy = ProviderPolicy(name, operation, deadline_seconds=settings.request_deadline_seconds,
                                cache=backend.shared.cache, flights=backend.shared.flights, breaker=provider.breaker,
                                bulkhead=provider.bulkhead, partial_ttl=settings.cache_partial_ttl_seconds,
                                ttl=settings.cache_partial_ttl_seconds if name != "gemini" else None,
                                retry=RetryPolicy(settings.retry_max_attempts,
                                                  retry_after_cap=settings.retry_after_cap_seconds))
        routes.append(Route(client if client is not None and name == "gemini" else provider.client, policy))
    return routes


def _generator(app, *, max_parallel=3, client=None):
    backend = app.extensions["backend"]
    model = LanguageModel(GEMINI_NOT_CONFIGURED, reask=backend.settings.llm_reask)
    return LessonGenerator(model, _routes(backend, "lesson_plan", client), _routes(backend, "lesson_section", client),
                           _routes(backend, "lesson_exercises", client), max_parallel=max_parallel)


def _titles_asked(fake):
    """The response schemas' titles of the calls made, in order."""
    return [r["body"]["generationConfig"]["responseJsonSchema"]["title"] for r in fake.requests()]


def test_a_lesson_has_the_planned_sections_with_content_and_checked_exercises(make_app, fake_gemini):
    lesson = _generator(make_app()).generate(LESSON)
    assert set(lesson) == {"topic", "level", "title", "sections", "partial"}
    assert (lesson["topic"], lesson["level"], lesson["partial"]) == ("Travel", "B1", False)
    assert "Travel" in lesson["title"] and len(lesson["sections"]) == 3
    assert len({section["title"] for section in lesson["sections"]}) == 3
    for section in lesson["sections"]:
        assert set(section) == {"title", "explanation", "key_points", "examples", "exercises"}
        assert "Travel" in section["title"] and section["title"] in section["explanation"]
        assert section["key_points"] and section["examples"]
        assert 3 <= len(section["exercises"]) <= 5
        for exercise in section["exercises"]:
            assert set(exercise) == {"question", "options", "answer"} and exercise["answer"] in exercise["options"]
    titles = _titles_asked(fake_gemini)
    assert fake_gemini.calls == 7 and titles[0] == "LessonPlan"
    assert sorted(titles[1:]) == ["ExerciseSet"] * 3 + ["SectionContent"] * 3


def test_progress_is_reported_after_every_step(make_app, fake_gemini):
    seen = []
    _generator(make_app()).generate({**LESSON, "sections": 4}, on_step=lambda done, total: seen.append((done, total)))
    assert seen == [(done, 9) for done in range(1, 10)]
    assert fake_gemini.calls == 9


def test_a_second_run_with_the_same_inputs_pays_nothing(make_app, fake_gemini):
    app = make_app()
    first = _generator(app).generate(LESSON)
    assert fake_gemini.calls == 7
    again = _generator(app, max_parallel=1).generate(LESSON)  # a new generator: a run after a crash
    assert again == first and fake_gemini.calls == 7
    _generator(app).generate({**LESSON, "level": "A2"})  # other inputs are other steps
    assert fake_gemini.calls == 14


def test_a_stop_after_the_plan_cancels_before_any_other_call(make_app, fake_gemini):
    steps = []
    with pytest.raises(LessonCancelled):
        _generator(make_app()).generate(LESSON, on_step=lambda done, total: steps.append(done),
                                        should_stop=lambda: bool(steps))
    assert steps == [1] and fake_gemini.calls == 1
    assert _titles_asked(fake_gemini) == ["LessonPlan"]


def test_a_stop_is_checked_before_every_step(make_app, fake_gemini):
    steps, checks = [], []

    def should_stop():
        checks.append(len(steps))
        return len(steps) >= 4

    with pytest.raises(LessonCancelled):
        _generator(make_app(), max_parallel=1).generate(LESSON, on_step=lambda done, total: steps.append(done),
                                                        should_stop=should_stop)
    assert checks == [0, 1, 2, 3, 4] and steps == [1, 2, 3, 4] and fake_gemini.calls == 4
    with pytest.raises(LessonCancelled):
        _generator(make_app()).generate(LESSON, should_stop=lambda: True)
    assert fake_gemini.calls == 4  # stopped before the plan: nothing asked


def test_steps_running_at_a_cancel_finish_and_a_rerun_pays_only_for_the_rest(make_app, fake_gemini):
    fake_gemini.configure(latency_ms=100)
    app, steps = make_app(), []
    with pytest.raises(LessonCancelled):
        _generator(app, max_parallel=2).generate({**LESSON, "sections": 2},
                                                 on_step=lambda done, total: steps.append(done),
                                                 should_stop=lambda: len(steps) >= 2)
    # The plan, then the first section's two steps at once: the stop comes once either is done (both, when they
    # end together); no third step starts.
    assert steps in ([1, 2], [1, 2, 3]) and fake_gemini.calls == 3
    lesson = _generator(app, max_parallel=2).generate({**LESSON, "sections": 2})
    assert len(lesson["sections"]) == 2 and fake_gemini.calls == 5  # the second section's two steps only


def test_a_failed_section_is_left_out_and_failed_exercises_leave_none(make_app, fake_gemini):
    app = make_app(RETRY_MAX_ATTEMPTS=2)
    planned = _generator(app).generate(LESSON)  # the titles; this run's answers are cached in its own app
    # One step at a time, in the plan's order: plan, 1st content, 1st exercises, 2nd content (503 twice: fails
    # after its retry), 2nd exercises, 3rd content, 3rd exercises (fails after its retry).
    fake_gemini.reset()
    fake_gemini.script([OK, OK, OK, FAIL, FAIL, OK, OK, FAIL, FAIL])
    steps = []
    lesson = _generator(make_app(RETRY_MAX_ATTEMPTS=2), max_parallel=1).generate(
        LESSON, on_step=lambda done, total: steps.append((done, total)))
    assert fake_gemini.calls == 9 and fake_gemini.stats()["script_pending"] == 0
    assert steps == [(done, 7) for done in range(1, 8)]
    first, _, third = planned["sections"]
    assert lesson["partial"] is True and lesson["title"] == planned["title"]
    assert lesson["sections"] == [first, {**third, "exercises": []}]


def test_the_lesson_fails_when_every_section_fails(make_app, fake_gemini):
    fake_gemini.script([OK, FAIL, OK, FAIL, OK])
    steps = []
    with pytest.raises(ProviderServerError):
        _generator(make_app(RETRY_MAX_ATTEMPTS=1), max_parallel=1).generate(
            {**LESSON, "sections": 2}, on_step=lambda done, total: steps.append(done))
    assert steps == [1, 2, 3, 4, 5] and fake_gemini.calls == 5


def test_the_lesson_fails_when_the_plan_fails(make_app, fake_gemini):
    fake_gemini.configure(error="503")
    steps = []
    with pytest.raises(ProviderError) as raised:
        _generator(make_app(RETRY_MAX_ATTEMPTS=2)).generate(LESSON, on_step=lambda done, total: steps.append(done))
    assert raised.value.code == "PROVIDER_ERROR" and raised.value.transient
    assert steps == [] and fake_gemini.calls == 2  # the plan and its retry, nothing after it


def test_repaired_answers_make_the_lesson_partial(make_app, fake_gemini):
    fake_gemini.configure(malformed="markdown")  # every answer in a ```json fence: usable, repaired
    lesson = _generator(make_app()).generate(LESSON)
    assert lesson["partial"] is True and len(lesson["sections"]) == 3
    assert all(3 <= len(section["exercises"]) <= 5 for section in lesson["sections"])


def test_an_exercise_whose_answer_is_not_an_option_is_dropped_and_the_lesson_partial(make_app, fake_gemini):
    exercises = [{"question": f"Q{n}?", "options": ["yes", "no"], "answer": "yes"} for n in range(1, 4)]
    exercises.append({"question": "Q4?", "options": ["yes", "no"], "answer": "maybe"})
    fake_gemini.script([OK, OK, {"text": json.dumps({"exercises": exercises})}])
    lesson = _generator(make_app(), max_parallel=1).generate(LESSON)
    assert lesson["partial"] is True and fake_gemini.calls == 7
    assert lesson["sections"][0]["exercises"] == exercises[:3]
    assert all(len(section["exercises"]) == 4 for section in lesson["sections"][1:])


def test_the_fallback_model_writes_the_lesson_while_gemini_is_down(make_app, fake_gemini, fake_openai):
    fake_gemini.configure(error="503")
    app = make_app(FALLBACK_LLM_BASE_URL=fake_openai.base_url, FALLBACK_LLM_API_KEY="fake-provider-key",
                   FALLBACK_LLM_MODEL="fallback-test", RETRY_MAX_ATTEMPTS=1)
    lesson = _generator(app).generate(LESSON)
    assert lesson["partial"] is False and len(lesson["sections"]) == 3 and "Travel" in lesson["title"]
    for section in lesson["sections"]:
        assert section["explanation"] and 3 <= len(section["exercises"]) <= 5
        assert all(exercise["answer"] in exercise["options"] for exercise in section["exercises"])
    assert fake_openai.calls == 7  # every step, once
    assert 1 <= fake_gemini.calls <= 7  # tried first, until its breaker opened


@pytest.mark.parametrize("max_parallel", [1, 3])
def test_steps_run_in_parallel_within_the_bound(make_app, fake_gemini, max_parallel):
    fake_gemini.configure(latency_ms=150)
    app = make_app()
    counted = Concurrency(app.extensions["backend"].providers["gemini"].client)
    lesson = _generator(app, max_parallel=max_parallel, client=counted).generate({**LESSON, "sections": 4})
    assert len(lesson["sections"]) == 4 and fake_gemini.calls == 9
    assert counted.peak == max_parallel and counted.now == 0


@pytest.mark.parametrize("inputs", [{"topic": ""}, {"topic": "x", "sections": 9}, {"topic": "x", "level": "D1"},
                                    {"topic": "x", "language": "English"}, {"topic": "x", "extra": 1}])
def test_invalid_inputs_are_refused_before_any_call(make_app, fake_gemini, inputs):
    with pytest.raises(pydantic.ValidationError):
        _generator(make_app()).generate(inputs)
    assert fake_gemini.calls == 0


def test_defaults_and_the_inputs_each_step_is_asked_with(make_app, fake_gemini):
    lesson = _generator(make_app(), max_parallel=1).generate({"topic": "Food"})
    assert lesson["level"] == "B1" and len(lesson["sections"]) == 4  # the contract's default
    asked = [json.loads(r["body"]["contents"][-1]["parts"][0]["text"].split("INPUT: ", 1)[1])
             for r in fake_gemini.requests()]
    assert asked[0] == {"topic": "Food", "level": "B1", "sections": 4, "language": "en-US"}
    titles = [section["title"] for section in lesson["sections"]]
    common = {"topic": "Food", "level": "B1", "language": "en-US", "lesson": lesson["title"], "section": titles[0]}
    assert asked[1] == {**common, "outline": titles} and asked[2] == {**common, "exercises": 4}
