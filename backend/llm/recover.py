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
    while depth and isinstance(data, dict):
        keys = {normal_key(k) for k in data}
        inner = [v for v in data.values() if isinstance(v, dict)]
        wrapper = (not known & keys and len(inner) == 1) or (len(data) == 1 and inner and not keys & object_fields)
        if not wrapper:
            break
        notes.note("unwrapped", "$")
        data, depth = inner[0], depth - 1
    return data


def text(value: Any, notes: Notes, path: str, *, joiner: str | None = None) -> Any:
    """A string; a number or a one-string list becomes one; a list of strings is joined only for prose."""
    if isinstance(value, str):
        return value
    if _finite_number(value):
        notes.note("coerced", path)
        return str(value)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        if len(value) == 1 or joiner is not None:
            notes.note("coerced", path)
            return (joiner or "").join(v.strip() for v in value)
    if value is not MISSING and value is not None:
        notes.note("dropped", path)  # an object or a mixed list: no single honest reading
    return MISSING


def text_list(value: Any, notes: Notes, path: str) -> Any:
    """A list of non-empty strings; a single string becomes a one-element list; other items are dropped."""
    if isinstance(value, str):
        if not value.strip():
            return MISSING
        notes.note("coerced", path)
        return [value]
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
    """Items of a list with their indexes; one object where a list was asked for becomes a list of one."""
    if isinstance(value, dict):
        notes.note("coerced", path)
        return [(0, value)]
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
