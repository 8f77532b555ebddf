"""Lesson content: subtopics and explanations, with their checks and honest defaults.

Subtopics:

| field                    | missing or unusable                  | checks                                      |
| ------------------------ | ------------------------------------ | ------------------------------------------- |
| subtopics                | essential: none usable, unusable     | each needs a title (a bare string is one);  |
|                          |                                      | repeated titles are dropped; one object is  |
|                          |                                      | a list of one; an object of title ->        |
|                          |                                      | description a list of subtopics; an object  |
|                          |                                      | with numbered keys the list of its items    |
| subtopics[].description  | ""                                   | a string (a list or object of strings       |
|                          |                                      | joined with spaces)                         |
| topic                    | always the requested one (not partial) | -                                         |

A bare list is the list of subtopics, except a one-item list whose item is the answer itself (it holds the
``subtopics`` list, or has no title): ``[{"topic": ..., "subtopics": [...]}]`` is that answer. Numbered keys
are ``{"1": ..., "2": ...}`` or one word followed by numbers (``{"Subtopic 1": ...}``; see ``recover.numbered``),
taken in the order of their numbers.

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
it is taken as that field when the answer lacks it at the top. The whole answer sent as a bare list of strings
is the explanation text, joined the same way (so the title is the requested subtopic's name, and key points and
examples are empty); sent as a one-item list ``[{...}]`` it is that item. Any of this marks the answer partial.
"""
from __future__ import annotations

from typing import Any, Mapping

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
    if isinstance(data, list) and not _is_answer(data):
        notes.note("unwrapped", "$")
        data = {"subtopics": data}
    data = lone_item(data, notes, "$", "unwrapped")
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
    return SubtopicList.model_validate({"topic": str(context.get("topic", "")), "subtopics": subtopics[:count]})


def _is_answer(data: list[Any]) -> bool:
    """Whether a bare list is a one-item list holding the whole answer rather than a list of subtopics."""
    if len(data) != 1 or not isinstance(data[0], dict):
        return False
    keys = {normal_key(k) for k in data[0]}
    return bool(keys & _SUBTOPICS_KNOWN) or not keys & _TITLE_KEYS


def _from_mapping(raw: dict[str, Any], notes: Notes) -> list[Any]:
    """Subtopics sent as an object: numbered items {"1": ..., "2": ...}, or {"Title": "description"} pairs."""
    notes.note("coerced", "subtopics")
    items = numbered(raw)
    if items is not None:
        return items
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
    if isinstance(data, list) and data and all(isinstance(item, str) for item in data):
        notes.note("unwrapped", "$")  # the paragraphs alone: the explanation field, without the others
        data = {"explanation": data}
    obj = unwrap(lone_item(data, notes, "$", "unwrapped"), _EXPLANATION_KNOWN, notes)
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
