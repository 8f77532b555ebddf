"""The model-output corpus: realistic Gemini answers per operation, each with the outcome it must have.

Each ``<operation>.json`` holds the requests, the model's clean results, and cases. A case scripts one
fake Gemini answer per call (``text`` as a string or a list of lines, ``finish_reason``, or a fault such as
``{"error": "safety"}``) and expects either a 502, or a 200 with ``partial`` and the exact data: a named
result with an optional patch (objects merge, ``null`` deletes, ``"$null"`` sets null, lists are replaced or
edited with ``$take``, ``$without`` and ``$patch``), plus the fields recovery had to touch (``$`` = the
document's syntax).

``heldout/`` holds a second corpus in the same format, written from the documented rules before the recovery
that handles it, and never tuned to: it measures recovery (``bench.parse_corpus``) rather than pinning it, so
its cases name no fields.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORPUS_DIR = Path(__file__).parent
HELDOUT_DIR = CORPUS_DIR / "heldout"


@dataclass(frozen=True)
class Case:
    """One corpus case, resolved: the request, the scripted answers and the expected outcome."""

    id: str
    source: str
    endpoint: str
    tags: tuple[str, ...]
    request: dict[str, Any]
    answers: tuple[dict[str, Any], ...]
    expect: dict[str, Any]
    data: dict[str, Any] | None
    calls: int

    @property
    def recovered(self) -> bool:
        """Whether the endpoint must answer 200."""
        return self.expect["status"] == 200

    def script(self) -> list[dict[str, Any]]:
        """The fake Gemini script: one entry per expected call."""
        return [{**a, "text": text_of(a)} if "text" in a else dict(a) for a in self.answers]


def text_of(answer: dict[str, Any]) -> str | None:
    """The answer's text, joined when stored as lines."""
    text = answer.get("text")
    return "\n".join(text) if isinstance(text, list) else text


def load_cases(directory: Path = CORPUS_DIR, pattern: str = "*.json") -> list[Case]:
    """Every case of every corpus file in ``directory`` (or of those matching ``pattern``), in file order."""
    cases = []
    for path in sorted(directory.glob(pattern)):
        doc = json.loads(path.read_text(encoding="utf-8"))
        for raw in doc["cases"]:
            expect = raw["expect"]
            data = None
            if expect["status"] == 200:
                base = expect["data"]
                data = patched(doc["results"][base] if isinstance(base, str) else base, expect.get("patch", {}))
                data["partial"] = expect["partial"]
            cases.append(Case(id=raw["id"], source=doc["source"], endpoint=doc["endpoint"], tags=tuple(raw["tags"]),
                              request=doc["requests"][raw["request"]], answers=tuple(raw["answers"]), expect=expect,
                              data=data, calls=raw.get("calls", len(raw["answers"]))))
    return cases


def load_results() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(source, request, the model's clean result) for every named result of the corpus."""
    found = []
    for path in sorted(CORPUS_DIR.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        found += [(doc["source"], doc["requests"][name], result) for name, result in doc["results"].items()]
    return found


def patched(base: Any, patch: Any) -> Any:
    """``base`` with ``patch`` applied (see the module docstring)."""
    if patch == "$null":
        return None
    if isinstance(patch, dict) and isinstance(base, list):
        items = copy.deepcopy(base)[: patch.get("$take", len(base))]
        drop = set(patch.get("$without", ()))
        items = [item for index, item in enumerate(items) if index not in drop]
        for index, change in patch.get("$patch", {}).items():
            items[int(index)] = patched(items[int(index)], change)
        return items
    if isinstance(patch, dict) and isinstance(base, dict):
        result = copy.deepcopy(base)
        for key, change in patch.items():
            if change is None:
                result.pop(key, None)
            else:
                result[key] = patched(result.get(key), change)
        return result
    return copy.deepcopy(patch)
