"""From a model's text to a JSON value: strict first, then the cheap fixes, then json-repair, each one named."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import json_repair

# Our schemas nest four levels at most; deeper input is junk and makes json-repair recurse.
MAX_DEPTH = 32
_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_-]*[ \t]*\r?\n(.*?)(?:\r?\n?```|\Z)", re.S)
# An opener followed by something JSON-like: a quote, an opener, a closer, a comment, or a bare key and colon.
_LIKELY_START = re.compile(r"[{\[]\s*(?:[\"'{\[\]}]|//|/\*|[A-Za-z_][\w ]{0,40}:)")


class Unusable(Exception):
    """The text holds nothing we can use; ``reason`` says why in words fit for a re-ask."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Extracted:
    """A JSON value and the syntactic repairs it took (empty: the text was strict JSON)."""

    value: Any
    kinds: list[str] = field(default_factory=list)


def extract_json(text: str, *, max_repair_chars: int) -> Extracted:
    """Return the JSON value in ``text``; raise Unusable when there is none."""
    body = text.strip().lstrip("\ufeff")
    found = _strict(body)
    if found is not None:
        return _decode_nested(found[0], [], max_repair_chars)
    kinds: list[str] = []
    fenced = _FENCE.search(body)
    if fenced:
        kinds.append("markdown_fence")
        body = fenced.group(1).strip()
        found = _strict(body)
        if found is not None:
            return _decode_nested(found[0], kinds, max_repair_chars)
    likely = _LIKELY_START.search(body)
    start = likely.start() if likely else min((i for i in (body.find("{"), body.find("[")) if i >= 0), default=-1)
    if start < 0:
        raise Unusable("the answer contains no JSON object")
    try:
        value, _ = json.JSONDecoder().raw_decode(body, start)
    except (ValueError, RecursionError):
        pass
    else:  # valid JSON with prose around it
        return _decode_nested(value, kinds + ["prose"], max_repair_chars)
    if likely is None:
        # Brackets in prose ("I can't explain {this}", "[see above]") open nothing JSON-like: json-repair would
        # turn their words into a list of strings, which reads as subtopic titles or explanation paragraphs.
        raise Unusable("the answer contains no JSON object")
    return _repair(body, start, kinds, max_repair_chars)


def _strict(text: str) -> tuple[Any] | None:
    """The strictly parsed value (in a 1-tuple, since null is a value), or None."""
    try:
        return (json.loads(text),)
    except (ValueError, RecursionError):
        return None


def _repair(body: str, start: int, kinds: list[str], max_repair_chars: int) -> Extracted:
    """Cut surrounding prose and an unfinished tail, then let json-repair fix quoting, commas and comments."""
    candidate = body[start:]
    if len(candidate) > max_repair_chars:
        # json-repair's cost grows faster than linearly on some inputs: refuse before starting.
        raise Unusable(f"the answer is too large to repair ({len(candidate)} characters, limit {max_repair_chars})")
    candidate, requoted = requote_single(candidate)
    if requoted:
        kinds = kinds + ["single_quotes"]
    scan = scan_json(candidate)
    if scan.max_depth > MAX_DEPTH:
        raise Unusable(f"the answer nests deeper than {MAX_DEPTH} levels")
    if scan.end is not None:
        if start > 0 or candidate[scan.end:].strip():
            kinds = kinds + ["prose"]
        candidate = candidate[: scan.end]
    elif start > 0:
        kinds = kinds + ["prose"]
    if scan.cut is not None:
        candidate = candidate[: scan.cut]
        kinds = kinds + ["incomplete_tail"]
    try:
        value = json_repair.loads(candidate)
    except (ValueError, RecursionError):
        raise Unusable("the answer's JSON could not be repaired") from None
    if not isinstance(value, (dict, list)) or not value:
        raise Unusable("the answer contains no usable JSON object")
    return Extracted(value, kinds + ["json_repair"])


def _decode_nested(value: Any, kinds: list[str], max_repair_chars: int) -> Extracted:
    """Unwrap a JSON document sent as one JSON string; refuse a bare scalar."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        inner = extract_json(value, max_repair_chars=max_repair_chars)
        return Extracted(inner.value, kinds + ["double_encoded"] + inner.kinds)
    if not isinstance(value, (dict, list)):
        raise Unusable("the answer is a bare JSON value, not an object")
    return Extracted(value, kinds)


@dataclass
class Scan:
    """What one linear pass saw: nesting depth, where the document ends, or where to cut an unfinished one."""

    max_depth: int
    end: int | None = None
    cut: int | None = None


def scan_json(text: str) -> Scan:
    """Find the nesting depth, where the document ends, or, if it never closes, where its last whole member ends."""
    # A document cut off (at MAX_TOKENS, say) ends in a member that may itself be cut: a string, a number
    # ("0.75" arriving as "0.7"), a key without its value. Its tail after the last comma or opener is
    # dropped, so that no half value is ever passed on as a whole one.
    depth = max_depth = 0
    stack: list[str] = []
    quote, escaped, is_key = "", False, False
    last = "open"  # kind of the last significant token
    boundary = 0  # where to cut: before the last comma, or just after the last opener
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote, last = "", "key" if is_key else "value"
            i += 1
            continue
        if char == '"':  # single-quoted strings were requoted before the scan
            quote = char
            is_key = bool(stack) and stack[-1] == "{" and last in ("open", "comma")
        elif char == "/" and text.startswith("//", i):
            newline = text.find("\n", i)
            i = n if newline < 0 else newline
            continue
        elif char == "/" and text.startswith("/*", i):
            close = text.find("*/", i + 2)
            i = n if close < 0 else close + 2
            continue
        elif char in "{[":
            stack.append(char)
            depth += 1
            max_depth = max(max_depth, depth)
            boundary, last = i + 1, "open"
        elif char in "}]":
            if stack:
                stack.pop()
            depth -= 1
            last = "close"
            if depth <= 0:
                return Scan(max_depth, end=i + 1)
        elif char == ",":
            boundary, last = i, "comma"
        elif char == ":":
            last = "colon"
        elif not char.isspace():
            last = "scalar"
        i += 1
    if depth <= 0 or (not quote and last in ("close", "value")):
        return Scan(max_depth)
    return Scan(max_depth, cut=boundary)


def requote_single(text: str) -> tuple[str, bool]:
    """Turn 'single-quoted' strings into JSON ones; an apostrophe ("it's") does not end a string."""
    # A single quote opens a string only where a key or value may start, and closes it only when followed
    # by ``:``, ``,``, ``}`` or ``]``: json-repair alone splits 'It's fine' in two.
    if "'" not in text:
        return text, False
    out: list[str] = []
    last, changed, i, n = "open", False, 0, len(text)
    while i < n:
        char = text[i]
        if char == '"':
            end = _string_end(text, i)
            out.append(text[i:end])
            i, last = end, "string"
            continue
        if char == "'" and last in ("open", "comma", "colon"):
            end, inner, closed = _single_quoted(text, i)
            out.append('"' + inner + ('"' if closed else ""))
            i, last, changed = end, "string", True
            continue
        if char in "{[":
            last = "open"
        elif char == ",":
            last = "comma"
        elif char == ":":
            last = "colon"
        elif not char.isspace():
            last = "scalar"
        out.append(char)
        i += 1
    return "".join(out), changed


def _string_end(text: str, start: int) -> int:
    """The index just after the double-quoted string opening at ``start`` (or the end of the text)."""
    i, n = start + 1, len(text)
    while i < n:
        if text[i] == "\\":
            i += 2
        elif text[i] == '"':
            return i + 1
        else:
            i += 1
    return n


def _single_quoted(text: str, start: int) -> tuple[int, str, bool]:
    """The end of the single-quoted string at ``start``, its content escaped for double quotes, and if it closed."""
    inner: list[str] = []
    i, n = start + 1, len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n:
            inner.append("'" if text[i + 1] == "'" else text[i:i + 2])
            i += 2
            continue
        if char == "'":
            after = i + 1
            while after < n and text[after] in " \t\r\n":
                after += 1
            # never at the very end: a complete document closes its brackets after its last string
            if after < n and text[after] in ":,}]":
                return i + 1, "".join(inner), True
        inner.append('\\"' if char == '"' else char)
        i += 1
    return n, "".join(inner), False
