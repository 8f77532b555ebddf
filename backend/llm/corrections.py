"""Corrections of a learner's conversation message: each must quote the learner's own words and change them.

| field                      | missing or unusable          | checks                                            |
| -------------------------- | ---------------------------- | ------------------------------------------------- |
| corrections                | [] (partial)                 | a bare list is the list; one object a list of one |
| corrections[].text         | the correction is dropped    | found in the message (case, quotes, spaces aside) |
| corrections[].correction   | the correction is dropped    | differs from text                                 |
| corrections[].explanation  | ""                           | a string                                          |
"""
from __future__ import annotations

from typing import Any, Mapping

from backend.llm.analysis import ERROR_ALIASES, comparable, quotes_and_changes
from backend.llm.parse import Operation
from backend.llm.recover import MISSING, Notes, default, lone_item, objects, pick, text, unwrap
from backend.schemas.answers import TurnCorrections

ALIASES = {"corrections": ("errors", "mistakes", "fixes")}
FIELDS = {name: aliases for name, aliases in ERROR_ALIASES.items() if name != "type"}


def recover_corrections(data: Any, context: Mapping[str, Any], notes: Notes) -> TurnCorrections:
    """The corrections that point at real words of the message (``context["message"]``); others are dropped."""
    if isinstance(data, list):
        data = {"corrections": data}
    obj = unwrap(lone_item(data, notes, "$", "unwrapped"), {*ALIASES, *ALIASES["corrections"]}, notes)
    value = pick(obj, "corrections", ALIASES["corrections"], notes, "corrections") if isinstance(obj, dict) \
        else MISSING
    if value is MISSING:
        notes.note("defaults", "corrections")
        return TurnCorrections(corrections=[])
    haystack = comparable(str(context.get("message", "")))
    kept = []
    for index, item in objects(value, notes, "corrections"):
        path = f"corrections[{index}]"
        correction = _correction(item, notes, path)
        if correction is None or not quotes_and_changes(correction, haystack):
            notes.note("dropped", path)
            continue
        kept.append(correction)
    return TurnCorrections.model_validate({"corrections": kept})


def _correction(item: Any, notes: Notes, path: str) -> dict[str, str] | None:
    if not isinstance(item, dict):
        return None
    got = {name: pick(item, name, aliases, notes, f"{path}.{name}") for name, aliases in FIELDS.items()}
    wrong = text(got["text"], notes, f"{path}.text")
    right = text(got["correction"], notes, f"{path}.correction")
    if wrong is MISSING or right is MISSING:
        return None
    explanation = default(text(got["explanation"], notes, f"{path}.explanation", joiner=" "), "", notes,
                          f"{path}.explanation")
    return {"text": wrong, "correction": right, "explanation": explanation}


CORRECTIONS = Operation("corrections", TurnCorrections, recover_corrections)
