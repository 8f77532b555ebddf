"""Lesson answers: a plan, a section's content and its exercises, with their checks and honest defaults.

Plan (context: the requested ``topic`` and number of ``sections``):

| field      | missing or unusable                     | checks                                             |
| ---------- | --------------------------------------- | -------------------------------------------------- |
| title      | the requested topic                     | a non-blank string                                 |
| sections   | essential: none usable, unusable        | each a non-blank title (a string, or an object     |
|            |                                         | with a title); repeated titles are dropped         |

A bare list is the list of sections. Fewer sections than requested marks the plan partial; more are cut to the
requested number without marking it partial (every one kept is the model's own, complete and checked).

Section content: the rules of an explanation (backend.llm.content), the requested ``section`` as its default
title. The lesson shows the plan's title for the section whatever the model echoes.

Exercises (context: ``exercises``, the number asked for):

| field                | missing or unusable                 | checks                                             |
| -------------------- | ----------------------------------- | -------------------------------------------------- |
| exercises            | essential: none usable, unusable    | a bare list is the list; repeated questions are    |
|                      |                                     | dropped                                            |
| exercises[].question | the exercise is dropped             | a non-blank string                                 |
| exercises[].options  | the exercise is dropped             | at least two distinct non-blank strings (repeats   |
|                      |                                     | dropped; an object's values, {"A": ..., "B": ...}) |
| exercises[].answer   | the exercise is dropped             | one of the options; the same text in another case  |
|                      |                                     | or spacing, or an option's letter ("B", "b)") when |
|                      |                                     | no option is that letter, is that option           |

An exercise whose answer is not among its options is dropped (a learner must never be marked wrong for the
right answer). Fewer than EXERCISES_MIN kept marks the answer partial; more than EXERCISES_MAX are cut without
marking it partial.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from backend.llm.content import recover_explanation
from backend.llm.parse import Operation
from backend.llm.recover import (
    MISSING,
    Notes,
    default,
    lone_item,
    normal_key,
    numbered,
    objects,
    pick,
    require,
    text,
    text_list,
    unwrap,
)
from backend.schemas.lessons import EXERCISES_MAX, EXERCISES_MIN, Exercise, ExerciseSet, LessonPlan, SectionContent

PLAN_ALIASES = {"title": ("lesson_title", "name", "heading", "lesson"),
                "sections": ("section_titles", "outline", "parts", "chapters", "subtopics", "titles", "units")}
SECTION_TITLE_KEYS = ("title", "name", "heading", "section", "section_title")
EXERCISES_ALIASES = ("questions", "items", "quiz", "exercise_list", "tasks")
EXERCISE_ALIASES = {"question": ("prompt", "q", "text", "question_text", "stem"),
                    "options": ("choices", "answers", "alternatives", "option_list"),
                    "answer": ("correct", "correct_answer", "solution", "right_answer", "correct_option", "key")}
_PLAN_KNOWN = {*PLAN_ALIASES, *(a for names in PLAN_ALIASES.values() for a in names)}
_EXERCISES_KNOWN = {"exercises", *EXERCISES_ALIASES}
_LETTER = re.compile(r"^\s*\(?([A-Fa-f])[).:]?\s*$")


def recover_plan(data: Any, context: Mapping[str, Any], notes: Notes) -> LessonPlan:
    """Build a LessonPlan of at most ``sections`` distinct titles; Unusable when none is usable."""
    if isinstance(data, list) and not (len(data) == 1 and isinstance(data[0], dict)):
        notes.note("unwrapped", "$")
        data = {"sections": data}
    obj = unwrap(lone_item(data, notes, "$", "unwrapped"), _PLAN_KNOWN, notes)
    if not isinstance(obj, dict):
        return require(MISSING, "lesson plan object")
    got = {name: pick(obj, name, aliases, notes, name) for name, aliases in PLAN_ALIASES.items()}
    titles, seen = [], set()
    for index, item in objects(got["sections"], notes, "sections"):
        title = _section_title(item, notes, f"sections[{index}]")
        if title is None or title.strip().casefold() in seen:
            notes.note("dropped", f"sections[{index}]")
            continue
        seen.add(title.strip().casefold())
        titles.append(title.strip())
    require(titles, "section titles")
    count = int(context.get("sections") or len(titles))
    if len(titles) < count:
        notes.note("incomplete", "sections")
    title = text(got["title"], notes, "title")
    if title is not MISSING and not title.strip():
        title = MISSING
    topic = str(context.get("topic", "")).strip()
    return LessonPlan(title=default(title, topic, notes, "title"), sections=titles[:count])


def _section_title(item: Any, notes: Notes, path: str) -> str | None:
    """A section's title: the string itself, or an object's title; None when there is none."""
    if isinstance(item, dict):
        by_key = {normal_key(k): v for k, v in item.items()}
        found = next((by_key[k] for k in SECTION_TITLE_KEYS if k in by_key), MISSING)
        notes.note("coerced", path)
        item = text(found, notes, path)
    elif not isinstance(item, str):
        item = text(item, notes, path)
    return item if isinstance(item, str) and item.strip() else None


def recover_section(data: Any, context: Mapping[str, Any], notes: Notes) -> SectionContent:
    """Build a SectionContent by the explanation's rules; Unusable without the explanation text."""
    explained = recover_explanation(data, {"subtopic": context.get("section", "")}, notes)
    return SectionContent.model_validate(explained.model_dump())


def recover_exercises(data: Any, context: Mapping[str, Any], notes: Notes) -> ExerciseSet:
    """Build an ExerciseSet of at most EXERCISES_MAX checked exercises; Unusable when none is usable."""
    if isinstance(data, list) and not (len(data) == 1 and isinstance(data[0], dict)
                                       and {normal_key(k) for k in data[0]} & _EXERCISES_KNOWN):
        notes.note("unwrapped", "$")
        data = {"exercises": data}
    obj = unwrap(lone_item(data, notes, "$", "unwrapped"), _EXERCISES_KNOWN, notes)
    raw = pick(obj, "exercises", EXERCISES_ALIASES, notes, "exercises") if isinstance(obj, dict) else MISSING
    exercises: list[Exercise] = []
    seen = set()
    for index, item in objects(raw, notes, "exercises"):
        path, item_notes = f"exercises[{index}]", Notes()
        exercise = _exercise(item, item_notes, path)
        if exercise is None or exercise.question.strip().casefold() in seen:
            notes.note("dropped", path)
            continue
        notes.absorb(item_notes)
        seen.add(exercise.question.strip().casefold())
        exercises.append(exercise)
    require(exercises, "exercises (each a question, two or more options, and the answer among them)")
    if len(exercises) < min(EXERCISES_MIN, int(context.get("exercises") or EXERCISES_MIN)):
        notes.note("incomplete", "exercises")
    return ExerciseSet(exercises=exercises[:EXERCISES_MAX])


def _exercise(item: Any, notes: Notes, path: str) -> Exercise | None:
    """One checked exercise, or None when it has no question, fewer than two options or an answer not among them."""
    if not isinstance(item, dict):
        return None
    got = {name: pick(item, name, aliases, notes, f"{path}.{name}") for name, aliases in EXERCISE_ALIASES.items()}
    question = text(got["question"], notes, f"{path}.question")
    if question is MISSING or not question.strip():
        return None
    options = text_list(got["options"], notes, f"{path}.options")
    if options is MISSING:
        return None
    distinct: list[str] = []
    for index, option in enumerate(options):
        if option.strip().casefold() in {o.casefold() for o in distinct}:
            notes.note("dropped", f"{path}.options[{index}]")
            continue
        distinct.append(option.strip())
    if len(distinct) < 2:
        return None
    answer = _answer(got["answer"], distinct, notes, f"{path}.answer")
    if answer is None:
        return None
    return Exercise(question=question.strip(), options=distinct, answer=answer)


def _answer(value: Any, options: list[str], notes: Notes, path: str) -> str | None:
    """The option the answer names: itself, the same text in another case or spacing, or its letter."""
    if isinstance(value, dict):
        value = numbered(value) or list(value.values())
    answer = text(value, notes, path)
    if answer is MISSING:
        return None
    if answer in options:
        return answer
    wanted = " ".join(answer.split()).casefold()
    for option in options:
        if " ".join(option.split()).casefold() == wanted:
            if option != answer.strip():
                notes.note("coerced", path)
            return option
    letter = _LETTER.match(answer)
    if letter and not any(len(option) == 1 for option in options):
        index = ord(letter.group(1).upper()) - ord("A")
        if index < len(options):
            notes.note("coerced", path)
            return options[index]
    return None


LESSON_PLAN = Operation("lesson_plan", LessonPlan, recover_plan)
SECTION_CONTENT = Operation("lesson_section", SectionContent, recover_section)
EXERCISES = Operation("lesson_exercises", ExerciseSet, recover_exercises)
