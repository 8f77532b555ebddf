"""Writing analysis: what a usable answer must hold, what is checked, and the honest defaults for the rest.

| field                      | missing or unusable            | checks                                            |
| -------------------------- | ------------------------------ | ------------------------------------------------- |
| cefr_assessment            | null: a level is never         | needs a level; a bare level string is one, and a  |
|                            | invented                       | flat ``cefr_level`` key too; a one-item list is   |
|                            |                                | its item                                          |
| cefr_assessment.level      | the whole assessment is null   | A1..C2, read only when unambiguous (below)        |
| cefr_assessment.confidence | 0.0: no confidence is claimed  | a number, "0.8" or "80%"; outside 0..1 dropped    |
| cefr_assessment.rationale  | ""                             | a string (a list or object of strings joined)     |
| errors                     | []                             | each needs a known type, words found in the       |
|                            |                                | learner's text and a correction that differs;     |
|                            |                                | others are dropped; one object is a list of one,  |
|                            |                                | an object with numbered keys a list (below)       |
| errors[].explanation       | ""                             | a string                                          |
| feedback                   | "", never invented praise      | a string (a list or object of strings joined)     |
| strengths,                 | []                             | non-empty strings; one string becomes a list, an  |
| improvement_areas          |                                | object the list of its values                     |
| recommended_tasks          | []                             | each needs a title (a bare string is one);        |
|                            |                                | a missing description is ""; numbered keys as for |
|                            |                                | errors                                            |

The whole answer sent as a one-item list ``[{...}]`` is that item. An object whose keys only number its items
({"1": {...}, "2": {...}}, {"error_1": ...}, {"Task 1": ...}: see ``recover.numbered``) where a list is asked
for is the list of its items in the order of their numbers.

A usable analysis holds at least one of: a CEFR level, feedback, an error that passed the checks. An answer
with none of them (``{}``, a refusal, only strengths) is unusable: it is asked for again once, then 502.

A CEFR level is read only where the reading is unambiguous:
- exactly one level code in the string, in any case and with anything around it: "b2", " B2 ", "B2+", "B2-",
  "B2.1", "Level B2", "Upper-Intermediate (B2)" -> B2 (a plus level such as B2+ lies within B2 in the CEFR);
- one item list holding such a string: ["B2"] -> B2;
- the Council of Europe's own name of exactly one level: Breakthrough A1, Waystage A2, Threshold B1, Vantage B2,
  Effective Operational Proficiency C1, Mastery C2.
Everything else gives a null assessment: two codes ("B1/B2", "A2-B1"), a code off the scale ("B3", "C3",
"Pre-A1"), and course-book names, which publishers map to different levels ("beginner", "elementary",
"intermediate", "upper-intermediate", "advanced", "proficiency"), a number, an object, a boolean.

Any default, drop, coercion or renamed field marks the answer partial.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from backend.llm.extract import Unusable
from backend.llm.recover import (
    MISSING,
    Notes,
    default,
    lone_item,
    number,
    objects,
    pick,
    require,
    text,
    text_list,
    titled_item,
    unwrap,
)
from backend.schemas.responses import AnalysisAnswer

LEVELS = ("A1", "A2", "B1", "B2", "C1", "C2")
# The CEFR's own names, one level each; course-book names ("intermediate") span levels and are not read.
LEVEL_NAMES = {"breakthrough": "A1", "waystage": "A2", "threshold": "B1", "vantage": "B2",
               "effective operational proficiency": "C1", "mastery": "C2"}
# A level code; "pre" before it ("Pre-A1") names a level below the scale, which is no level of ours.
_LEVEL_TOKEN = re.compile(r"(?<![A-Za-z0-9])(pre[\s_-]?)?([ABCabc][12])(?![0-9])", re.I)
ERROR_TYPES = {
    "grammar": ("grammar", "grammatical", "tense", "verb tense", "agreement", "subject verb agreement",
                "word order", "article", "articles", "preposition", "prepositions", "syntax"),
    "vocabulary": ("vocabulary", "word choice", "lexical", "lexis", "collocation", "wrong word", "usage"),
    "spelling": ("spelling", "orthography", "typo", "capitalization", "capitalisation", "capital letter"),
    "punctuation": ("punctuation",),
    "style": ("style", "stylistic", "register", "formatting", "spacing", "tone"),
}
_TYPE_OF = {name: kind for kind, names in ERROR_TYPES.items() for name in names}
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


ALIASES = {
    "errors": ("mistakes", "issues", "corrections", "error_list", "grammar_errors"),
    "feedback": ("overall_feedback", "general_feedback", "summary", "comment", "comments"),
    "strengths": ("strong_points", "positives"),
    "improvement_areas": ("areas_for_improvement", "areas_to_improve", "areas_of_improvement", "weaknesses",
                          "improvements"),
    "recommended_tasks": ("tasks", "recommendations", "exercises", "recommended_exercises", "suggested_tasks"),
    "cefr_assessment": ("cefr", "level_assessment", "assessment", "cefr_level_assessment"),
}
ERROR_ALIASES = {
    "type": ("error_type", "category", "kind"),
    "text": ("original", "original_text", "error", "incorrect", "wrong", "mistake"),
    "correction": ("corrected", "corrected_text", "correct", "fix", "suggestion"),
    "explanation": ("reason", "why", "note", "rule"),
}
TASK_ALIASES = {"title": ("name", "task"), "description": ("details", "desc", "instructions")}
CEFR_ALIASES = {"level": ("cefr_level", "cefr"), "confidence": ("certainty", "confidence_score"),
                "rationale": ("reason", "reasoning", "justification", "explanation")}
# A top-level "level" is left alone: it may be the learner's declared level echoed back, not an assessment.
KNOWN = {*ALIASES, *(a for names in ALIASES.values() for a in names), "cefr_level"}


def recover_analysis(data: Any, context: Mapping[str, Any], notes: Notes) -> AnalysisAnswer:
    """Build the analysis from whatever the model sent, noting each change; Unusable when nothing in it helps."""
    obj = unwrap(lone_item(data, notes, "$", "unwrapped"), KNOWN, notes,
                 object_fields={"cefr_assessment", *ALIASES["cefr_assessment"]})
    if not isinstance(obj, dict):
        return require(MISSING, "analysis object")
    field = {name: pick(obj, name, aliases, notes, name) for name, aliases in ALIASES.items()}
    cefr = _cefr(field["cefr_assessment"], obj, notes)
    errors = _errors(field["errors"], str(context.get("text", "")), notes)
    feedback = default(text(field["feedback"], notes, "feedback", joiner=" "), "", notes, "feedback")
    if cefr is None and not errors and not feedback.strip():
        raise Unusable("the answer has no CEFR level (cefr_assessment.level, one of A1..C2), no feedback "
                       "and no error found in the learner's text")
    return AnalysisAnswer.model_validate({
        "errors": errors,
        "feedback": feedback,
        "strengths": default(text_list(field["strengths"], notes, "strengths"), [], notes, "strengths"),
        "improvement_areas": default(text_list(field["improvement_areas"], notes, "improvement_areas"), [], notes,
                                     "improvement_areas"),
        "recommended_tasks": _tasks(field["recommended_tasks"], notes),
        "cefr_assessment": cefr,
    })


def _cefr(value: Any, obj: Mapping[str, Any], notes: Notes) -> dict[str, Any] | None:
    """The assessment, or None (noted) without a trustworthy level; a bare level string or a flat ``cefr_level``
    key also count."""
    value = lone_item(value, notes, "cefr_assessment", "coerced")
    if value is MISSING:
        flat = pick(obj, "cefr_level", (), notes, "cefr_assessment")
        value = {"level": flat} if flat is not MISSING else MISSING
        if value is not MISSING:
            notes.note("renamed", "cefr_assessment")
    elif isinstance(value, (str, list)):
        notes.note("coerced", "cefr_assessment")
        value = {"level": value}
    if value is MISSING or value is None:
        notes.note("defaults", "cefr_assessment")
        return None
    # Read into notes of its own: an assessment dropped for want of a level is noted as dropped, nothing more.
    own = Notes()
    got = ({name: pick(value, name, aliases, own, f"cefr_assessment.{name}")
            for name, aliases in CEFR_ALIASES.items()} if isinstance(value, dict) else None)
    level = MISSING if got is None else level_of(got["level"], own)
    if got is None or level is MISSING:
        notes.note("dropped", "cefr_assessment")
        return None
    notes.absorb(own)
    confidence = number(got["confidence"], notes, "cefr_assessment.confidence")
    if confidence is not MISSING and not 0.0 <= confidence <= 1.0:
        # 72 may mean 72 % or something else entirely: claim nothing rather than guess (or clamp to certainty).
        notes.note("dropped", "cefr_assessment.confidence")
        confidence = MISSING
    confidence = default(confidence, 0.0, notes, "cefr_assessment.confidence")
    rationale = default(text(got["rationale"], notes, "cefr_assessment.rationale", joiner=" "), "", notes,
                        "cefr_assessment.rationale")
    return {"level": level, "confidence": confidence, "rationale": rationale}


def level_of(value: Any, notes: Notes) -> Any:
    """A CEFR level read from a string when unambiguous (see the module's docstring), else MISSING."""
    path = "cefr_assessment.level"
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        notes.note("coerced", path)
        value = value[0]
    if not isinstance(value, str):
        if value is not MISSING and value is not None:
            notes.note("dropped", path)
        return MISSING
    found = _LEVEL_TOKEN.findall(value)
    codes = {code.upper() for _, code in found}
    if any(pre for pre, _ in found):
        level = None
    elif codes:
        level = codes.pop() if len(codes) == 1 else None
    else:
        level = LEVEL_NAMES.get(_label(value))
    if level is None:
        notes.note("dropped", path)
        return MISSING
    if level != value:
        notes.note("coerced", path)
    return level


def _errors(value: Any, learner_text: str, notes: Notes) -> list[dict[str, str]]:
    """Errors that name a known type, quote the learner's words and correct them; others are dropped."""
    if value is MISSING:
        notes.note("defaults", "errors")
        return []
    haystack = comparable(learner_text)
    kept = []
    for index, item in objects(value, notes, "errors"):
        path, item_notes = f"errors[{index}]", Notes()
        error = _error(item, item_notes, path)
        if error is None or not quotes_and_changes(error, haystack):
            notes.note("dropped", path)
            continue
        notes.absorb(item_notes)
        kept.append(error)
    return kept


def quotes_and_changes(fix: Mapping[str, str], haystack: str) -> bool:
    """Whether an error (or a correction) quotes the learner's own words (``haystack``, made comparable) and
    changes them: a "correction" that changes nothing is no correction."""
    return (bool(fix["text"].strip()) and comparable(fix["text"]) in haystack
            and " ".join(fix["correction"].split()) != " ".join(fix["text"].split()))


def _error(item: Any, notes: Notes, path: str) -> dict[str, str] | None:
    """One error with its fields read and checked, or None when it cannot stand."""
    if not isinstance(item, dict):
        return None
    got = {name: pick(item, name, aliases, notes, f"{path}.{name}") for name, aliases in ERROR_ALIASES.items()}
    kind = error_type(got["type"], notes, f"{path}.type")
    wrong = text(got["text"], notes, f"{path}.text")
    right = text(got["correction"], notes, f"{path}.correction")
    if kind is MISSING or wrong is MISSING or right is MISSING:
        return None
    explanation = default(text(got["explanation"], notes, f"{path}.explanation", joiner=" "), "", notes,
                          f"{path}.explanation")
    return {"type": kind, "text": wrong, "correction": right, "explanation": explanation}


def error_type(value: Any, notes: Notes, path: str) -> Any:
    """One of the contract's error types; spellings like "Grammar" or "word choice" are mapped."""
    if not isinstance(value, str):
        return MISSING
    name = re.sub(r" (error|errors|mistake|mistakes|issue)$", "", _label(value))
    kind = _TYPE_OF.get(name)
    if kind is None:
        notes.note("dropped", path)
        return MISSING
    if kind != value:
        notes.note("coerced", path)
    return kind


def _tasks(value: Any, notes: Notes) -> list[dict[str, str]]:
    """Recommended tasks with a title; a bare string is taken as the title."""
    if value is MISSING:
        notes.note("defaults", "recommended_tasks")
        return []
    tasks = []
    for index, item in objects(value, notes, "recommended_tasks"):
        path, item_notes = f"recommended_tasks[{index}]", Notes()
        task = titled_item(item, TASK_ALIASES, item_notes, path)
        if task is None:
            notes.note("dropped", path)
            continue
        notes.absorb(item_notes)
        tasks.append(task)
    return tasks


def _label(value: str) -> str:
    """A label as the model may spell it ("Word_Choice", "upper-intermediate"), in one lower-case form."""
    return re.sub(r"[\s_\-]+", " ", value).strip().lower()


def comparable(value: str) -> str:
    """Case, curly quotes and runs of spaces do not matter when finding quoted words in the text."""
    return " ".join(value.translate(_QUOTES).split()).casefold()
