"""A cache entry as every tier stores it: MAGIC, a one-line JSON header {"f": fresh until (epoch s), "g": generation,
"c": cost, "k": kind}, a newline, then the payload: the value's JSON (kind "json") or the value itself (kind
"bytes"). Entries written before binary values are one JSON text {"v", "f", "g", "c"}: they start with "{", and are
still read. Reading one: its header (remembered by its bytes, parsed once per distinct header), then its value."""
from __future__ import annotations

import json
from typing import Any

MAGIC = b"TC2 "
JSON, BYTES = "json", "bytes"
_HEADER_MAX = 512  # where the header's newline must be by: a payload is never scanned for it
CORRUPT = object()  # what an unreadable payload decodes to: a miss, never an error


def header(raw: bytes) -> dict[str, Any] | None:
    """The header of a stored entry ("f", "g", "c", "k"; "@": where its payload starts), or None when corrupt: a
    corrupt entry is a miss, not an error. An entry from before binary values is its own header (kind "legacy").
    The headers of the entries hit lately are remembered by their bytes (parsed once, not per hit); a header is
    read, never changed, by whoever gets it."""
    if raw.startswith(MAGIC):
        end = raw.find(b"\n", len(MAGIC), len(MAGIC) + _HEADER_MAX)
        line = raw[len(MAGIC):end] if end > 0 else b""
        known = _headers.get(line)
        if known is not None:
            return known
    kinds: tuple[str, ...]
    try:
        if raw.startswith(b"{"):  # the old format: one JSON text with the value in it
            parsed, kinds = json.loads(raw), ("legacy",)
            if isinstance(parsed, dict) and "v" in parsed:
                parsed["k"] = "legacy"
        elif raw.startswith(MAGIC):
            parsed, kinds = (json.loads(line) if end > 0 else None), (JSON, BYTES)
            if isinstance(parsed, dict):
                parsed["@"] = end + 1
        else:
            return None
    except ValueError:  # bad JSON or bad UTF-8
        return None
    valid = (isinstance(parsed, dict) and parsed.get("k") in kinds and "g" in parsed
             and isinstance(parsed.get("f"), (int, float)))
    if not valid:
        return None
    if kinds != ("legacy",):
        if len(_headers) >= _HEADERS_REMEMBERED:
            _headers.clear()
        _headers[line] = parsed
    return parsed


# Headers parsed lately, by their bytes: {header line: header}. Bounded; dropped whole when full.
_HEADERS_REMEMBERED = 4096
_headers: dict[bytes, dict[str, Any]] = {}


def value(raw: bytes, header: dict[str, Any]) -> Any:
    """The value an entry holds: bytes as stored, decoded JSON, or CORRUPT."""
    if header["k"] == "legacy":
        return header["v"]
    payload = raw[header["@"]:]
    if header["k"] == BYTES:
        return payload
    try:
        return json.loads(payload)
    except ValueError:
        return CORRUPT
