"""A learner's text as words and sentences, for the local analysis: offsets kept, addresses and numbers set apart."""
from __future__ import annotations

from typing import NamedTuple

import regex

# Masked before words are read, so that none of their parts is ever taken for a misspelled word: web addresses,
# e-mail addresses, @handles and #tags, and dotted names ending like a domain or a file (example.com, notes.txt).
# Possessive quantifiers (++) and the look-behinds keep the pattern from retrying every shorter part of every word.
_NOT_WORDS = regex.compile(
    r"(?:https?://|www\.)\S+"
    r"|(?<![\w.+-])[\w.+-]++@[\w-]++(?:\.[\w-]++)+"
    r"|[@#]\w+"
    r"|(?<![\w.-])[\w-]++(?:\.[\w-]++)*\.[a-z]{2,6}\b(?:/\S*)?",
    regex.IGNORECASE)
# A word: letters (with their combining marks and the Persian zero-width non-joiner), digits, joined by single
# apostrophes or hyphens (don't, l'homme, well-known). Digits stay in the token so that it can be left alone.
_WORD = regex.compile(r"[\p{L}\p{M}\p{N}_\u200c]+(?:['\u2019\-][\p{L}\p{M}\p{N}_\u200c]+)*")
_SENTENCE_END = regex.compile(r"[.!?\u2026\u061f\u06d4]+|\n\s*\n|\n(?=\s*[-*\u2022\d])")
# Skipped when looking back from a word for the end of the previous sentence: spaces, quotes, brackets, dashes.
_OPENERS = " \t\r\"'\u201c\u201d\u2018\u2019\u00ab\u00bb\u201e([{\u00bf\u00a1-\u2013\u2014*\u2022"
_ENDERS = ".!?\u2026\n\u061f\u06d4"


class Token(NamedTuple):  # a tuple: a 5,000-character text makes ~900 of them, and tuples are cheap to build
    text: str             # exactly as written
    start: int            # offset in the text
    sentence_start: bool  # first word of a sentence (or of the text, or of a line): capitals are expected there
    has_digit: bool       # a number, a code or a name with digits (2nd, B12, user_1): never a word to check

    @property
    def end(self) -> int:
        return self.start + len(self.text)


def mask(text: str) -> str:
    """The text with addresses, handles and file names replaced by spaces (offsets unchanged)."""
    return _NOT_WORDS.sub(lambda m: " " * len(m.group()), text)


def tokens(text: str, masked: str | None = None) -> list[Token]:
    """The words of the text, in order, each knowing whether it opens a sentence (masked: mask(text), if known)."""
    masked = mask(text) if masked is None else masked
    found = []
    for match in _WORD.finditer(masked):
        start, word = match.start(), match.group()
        found.append(Token(text[start:match.end()], start, _opens_sentence(masked, start),
                           any(c.isdigit() or c == "_" for c in word)))
    return found


def _opens_sentence(text: str, start: int) -> bool:
    at = start - 1
    while at >= 0 and text[at] in _OPENERS:
        at -= 1
    return at < 0 or text[at] in _ENDERS


def sentence_lengths(text: str, masked: str | None = None) -> list[int]:
    """Words per sentence; a sentence ends at . ! ? … (and the Arabic ones), a blank line or a list item."""
    lengths = []
    for part in _SENTENCE_END.split(mask(text) if masked is None else masked):
        words = sum(1 for _ in _WORD.finditer(part))
        if words:
            lengths.append(words)
    return lengths
