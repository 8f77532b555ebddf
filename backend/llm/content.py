"""Lesson content: subtopics and explanations, with their checks and honest defaults.

Subtopics:

| field                    | missing or unusable                  | checks                                      |
| ------------------------ | ------------------------------------ | ------------------------------------------- |
| subtopics                | essential: none usable, unusable     | each needs a title (a bare string is one);  |
|                          |                                      | repeated titles are dropped; one object is  |
|                          |                                      | a list of one; an object of title ->        |
|                          |                                      | description a list of subtopics             |
| subtopics[].description  | ""                                   | a string (a list or object of strings       |
|                          |                                      | joined with spaces)                         |
| topic                    | always the requested one (not partial) | -                                         |

Fewer subtopics than requested marks the answer partial. More are cut to the requested count without
marking it partial: every subtopic returned is the model's own, complete and checked, and the request
asked for exactly that many.

Explanation:

| field                    | missing or unusable                  | checks                                      |
| ------------------------ | ------------------------------------ | ------------------------------------------- |
| explanation              | essential: without any text in it,   | a string; a list or an object of strings is |
|                          | unusable                             | joined (below)                              |
| title                    | the requested subtopic's name        | a string                                    |
| key_points, examples     | []                                   | non-empty strings; one string becomes a     |
|                          |                                      | list of one, an object its values           |

An explanation given as a list or an object ({"intro": "...", "details": "..."}) is joined into one text: its
strings in order (an object's values; its keys are labels and are left out), one paragraph each, separated by
a blank line; strings in nested lists and objects count too, up to three levels down; numbers, booleans and
nulls inside are dropped. Inside such an object, a ``title``, ``key_points`` or ``examples`` is no paragraph:
it is taken as that field when the answer lacks it at the top. Any of this marks the answer partial.
"""
from __future__ import annotations

from typing import Any, Mapping

from backend.llm.recover import (
    MISSING,
    Notes,
    default,
    normal_key,
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
# The other fields' names, which an explanation given as an object may hold besides its paragraphs.
_BESIDE_TEXT = {normal_key(name): field for field in ("title", "key_points", "examples")
                for name in (field, *EXPLANATION_ALIASES[field])}
_TITLE_KEYS = {"title", *SUBTOPIC_ALIASES["title"]}


def recover_subtopics(data: Any, context: Mapping[str, Any], notes: Notes) -> SubtopicList:
    """Build a SubtopicList of at most ``count`` checked subtopics; Unusable when none is usable."""
    if isinstance(data, list):
        notes.note("unwrapped", "$")
        data = {"subtopics": data}
    obj = unwrap(data, _SUBTOPICS_KNOWN, notes)
    raw = pick(obj, "subtopics", SUBTOPICS_ALIASES, notes, "subtopics") if isinstance(obj, dict) else MISSING
    if isinstance(raw, dict) and raw and not _TITLE_KEYS & {normal_key(k) for k in raw}:
        raw = _from_mapping(raw, notes)
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


def _from_mapping(raw: dict[str, Any], notes: Notes) -> list[Any]:
    """Subtopics sent as an object: {"Title": "description"} pairs, or numbered items {"1": ..., "2": ...}."""
    notes.note("coerced", "subtopics")
    if all(str(key).strip().isdigit() for key in raw):
        return list(raw.values())
    items = []
    for key, value in raw.items():
        if not isinstance(value, dict):
            items.append({"title": key, "description": value})
        elif _TITLE_KEYS & {normal_key(k) for k in value}:
            items.append(value)  # an item with a title of its own: the key is only a label
        else:
            items.append({**value, "title": key})
    return items


def recover_explanation(data: Any, context: Mapping[str, Any], notes: Notes) -> TopicExplanation:
    """Build a TopicExplanation; Unusable without the explanation text itself."""
    obj = unwrap(data, _EXPLANATION_KNOWN, notes)
    if not isinstance(obj, dict):
        return require(MISSING, "explanation object")
    got = {name: pick(obj, name, aliases, notes, name) for name, aliases in EXPLANATION_ALIASES.items()}
    if isinstance(got["explanation"], dict):
        got = _lift(got, notes)
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


def _lift(got: dict[str, Any], notes: Notes) -> dict[str, Any]:
    """Take a title, key points or examples out of an explanation given as an object (they are no paragraphs),
    as those fields when the answer lacks them at the top."""
    paragraphs = {}
    got = dict(got)
    for key, value in got["explanation"].items():
        field = _BESIDE_TEXT.get(normal_key(key))
        if field is None:
            paragraphs[key] = value
            continue
        if got[field] is MISSING:
            notes.note("unwrapped", field)
            got[field] = value
    got["explanation"] = paragraphs
    return got
