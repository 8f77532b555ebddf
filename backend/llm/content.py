"""Lesson content: subtopics and explanations, with their checks and honest defaults.

Subtopics:

| field                    | missing or unusable                  | checks                                      |
| ------------------------ | ------------------------------------ | ------------------------------------------- |
| subtopics                | essential: none usable, unusable     | each needs a title (a bare string is one);  |
|                          |                                      | repeated titles are dropped                 |
| subtopics[].description  | ""                                   | a string (a list of strings joined)         |
| topic                    | always the requested one (not partial) | -                                         |

Fewer subtopics than requested marks the answer partial. More are cut to the requested count without
marking it partial: every subtopic returned is the model's own, complete and checked, and the request
asked for exactly that many.

Explanation:

| field                    | missing or unusable                  | checks                                      |
| ------------------------ | ------------------------------------ | ------------------------------------------- |
| explanation              | essential: without it, unusable      | a string (a list of paragraphs joined)      |
| title                    | the requested subtopic's name        | a string                                    |
| key_points, examples     | []                                   | non-empty strings; one string becomes a     |
|                          |                                      | list of one                                 |
"""
from __future__ import annotations

from typing import Any, Mapping

from backend.llm.recover import (
    MISSING,
    Notes,
    default,
    objects,
    pick,
    require,
    text,
    text_list,
    titled_item,
    unwrap,
)
from backend.schemas.answers import SubtopicList, TopicExplanation

SUBTOPICS_ALIASES = ("sub_topics", "topics", "items", "lessons", "subtopic_list", "sections")
SUBTOPIC_ALIASES = {"title": ("name", "subtopic", "heading", "topic"),
                    "description": ("summary", "desc", "details", "explanation", "overview")}
EXPLANATION_ALIASES = {
    "title": ("heading", "name", "subtopic"),
    "explanation": ("content", "text", "body", "description", "explanation_text"),
    "key_points": ("points", "main_points", "key_ideas", "takeaways", "keypoints"),
    "examples": ("example_sentences", "example", "sample_sentences"),
}
_SUBTOPICS_KNOWN = {"subtopics", *SUBTOPICS_ALIASES}
_EXPLANATION_KNOWN = {*EXPLANATION_ALIASES, *(a for names in EXPLANATION_ALIASES.values() for a in names)}


def recover_subtopics(data: Any, context: Mapping[str, Any], notes: Notes) -> SubtopicList:
    """Build a SubtopicList of at most ``count`` checked subtopics; Unusable when none is usable."""
    if isinstance(data, list):
        notes.note("unwrapped", "$")
        data = {"subtopics": data}
    obj = unwrap(data, _SUBTOPICS_KNOWN, notes)
    raw = pick(obj, "subtopics", SUBTOPICS_ALIASES, notes, "subtopics") if isinstance(obj, dict) else MISSING
    subtopics, seen = [], set()
    for index, item in objects(raw, notes, "subtopics"):
        path, item_notes = f"subtopics[{index}]", Notes()
        subtopic = titled_item(item, SUBTOPIC_ALIASES, item_notes, path)
        if subtopic is None or subtopic["title"].strip().casefold() in seen:
            notes.note("dropped", path)
            continue
        notes.absorb(item_notes)
        seen.add(subtopic["title"].strip().casefold())
        subtopics.append(subtopic)
    require(subtopics, "subtopics (a list of objects with a title and a description)")
    count = int(context.get("count") or len(subtopics))
    if len(subtopics) < count:
        notes.note("incomplete", "subtopics")
    return SubtopicList(topic=str(context.get("topic", "")), subtopics=subtopics[:count])


def recover_explanation(data: Any, context: Mapping[str, Any], notes: Notes) -> TopicExplanation:
    """Build a TopicExplanation; Unusable without the explanation text itself."""
    obj = unwrap(data, _EXPLANATION_KNOWN, notes)
    if not isinstance(obj, dict):
        return require(MISSING, "explanation object")
    got = {name: pick(obj, name, aliases, notes, name) for name, aliases in EXPLANATION_ALIASES.items()}
    body = text(got["explanation"], notes, "explanation", joiner="\n\n")
    require("" if body is MISSING else body.strip(), "explanation text")
    title = text(got["title"], notes, "title")
    if title is not MISSING and not title.strip():
        title = MISSING
    return TopicExplanation(
        title=default(title, str(context.get("subtopic", "")), notes, "title"),
        explanation=body,
        key_points=default(text_list(got["key_points"], notes, "key_points"), [], notes, "key_points"),
        examples=default(text_list(got["examples"], notes, "examples"), [], notes, "examples"),
    )
