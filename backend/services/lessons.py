"""Lessons, generated in steps without any request, so a job can run them: a plan (the lesson's title and its
sections' titles), then for each section its content (explanation, key points, examples) and its exercises.

Every step is one StructuredTask asked through LanguageModel.ask (cache, breaker, retries, fallback provider),
and its inputs are derived only from the lesson's inputs and the plan (no time, no random id): a run after a crash
finds the finished steps in the cache and pays only for the others. A section's content and its exercises do not
depend on each other, so both run in parallel with other sections' steps, at most ``max_parallel`` at a time.

The caller's thread does the bookkeeping: it checks ``should_stop()`` before starting every step (then raises
LessonCancelled and starts nothing more; steps already running finish in the background and fill the cache) and
calls ``on_step(done, total)`` after every finished step, failed ones included; total is 1 + 2 x the plan's
sections (the requested number, unless the plan came back with fewer).

When a step fails after the policy's retries and fallback (a ProviderError):
- the plan: the lesson fails with that error (there is nothing to build sections on);
- a section's content: that section is left out of the lesson, and the lesson is ``partial``;
- a section's exercises: the section is kept with no exercises, and the lesson is ``partial``;
- every section's content: the lesson fails with the error of the first section, in the plan's order.
``partial`` is also true when the plan came back short or any answer used was partial (repaired or completed).
Any other exception is a defect and propagates as it is.
"""
from __future__ import annotations

import contextvars
import logging
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from backend.errors import ProviderError, ProviderNotConfigured
from backend.llm.lessons import EXERCISES, LESSON_PLAN, SECTION_CONTENT
from backend.schemas.lessons import DEFAULT_LEVEL, EXERCISES_ASKED, LessonInputs
from backend.services import lesson_prompts as prompts
from backend.services.language_model import LanguageModel, Route, StructuredTask

logger = logging.getLogger(__name__)

PLAN = StructuredTask("lesson_plan", "v1", LESSON_PLAN, prompts.PLAN_SYSTEM, prompts.PLAN_TASK)
SECTION = StructuredTask("lesson_section", "v1", SECTION_CONTENT, prompts.SECTION_SYSTEM, prompts.SECTION_TASK)
EXERCISE_SET = StructuredTask("lesson_exercises", "v1", EXERCISES, prompts.EXERCISES_SYSTEM, prompts.EXERCISES_TASK)


class LessonCancelled(Exception):
    """should_stop() said so before a step: no further upstream call was started."""


def _ignore(done: int, total: int) -> None:
    """The default on_step: no progress is reported."""


def _never() -> bool:
    """The default should_stop: run to the end."""
    return False


@dataclass(frozen=True)
class _Step:
    """One section's step: its content ("section") or its exercises ("exercises")."""

    section: int
    kind: str
    task: StructuredTask
    inputs: dict[str, Any]
    routes: Sequence[Route]


class LessonGenerator:
    """Generates a lesson (contract section 10's shape) from its inputs, step by step."""

    def __init__(self, model: LanguageModel, plan_routes: Sequence[Route], section_routes: Sequence[Route],
                 exercise_routes: Sequence[Route], *, max_parallel: int = 3):
        if max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        self._model = model
        self._plan_routes = plan_routes
        self._section_routes = section_routes
        self._exercise_routes = exercise_routes
        self._max_parallel = max_parallel

    def check_configured(self) -> None:
        """PROVIDER_NOT_CONFIGURED now, rather than a job accepted only to fail in its worker."""
        if not self._plan_routes:
            raise ProviderNotConfigured(self._model.not_configured)

    def generate(self, inputs: dict[str, Any], *, on_step: Callable[[int, int], None] = _ignore,
                 should_stop: Callable[[], bool] = _never) -> dict[str, Any]:
        """The lesson for ``inputs`` ({topic, level?, sections?, language?}); LessonCancelled when stopped, the
        plan's ProviderError when it failed, the first section's when every section failed."""
        request = LessonInputs.model_validate(inputs)
        common = {"topic": request.topic, "level": request.level or DEFAULT_LEVEL, "language": request.language}
        if should_stop():
            raise LessonCancelled("cancelled before the plan")
        plan = self._model.ask(PLAN, {**common, "sections": request.sections}, self._plan_routes).value
        titles: list[str] = list(plan["sections"])
        total = 1 + 2 * len(titles)
        on_step(1, total)
        results, failures = self._run_steps(self._steps(common, plan["title"], titles), total, on_step, should_stop)
        sections = []
        for index, title in enumerate(titles):
            content = results.get((index, "section"))
            if content is None:
                continue
            exercises = results.get((index, "exercises"))
            sections.append({"title": title, "explanation": content["explanation"],
                             "key_points": content["key_points"], "examples": content["examples"],
                             "exercises": exercises["exercises"] if exercises is not None else []})
        if not sections:
            raise failures[(0, "section")]  # every section's content failed: report the first one's
        partial = (bool(plan["partial"]) or len(titles) < request.sections or bool(failures)
                   or any(result["partial"] for result in results.values()))
        return {"topic": request.topic, "level": common["level"], "title": plan["title"], "sections": sections,
                "partial": partial}

    def _steps(self, common: dict[str, Any], lesson_title: str, titles: list[str]) -> list[_Step]:
        """Every section's two steps, in the plan's order; inputs only from the lesson's inputs and its plan."""
        steps = []
        for index, title in enumerate(titles):
            about = {**common, "lesson": lesson_title, "section": title}
            steps.append(_Step(index, "section", SECTION, {**about, "outline": titles}, self._section_routes))
            steps.append(_Step(index, "exercises", EXERCISE_SET, {**about, "exercises": EXERCISES_ASKED},
                               self._exercise_routes))
        return steps

    def _run_steps(self, steps: list[_Step], total: int, on_step: Callable[[int, int], None],
                   should_stop: Callable[[], bool]) -> tuple[dict[tuple[int, str], Any], dict[tuple[int, str], Any]]:
        """Run the steps, at most max_parallel at once: (answers, failures), each by (section, kind)."""
        pending = deque(steps)
        running: dict[Future, _Step] = {}
        results: dict[tuple[int, str], Any] = {}
        failures: dict[tuple[int, str], ProviderError] = {}
        done = total - len(steps)
        executor = ThreadPoolExecutor(max_workers=self._max_parallel, thread_name_prefix="lesson")
        try:
            while pending or running:
                while pending and len(running) < self._max_parallel:
                    if should_stop():
                        raise LessonCancelled(f"cancelled after {done} of {total} steps")
                    step = pending.popleft()
                    running[self._submit(executor, step)] = step
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    step = running.pop(future)
                    try:
                        results[(step.section, step.kind)] = future.result().value
                    except ProviderError as exc:
                        logger.warning("a lesson step failed", extra={"section": step.section, "step": step.kind,
                                                                      "error_type": type(exc).__name__})
                        failures[(step.section, step.kind)] = exc
                    done += 1
                    on_step(done, total)
        finally:
            # Steps still running (after a cancel or a defect) finish on their own: their answers fill the cache.
            executor.shutdown(wait=False, cancel_futures=True)
        return results, failures

    def _submit(self, executor: ThreadPoolExecutor, step: _Step) -> Future:
        """Ask for one step on the executor, with the caller's context (request id, job id in logs)."""
        return executor.submit(contextvars.copy_context().run, self._model.ask, step.task, step.inputs, step.routes)
