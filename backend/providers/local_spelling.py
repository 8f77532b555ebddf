"""Spelling mistakes a dictionary can find without a model, and only those it can find with confidence."""
# A wrong "mistake" shown to a learner does more harm than a missed one, so a word is reported only when all of
# these hold (thresholds on the Zipf scale, log10 of uses per billion words; values measured on wordfreq 3.1.1):
#   - it is not in the spelling dictionary and is rarer than KNOWN_ZIPF (used less than once per million words).
#     Common misspellings sit below it (recieve 2.75, definately 2.87, thier 2.99, untill 2.97), while correct
#     words missing from pyspellchecker's lists sit above it (colour 4.49, selfie 3.75, está 6.22, vamos 5.49);
#   - one edit away (a letter missing, added, changed, or two neighbours swapped) lies a dictionary word at least
#     CANDIDATE_ZIPF common, MARGIN more frequent than the word (30 times), and clearly ahead of any other
#     candidate (AMBIGUITY): "wich" could be "with" or "which", so it is left alone. A three-letter word is only
#     checked for a swap (teh): its other neighbours are other short words;
#   - the edit keeps the first letter (few real misspellings change it, many names and foreign words would) and
#     does not touch the last letter, except a doubled letter or a swap: endings are where valid inflected forms
#     missing from the dictionaries differ from common ones (Spanish formara / formar, saludara / saludar);
#   - it is written in lower case, or is capitalised as the first word of a sentence and the correction is one of
#     the ~1,000 commonest words (STRICT_ZIPF): capitals elsewhere mark names (and German nouns, left unchecked),
#     and a sentence may open with a name; all-capital words (acronyms), mixed case (iPhone), words with digits,
#     addresses (local_text masks them) and words shorter than MIN_LENGTH or longer than MAX_LENGTH letters are
#     never checked.
# One exception for words above KNOWN_ZIPF: a missing accent (tambien, francais, reunion in Spanish) is reported
# when the accented dictionary word is ACCENT_MARGIN (10 times) more frequent. Only a missing accent: an accent
# the dictionary lacks may still be right (Spanish avisó, a verb form absent from pyspellchecker's list).
# Measured by bench/local_analysis.py on the correct sample texts with one longer word in ten misspelled (two
# letters swapped): about 80% of the misspellings reported, 99% of those with the original word as correction,
# and no correct word reported.
from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

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
# Longer "words" are left alone: a misspelled word is rarely this long, and the edits of a word grow with its length
# (a 5,000-letter token would make a quarter of a million 5,000-character strings).
MAX_LENGTH = 30
MAX_ERRORS = 25
# Distinct unknown words examined per text: each costs ~0.2-0.4 ms (a few hundred one-edit variants looked up), so
# this bounds one answer's time; a text with more unknown words than this is rarely one a dictionary can judge.
MAX_CHECKED = 150
_LATIN_VOWELS = set("aeiouy")
_APOSTROPHES = regex.compile("['\u2019]")
_EXPLAIN = {
    "swap": "two letters are swapped",
    "double": "a letter should be doubled",
    "undouble": "a letter should not be doubled",
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
        return self.zipf + (LIKELY_EDIT_BONUS if self.kind in ("swap", "double", "undouble", "accent") else 0.0)


def spelling_errors(tokens: list[Token], lexicon: Lexicon) -> list[dict[str, str]]:
    """The spelling mistakes found among the tokens: each once, at most MAX_ERRORS, in the order written."""
    errors: list[dict[str, str]] = []
    seen: set[str] = set()
    searched = 0
    for part, sentence_start in _parts(tokens, lexicon):
        if part in seen:
            continue
        seen.add(part)
        word = _checkable(part, sentence_start, lexicon.language)
        if word is None:
            continue
        info = lexicon.info(word)
        if info.in_dictionary:
            continue
        floor = STRICT_ZIPF if part[0].isupper() else CANDIDATE_ZIPF  # a capital: the first word of a sentence
        if info.zipf >= KNOWN_ZIPF:
            best = _missing_accent(word, info.zipf, floor, lexicon)
        elif searched < MAX_CHECKED:
            searched += 1
            best = _best(_candidates(word, lexicon), info.zipf, floor)
        else:
            continue
        if best is not None:
            errors.append(_error(part, best, lexicon.language))
            if len(errors) >= MAX_ERRORS:
                break
    return errors


def _parts(tokens: list[Token], lexicon: Lexicon) -> Iterator[tuple[str, bool]]:
    """(word, opens a sentence) to check: tokens the lists do not know, split at apostrophes and hyphens."""
    wholes = [t for t in tokens if not t.has_digit]
    infos = lexicon.lookup([normalize(t.text, lexicon.language) for t in wholes])
    for token, info in zip(wholes, infos, strict=True):
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


def _checkable(word: str, sentence_start: bool, language: str) -> str | None:
    """The word in lower case if it is one to check, None when it is left alone whatever the lists say."""
    if not MIN_LENGTH <= len(word) <= MAX_LENGTH or not all(c.isalpha() or unicodedata.category(c) == "Mn"
                                                             for c in word):
        return None
    if any(c.isupper() for c in word[1:]):
        return None  # acronyms (NASA), mixed case (iPhone, McDonald)
    if word[0].isupper() and not sentence_start:
        return None  # a capital inside a sentence: most likely a name
    lower = normalize(word, language)
    if lower[0] in "abcdefghijklmnopqrstuvwxyz" and not _LATIN_VOWELS & set(_strip_accents(lower)):
        return None  # no vowel: an abbreviation (mgmt, pls), not an attempt at a word
    return lower


def _error(word: str, best: _Candidate, language: str) -> dict[str, str]:
    """The error entry: the word exactly as written, the correction with the word's initial capital if any."""
    correction = best.word[0].upper() + best.word[1:] if word[0].isupper() else best.word
    return {"type": "spelling", "text": word, "correction": correction,
            "explanation": f"“{word}” is not in the {NAMES[language]} dictionary; “{correction}” is a common word "
                           f"spelled almost the same way ({_EXPLAIN[best.kind]}). Checked automatically "
                           f"against a word list, so make sure it is the word you meant."}


def _missing_accent(word: str, zipf: float, floor: float, lexicon: Lexicon) -> _Candidate | None:
    """The accented dictionary word ACCENT_MARGIN more frequent than this common unaccented form, if any; the
    accent is never on the last letter, where both forms are often words (Spanish hablo / habló)."""
    accented = _accented(lexicon.alphabet)
    variants = [word[:i] + c + word[i + 1:] for i in range(len(word) - 1) for c in accented.get(word[i], "")]
    found = [_Candidate(w, "accent", z) for w, z in lexicon.dictionary_words(variants)
             if z >= max(zipf + ACCENT_MARGIN, floor)]
    return max(found, key=lambda c: c.zipf, default=None)


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
    found = dict(lexicon.dictionary_words(_edits(word, lexicon.alphabet)))
    found.pop(word, None)
    return [_Candidate(w, _kind(word, w), zipf) for w, zipf in found.items()]


def _edits(word: str, alphabet: str) -> list[str]:
    """Every allowed single edit of the word: the first letter stays (or gains an accent), the last one too unless
    it is doubled or swapped. Built as plain strings (~300-800 of them); their kind is worked out for the few
    found in the dictionary only."""
    n, last = len(word), len(word) - 1
    edits = [word[:i] + word[i + 1] + word[i] + word[i + 2:] for i in range(1, last) if word[i] != word[i + 1]]
    if n <= 3:
        return edits  # a three-letter word: only a swap (teh) is a likely misspelling; the rest are other words
    edits += [word[:i] + word[i + 1:] for i in range(n)
              if 0 < i < last or (i > 0 and word[i - 1] == word[i]) or (i < last and word[i + 1] == word[i])]
    edits += [word[:i] + c + word[i + 1:] for i in range(1, last) for c in alphabet if c != word[i]]
    edits += [c + word[1:] for c in _accented(alphabet).get(word[0], "")]
    edits += [word[:i] + c + word[i:] for i in range(1, n) for c in alphabet]
    edits.append(word + word[-1])
    return edits


def _kind(word: str, candidate: str) -> str:
    """How a candidate one edit away differs from the word (see _EXPLAIN)."""
    if len(candidate) == len(word):
        diff = [i for i, (a, b) in enumerate(zip(word, candidate, strict=True)) if a != b]
        if len(diff) == 2:
            return "swap"
        return "accent" if _strip_accents(candidate[diff[0]]) == word[diff[0]] else "change"
    longer, shorter = (word, candidate) if len(word) > len(candidate) else (candidate, word)
    i = next((i for i, (a, b) in enumerate(zip(longer, shorter, strict=False)) if a != b), len(shorter))
    if longer[i] in (longer[i - 1:i], longer[i + 1:i + 2]):
        return "undouble" if longer is word else "double"
    return "extra" if longer is word else "missing"


@functools.lru_cache(maxsize=32)
def _accented(alphabet: str) -> dict[str, str]:
    """Base letter -> the accented letters of the alphabet built on it (e -> éèêë): one entry per language."""
    found: dict[str, str] = {}
    for c in alphabet:
        base = _strip_accents(c)
        if base != c:
            found[base] = found.get(base, "") + c
    return found


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
