"""Scrub secrets from text that may reach a log line: keys, key= parameters, passwords in URLs."""
from __future__ import annotations

import re

_PATTERNS = [
    # user:password@ in URLs (Redis URLs, proxies)
    (re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<secret>[^@/\s]+)@", re.I),
     r"\g<scheme>\g<user>:***@"),
    # key=..., api_key=..., token=... in query strings and messages
    (re.compile(r"(?P<name>\b(?:[a-z_]*key|token|secret|password|sig|signature)=)[^&\s\"']+", re.I), r"\g<name>***"),
    # header-like "X-API-Key: value", "Authorization: Bearer value"
    (re.compile(r"(?P<name>\b(?:x-api-key|x-admin-key|x-goog-api-key|ocp-apim-subscription-key)\s*[:=]\s*)\S+", re.I),
     r"\g<name>***"),
    (re.compile(r"(?P<name>\bbearer\s+)[A-Za-z0-9._~+/=-]+", re.I), r"\g<name>***"),
]


# Every pattern needs one of these; most log text has none, and one search is far cheaper than four substitutions.
_MAYBE_SECRET = re.compile(r"[:=]|bearer", re.I)


def redact(text: str, *, flatten: bool = True) -> str:
    """Return text with every recognised secret replaced by ***; CR/LF flattened (unless told not to, for
    tracebacks) so that input echoed in a message cannot forge log lines."""
    if _MAYBE_SECRET.search(text):
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
    if flatten and ("\r" in text or "\n" in text):
        text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text
