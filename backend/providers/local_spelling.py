"""Spelling mistakes a dictionary can find without a model, and only those it can find with confidence."""
# A wrong "mistake" shown to a learner does more harm than a missed one, so a word is reported only when all of
# these hold (thresholds on the Zipf scale, log10 of uses per billion words; values measured on wordfreq 3.1.1):
#   - it is not in the spelling dictionary and is rarer than KNOWN_ZIPF (used less than once per million words).
#     Common misspellings sit below it (recieve 2.75, definately 2.87, thier 2.99, untill 2.97), while correct
#     words missing from pyspellchecker's lists sit above it (colour 4.49, selfie 3.75, está 6.22, vamos 5.49);
#   - one edit away (a letter missing, added, changed, or two neighbours swapped) lies a dictionary word at least
#     CANDIDATE_ZIPF common, MARGIN more frequent than the word (30 times), and clearly ahead of any other candidate
#     (AMBIGUITY): "wich" could be "with" or "which", so it is left alone;
#   - the edit keeps the first letter (few real misspellings change it, many names and foreign words would) and
#     does not touch the last letter, except a doubled letter or a swap: endings are where valid inflected forms
#     missing from the dictionaries differ from common ones (Spanish formara / formar, saludara / saludar);
#   - it is written in lower case, or is capitalised as the first word of a sentence and the correction is one of
#     the ~1,000 commonest words (STRICT_ZIPF): capitals elsewhere mark names, and a sentence may open with one;
#     all-capital words (acronyms), mixed case (iPhone), words with digits and very short words are never checked.
# One exception for words above KNOWN_ZIPF: a missing accent (tambien, francais, reunion in Spanish) is reported
# when the accented dictionary word is ACCENT_MARGIN (10 times) more frequent. Only a missing accent: an accent
# the dictionary lacks may still be right (Spanish avisó, a verb form absent from pyspellchecker's list).
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Iterator

import regex

from backend.providers.local_lexicon import NAMES, Lexicon, WordInfo, normalize
from backend.providers.local_text import Token

KNOWN_ZIPF = 3.0
CANDIDATE_ZIPF = 3.0
STRICT_ZIPF = 5.0
MARGIN = 1.5
ACCENT_MARGIN = 1.0
AMBIGUITY = 0.75
# A swap, a doubled letter or a missing accent is how a learner misspells a word far more often than it is how
# two real words differ: such a candidate wins a near tie against a plain letter change.
LIKELY_EDIT_BONUS = 0.5
MIN_LENGTH = 3
MAX_ERRORS = 25
_LATIN_VOWELS = set("aeiouy")
_APOSTROPHES = regex.compile("['\u2019]")
_EXPLAIN = {
    "swap": "two letters are swapped",
    "double": "a doubled letter is wrong",
    "accent": "an accent is missing",
    "missing": "a letter is missing",
    "extra": "there is an extra letter",
    "change": "one letter is wrong",
}


@dataclass(frozen=True)
class _Candidate:
    word: str
    kind: str
    zipf: float

    @property
    def score(self) -> float:
        return self.zipf + (LIKELY_EDIT_BONUS if self.kind in ("swap", "double", "accent") else 0.0)


def spelling_errors(tokens: list[Token], lexicon: Lexicon) -> list[dict[str, str]]:
    """The spelling mistakes found among the tokens: each once, at most MAX_ERRORS, in the order written."""
    errors: list[dict[str, str]] = []
    seen: set[str] = set()
    for part, sentence_start in _parts(tokens, lexicon):
        if part in seen or len(errors) >= MAX_ERRORS:
            continue
        seen.add(part)
        found = _check(part, sentence_start, lexicon)
        if found is not None:
            errors.append(found)
    return errors


def _parts(tokens: list[Token], lexicon: Lexicon) -> Iterator[tuple[str, bool]]:
    """(word, opens a sentence) to check: tokens the lists do not know, split at apostrophes and hyphens."""
    wholes = [t for t in tokens if not t.has_digit]
    infos = lexicon.lookup([normalize(t.text, lexicon.language) for t in wholes])
    for token, info in zip(wholes, infos):
        if info.in_dictionary:
            continue
        pieces = _APOSTROPHES.split(token.text)
        if len(pieces) == 1 and "-" not in token.text:
            yield token.text, token.sentence_start  # _check decides, a missing accent included
            continue
        if _known(info):
            continue  # aujourd'hui, well-known and e-mail are listed as they are
        for index, piece in enumerate(pieces):
            # Elisions before an apostrophe (l', qu', dell') and clitics after one ('s, 'll, n't) are short and
            # left alone; longer pieces are words of their own (freind's, un'altra).
            if len(pieces) > 1 and len(piece) <= (5 if index < len(pieces) - 1 else 3):
                continue
            for sub_index, sub in enumerate(piece.split("-")):
                yield sub, token.sentence_start and index == 0 and sub_index == 0


def _known(info: WordInfo) -> bool:
    return info.in_dictionary or info.zipf >= KNOWN_ZIPF


def _check(word: str, sentence_start: bool, lexicon: Lexicon) -> dict[str, str] | None:
    """The error entry for this word as written, or None when it is (or may well be) right."""
    if len(word) < MIN_LENGTH or not all(c.isalpha() or unicodedata.category(c) == "Mn" for c in word):
        return None
    if any(c.isupper() for c in word[1:]):
        return None  # acronyms (NASA), mixed case (iPhone, McDonald)
    strict = word[0].isupper()
    if strict and not sentence_start:
        return None  # a capital inside a sentence: most likely a name
    lower = normalize(word, lexicon.language)
    if lower[0] in "abcdefghijklmnopqrstuvwxyz" and not _LATIN_VOWELS & set(_strip_accents(lower)):
        return None  # no vowel: an abbreviation (mgmt, pls), not an attempt at a word
    info = lexicon.info(lower)
    if info.in_dictionary:
        return None
    candidates = _candidates(lower, lexicon)
    if info.zipf >= KNOWN_ZIPF:
        accents = [c for c in candidates if c.kind == "accent" and c.zipf >= info.zipf + ACCENT_MARGIN]
        best = max(accents, key=lambda c: c.zipf, default=None)
    else:
        best = _best(candidates, info.zipf, STRICT_ZIPF if strict else CANDIDATE_ZIPF)
    if best is None:
        return None
    correction = best.word[0].upper() + best.word[1:] if strict else best.word
    if correction == word:
        return None
    language = NAMES[lexicon.language]
    return {"type": "spelling", "text": word, "correction": correction,
            "explanation": f"“{word}” is not in the {language} dictionary; “{correction}” is a common word "
                           f"spelled almost the same way ({_EXPLAIN[best.kind]}). Checked automatically "
                           f"against a word list, so make sure it is the word you meant."}


def _best(candidates: list[_Candidate], zipf: float, floor: float) -> _Candidate | None:
    """The one clear correction among the candidates, or None when there is none or it is doubtful."""
    ranked = sorted((c for c in candidates if c.zipf >= floor), key=lambda c: c.score, reverse=True)
    if not ranked or ranked[0].zipf < zipf + MARGIN:
        return None
    if len(ranked) > 1 and ranked[1].score > ranked[0].score - AMBIGUITY:
        return None
    return ranked[0]


def _candidates(word: str, lexicon: Lexicon) -> list[_Candidate]:
    """Dictionary words one edit away that keep the first letter and, except swaps and doubles, the last one."""
    edits: dict[str, str] = {}
    for candidate, kind in _edits(word, lexicon.alphabet):
        edits.setdefault(candidate, kind)  # the first kind found is the likelier one (a swap before a change)
    edits.pop(word, None)
    words = list(edits)
    infos = lexicon.lookup(words)
    first = _strip_accents(word[0])
    return [_Candidate(w, edits[w], info.zipf) for w, info in zip(words, infos)
            if info.in_dictionary and info.zipf > 0 and _strip_accents(w[0]) == first]


def _edits(word: str, alphabet: str) -> Iterator[tuple[str, str]]:
    """(candidate, kind of edit) for every allowed single edit of the word."""
    last = len(word) - 1
    for i in range(len(word) - 1):
        if word[i] != word[i + 1]:
            yield word[:i] + word[i + 1] + word[i] + word[i + 2:], "swap"
    if len(word) <= 3:
        return  # a three-letter word: only a swap (teh) is a likely misspelling; the rest are other short words
    for i in range(len(word)):
        doubled = (i > 0 and word[i - 1] == word[i]) or (i < last and word[i + 1] == word[i])
        if i < last or doubled:
            yield word[:i] + word[i + 1:], "double" if doubled else "extra"
        if i < last:
            for c in alphabet:
                kind = "accent" if _strip_accents(c) == word[i] else "change"
                if c != word[i] and (i > 0 or kind == "accent"):
                    yield word[:i] + c + word[i + 1:], kind
    for i in range(1, len(word) + 1):
        for c in alphabet:
            if i < len(word) or c == word[-1]:
                yield word[:i] + c + word[i:], "double" if c in (word[i - 1], word[i:i + 1]) else "missing"


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
