"""Partial recovery, the generic part: find fields under other names, coerce unambiguous types, note every change."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from backend.llm.extract import Unusable

MISSING: Any = object()
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_PERCENT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*%\s*$")
# A key that numbers an item: "1", "2." or one word and a number ("item1", "error_2", "Subtopic 3", "Task #4").
_NUMBERED_KEY = re.compile(r"^\s*([^\W\d_]*)[\s_#.-]*(\d{1,6})\.?\s*$")
# How deep prose is looked for in nested lists and objects: {"intro": ..., "details": {"a": [...]}} at most.
PROSE_DEPTH = 3


@dataclass
class Notes:
    """What recovery had to do: repair kinds (metric labels) and the fields concerned, in order."""

    kinds: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)

    def note(self, kind: str, path: str) -> None:
        """Record one change of kind ``kind`` at ``path``."""
        if kind not in self.kinds:
            self.kinds.append(kind)
        if path not in self.fields:
            self.fields.append(path)

    def absorb(self, other: Notes) -> None:
        """Take over the notes of an item that was kept (a dropped item is noted as dropped, nothing more)."""
        for kind in other.kinds:
            if kind not in self.kinds:
                self.kinds.append(kind)
        for path in other.fields:
            if path not in self.fields:
                self.fields.append(path)


def normal_key(key: Any) -> str:
    """'keyPoints', 'Key Points', 'key-points' -> 'key_points'."""
    text = _CAMEL.sub("_", str(key).strip())
    return re.sub(r"[\s\-]+", "_", text).lower()


def pick(obj: Mapping[str, Any], name: str, aliases: Iterable[str], notes: Notes, path: str) -> Any:
    """The value of field ``name``: under its own key, else a differently spelt or documented other name."""
    if name in obj:
        return obj[name]
    wanted = (name, *aliases)
    by_key = {normal_key(k): v for k, v in obj.items()}
    for candidate in wanted:
        if candidate in by_key:
            notes.note("renamed", path)
            return by_key[candidate]
    return MISSING


def unwrap(data: Any, known: set[str], notes: Notes, *, object_fields: frozenset[str] | set[str] = frozenset(),
           depth: int = 2) -> Any:
    """Step into wrappers: {"analysis": {...}} without our keys, or one of our keys holding the whole answer."""
    # ``object_fields`` hold objects of their own: a lone {"cefr_assessment": {...}} is an answer, not a wrapper.
    # A lone one of our keys wraps the answer only when the object inside holds our keys too: a lone
    # {"explanation": {"intro": ..., "details": ...}} is that field given as an object, not the whole answer.
    while depth and isinstance(data, dict):
        keys = {normal_key(k) for k in data}
        inner = [v for v in data.values() if isinstance(v, dict)]
        lone = len(data) == 1 and bool(inner) and not keys & object_fields
        wrapper = (not known & keys and len(inner) == 1) or (
            lone and (not known & keys or bool(known & {normal_key(k) for k in inner[0]})))
        if not wrapper:
            break
        notes.note("unwrapped", "$")
        data, depth = inner[0], depth - 1
    return data


def lone_item(value: Any, notes: Notes, path: str, kind: str) -> Any:
    """A one-item list where one object is expected is that object (noted as ``kind``); anything else as it is."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        notes.note(kind, path)
        return value[0]
    return value


def numbered(value: Any) -> list[Any] | None:
    """The items of an object whose keys only number them, in the order of their numbers; None for other values.

    Numbered keys are whole numbers ({"1": ..., "2": ...}), or one and the same word followed by numbers
    counted from 0 or 1 without a gap ({"item1": ..., "item2": ...}, {"Error 1": ...}): a lone "Covid19" is a name."""
    if not isinstance(value, dict) or not value:
        return None
    found = []
    for key, item in value.items():
        match = _NUMBERED_KEY.match(str(key))
        if match is None:
            return None
        found.append((match.group(1).casefold(), int(match.group(2)), item))
    words = {word for word, _, _ in found}
    numbers = sorted(number for _, number, _ in found)
    if len(words) != 1 or len(set(numbers)) != len(numbers):
        return None
    if words != {""} and (numbers[0] > 1 or numbers[-1] - numbers[0] != len(numbers) - 1):
        return None
    return [item for _, _, item in sorted(found, key=lambda found_item: found_item[1])]


def text(value: Any, notes: Notes, path: str, *, joiner: str | None = None) -> Any:
    """A string; a number or a one-string list becomes one; only prose (``joiner``) takes lists and objects."""
    if isinstance(value, str):
        return value
    if _finite_number(value):
        notes.note("coerced", path)
        return str(value)
    if joiner is not None and isinstance(value, (list, dict)):
        return prose(value, notes, path, joiner)
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        notes.note("coerced", path)
        return value[0].strip()
    if value is not MISSING and value is not None:
        notes.note("dropped", path)  # an object or a list where one short text was asked: no single honest reading
    return MISSING


def prose(value: list[Any] | dict[str, Any], notes: Notes, path: str, joiner: str) -> Any:
    """The strings of a list or an object (its values, in order; nested ones too) joined into one text."""
    # Keys are labels ("intro", "details"), not text: only values are kept. Numbers, booleans and nulls
    # inside are dropped, not printed: "1" as a paragraph is no part of an explanation.
    parts: list[str] = []
    skipped = _strings_in(value, parts, PROSE_DEPTH)
    if not parts:
        notes.note("dropped", path)
        return MISSING
    notes.note("coerced", path)
    if skipped:
        notes.note("dropped", path)
    return joiner.join(parts)


def _strings_in(value: Any, found: list[str], depth: int) -> bool:
    """Append the non-blank strings in ``value`` to ``found`` in order; whether anything else was skipped."""
    if isinstance(value, str):
        if value.strip():
            found.append(value.strip())
        return False
    if isinstance(value, (list, dict)) and depth > 0:
        items = value.values() if isinstance(value, dict) else value
        skipped = False
        for item in items:
            skipped = _strings_in(item, found, depth - 1) or skipped
        return skipped
    return value is not None and not (isinstance(value, (list, dict)) and not value)


def text_list(value: Any, notes: Notes, path: str) -> Any:
    """A list of non-empty strings; a single string becomes a one-element list, an object the list of its values
    (keys are labels: {"1": "...", "2": "..."}); other items are dropped."""
    if isinstance(value, str):
        if not value.strip():
            return MISSING
        notes.note("coerced", path)
        return [value]
    if isinstance(value, dict) and value:
        notes.note("coerced", path)
        value = numbered(value) or list(value.values())
    if not isinstance(value, list):
        if value is not MISSING and value is not None:
            notes.note("dropped", path)
        return MISSING
    items = []
    for index, item in enumerate(value):
        item_path = f"{path}[{index}]"
        got = text(item, notes, item_path)
        if got is MISSING or not got.strip():
            notes.note("dropped", item_path)
            continue
        items.append(got)
    return items


def number(value: Any, notes: Notes, path: str) -> Any:
    """A finite number; "0.8" and "80%" are read as such; anything else is missing."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if _finite_number(value):
            return float(value)
    elif isinstance(value, str):
        percent = _PERCENT.match(value)
        try:
            parsed = float(percent.group(1)) / 100 if percent else float(value)
        except ValueError:
            parsed = math.nan
        if math.isfinite(parsed):
            notes.note("coerced", path)
            return parsed
    if value is not MISSING and value is not None:
        notes.note("dropped", path)
    return MISSING


def _finite_number(value: Any) -> bool:
    """A real number a float can hold (a 400-digit integer cannot: math.isfinite would overflow on it)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        return abs(value) < 1e308
    return math.isfinite(value)


def objects(value: Any, notes: Notes, path: str) -> list[tuple[int, Any]]:
    """Items of a list with their indexes; an object with numbered keys is the list of its items (see ``numbered``),
    any other object where a list was asked for a list of one."""
    if isinstance(value, dict):
        notes.note("coerced", path)
        return list(enumerate(numbered(value) or [value]))
    if isinstance(value, list):
        return list(enumerate(value))
    if value is not MISSING and value is not None:
        notes.note("dropped", path)
    return []


def default(value: Any, fallback: Any, notes: Notes, path: str) -> Any:
    """``value``, or the documented default when it is missing (noted)."""
    if value is MISSING:
        notes.note("defaults", path)
        return fallback
    return value


def require(value: Any, what: str) -> Any:
    """``value``, or Unusable when essential content is missing."""
    if value is MISSING or (isinstance(value, (str, list)) and not value):
        raise Unusable(f"the answer has no {what}")
    return value


def titled_item(item: Any, aliases: Mapping[str, Iterable[str]], notes: Notes, path: str) -> dict[str, str] | None:
    """A {title, description} item (a task, a subtopic), or None without a title; a bare string is its title."""
    if isinstance(item, str) and item.strip():
        notes.note("coerced", path)
        return {"title": item, "description": ""}
    if not isinstance(item, dict):
        return None
    got = {name: pick(item, name, names, notes, f"{path}.{name}") for name, names in aliases.items()}
    title = text(got["title"], notes, f"{path}.title")
    if title is MISSING or not title.strip():
        return None
    description = default(text(got["description"], notes, f"{path}.description", joiner=" "), "", notes,
                          f"{path}.description")
    return {"title": title, "description": description}
