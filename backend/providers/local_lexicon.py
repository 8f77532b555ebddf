"""Word lists for the local analysis: one compact lexicon per language, loaded once per process on first use."""
# Two shipped resources are merged per language: pyspellchecker's dictionary (which words are spelled correctly)
# and wordfreq's frequency list (how common each word form is, on the Zipf scale: log10 of uses per billion words).
# Both ship inside their wheels, so nothing is fetched from the network.
#
# Memory: kept as Python dicts, the two lists would take tens of MB per language (word strings plus dict slots),
# hundreds for all of them, in every gunicorn worker. A lexicon keeps only the 64-bit hash of each word in a sorted
# numpy array plus a 16-bit code: 10 bytes a word, 0.5-5.3 MiB a language, 33 MiB for all eleven (measured by
# bench/local_analysis.py, with the RSS it adds). A looked-up word matches another word's hash with a probability
# of about n / 2**64 (~1e-14): never in practice. numpy arrays are not touched by reference counting, so a lexicon
# warmed before a fork would stay shared between the workers.
from __future__ import annotations

import ctypes
import gc
import threading
import time
import unicodedata
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import numpy as np

# Languages with both a pyspellchecker dictionary and a wordfreq list. pyspellchecker 0.9.1 also ships Basque (eu),
# which wordfreq does not cover: without frequencies there is no vocabulary measure, so no local answer for it.
SUPPORTED = ("en", "es", "fr", "de", "it", "pt", "nl", "ru", "ar", "fa", "lv")
NAMES = {"en": "English", "es": "Spanish", "fr": "French", "de": "German", "it": "Italian", "pt": "Portuguese",
         "nl": "Dutch", "ru": "Russian", "ar": "Arabic", "fa": "Persian", "lv": "Latvian"}
# Word forms rarer than this are not kept: no rule below looks at frequencies under it (see local_spelling).
FLOOR_ZIPF = 1.5
# Words the detector compares texts with: each language's most frequent forms, mostly function words.
SIGNATURE_SIZE = 300
_IN_DICTIONARY = 1 << 15  # code bit: the word is in the spelling dictionary
_NO_FREQUENCY = 1023      # code value: wordfreq does not list the word (or lists it below FLOOR_ZIPF)
_MARKS_STRIPPED = {"ar", "fa"}  # short vowels and tatweel are optional in writing and absent from both lists


def normalize(word: str, language: str) -> str:
    """The form both lists use: NFC, lower case, a typographic apostrophe as ', Arabic-script marks removed."""
    word = unicodedata.normalize("NFC", word).lower().replace("\u2019", "'")
    if language in _MARKS_STRIPPED:
        word = "".join(c for c in word if c != "\u0640" and unicodedata.category(c) != "Mn")
    return word


class WordInfo(NamedTuple):
    in_dictionary: bool
    zipf: float  # 0.0 when wordfreq does not list the word (or lists it below FLOOR_ZIPF)


class Lexicon:
    """What the local analysis knows of one language's words; read-only once built, safe to share between threads."""

    def __init__(self, language: str, hashes: np.ndarray, codes: np.ndarray, alphabet: str, load_seconds: float):
        self.language = language
        self.alphabet = alphabet  # the letters edits may insert or replace: those of the ~7,000 commonest words
        self.load_seconds = load_seconds
        self._hashes = hashes
        self._codes = codes

    def __len__(self) -> int:
        return len(self._hashes)

    @property
    def nbytes(self) -> int:
        return int(self._hashes.nbytes + self._codes.nbytes)

    def lookup(self, words: Sequence[str]) -> list[WordInfo]:
        """WordInfo of each word, given already normalized; one vectorised search for all of them."""
        return [WordInfo(bool(code & _IN_DICTIONARY), _zipf(code & 1023)) for code in self.codes(words).tolist()]

    def dictionary_words(self, words: Sequence[str]) -> list[tuple[str, float]]:
        """(word, Zipf) of those words that are in the spelling dictionary and in the frequency list."""
        codes = self.codes(words)
        listed = ((codes & _IN_DICTIONARY) != 0) & ((codes & 1023) != _NO_FREQUENCY)
        return [(words[i], _zipf(int(codes[i]) & 1023)) for i in listed.nonzero()[0].tolist()]

    def codes(self, words: Sequence[str]) -> np.ndarray:
        import numpy as np

        if not words:
            return np.zeros(0, dtype=np.uint16)
        wanted = np.fromiter(map(hash, words), dtype=np.int64, count=len(words))
        # The ndarray method, not np.searchsorted: the function's dispatch costs ten times the search itself.
        at = self._hashes.searchsorted(wanted).clip(max=len(self._hashes) - 1)
        return np.where(self._hashes[at] == wanted, self._codes[at], np.uint16(_NO_FREQUENCY))

    def info(self, word: str) -> WordInfo:
        wanted = hash(word)
        at = min(int(self._hashes.searchsorted(wanted)), len(self._hashes) - 1)
        code = int(self._codes[at]) if int(self._hashes[at]) == wanted else _NO_FREQUENCY
        return WordInfo(bool(code & _IN_DICTIONARY), _zipf(code & 1023))


def _zipf(centibels: int) -> float:
    """wordfreq stores frequencies as -centibels: index i of its list means 10**(-i/100), i.e. Zipf 9 - i/100."""
    return 0.0 if centibels == _NO_FREQUENCY else round(9.0 - centibels / 100.0, 2)


def _build(language: str) -> Lexicon:
    """Read both shipped lists of one language into a Lexicon (~0.1-0.5 s); the lists themselves are dropped."""
    import numpy as np
    import wordfreq
    from spellchecker import SpellChecker

    started = time.perf_counter()
    # pyspellchecker lower-cases its words already; a few carry abbreviation dots or spaces and are never matched.
    words = SpellChecker(language=language, distance=1).word_frequency.keys()
    spelled = np.fromiter((hash(normalize(w, language)) for w in words), dtype=np.int64)
    del words
    # wordfreq's own get_frequency_dict would keep the list and a dict of it in an unbounded cache: read the file.
    pack = wordfreq.read_cBpack(wordfreq.available_languages("best")[language])
    last = min(len(pack), round((9.0 - FLOOR_ZIPF) * 100) + 1)
    listed = [w for bucket in pack[:last] for w in bucket]
    centibels = np.fromiter((i for i, bucket in enumerate(pack[:last]) for _ in bucket), dtype=np.int64,
                            count=len(listed))
    alphabet = "".join(sorted({c for w in listed[:7000] for c in normalize(w, language) if c.isalpha()}))
    frequent = np.fromiter((hash(normalize(w, language)) for w in listed), dtype=np.int64, count=len(listed))
    del pack, listed

    hashes = np.concatenate([spelled, frequent])
    codes = np.concatenate([np.full(len(spelled), _IN_DICTIONARY | _NO_FREQUENCY, dtype=np.int64),
                            centibels])
    # One entry per hash: in the dictionary if any entry is, with the highest frequency any entry has.
    order = np.lexsort((codes & 1023, hashes))
    hashes, codes = hashes[order], codes[order]
    starts = np.flatnonzero(np.r_[True, hashes[1:] != hashes[:-1]])
    in_dictionary = np.maximum.reduceat(codes & _IN_DICTIONARY, starts)
    merged = (codes[starts] & 1023) | in_dictionary
    return Lexicon(language, np.ascontiguousarray(hashes[starts]), merged.astype(np.uint16), alphabet,
                   time.perf_counter() - started)


def _release_freed_memory() -> None:
    """Hand the build's freed memory back to the system. Without it a worker keeps the heap the parsed lists used:
    RSS +38 MiB after building English, +79 MiB after all eleven; with it +5 and +41 MiB (measured once by hand;
    bench/local_analysis.py measures the whole warm-up)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc (musl, macOS): the memory is reused by later allocations instead


def _read_signature(language: str) -> frozenset[str]:
    """The SIGNATURE_SIZE most frequent forms of wordfreq's small list (a few ms; the rest of the list is dropped)."""
    import wordfreq

    pack = wordfreq.read_cBpack(wordfreq.available_languages("small")[language])
    top: list[str] = []
    for bucket in pack:
        top.extend(normalize(w, language) for w in bucket if any(c.isalpha() for c in w))
        if len(top) >= SIGNATURE_SIZE:
            break
    return frozenset(top[:SIGNATURE_SIZE])


class _Resources:
    """Per process: each language's lexicon and signature, built at most once, on first use or at warm_up()."""

    def __init__(self) -> None:
        # Only empty containers and locks at import: reading the lists is left to the first call that needs them.
        self._lexicons: dict[str, Lexicon] = {}
        self._signatures: dict[str, frozenset[str]] = {}
        self._locks = {language: threading.Lock() for language in SUPPORTED}
        self.builds = 0  # lexicons built by this process: tests check it stays at one per language

    def lexicon(self, language: str) -> Lexicon:
        found = self._lexicons.get(language)
        if found is None:
            with self._locks[language]:  # one build per language even when many threads ask at once
                found = self._lexicons.get(language)
                if found is None:
                    found = self._lexicons[language] = _build(language)
                    self.builds += 1
                    _release_freed_memory()
        return found

    def signature(self, language: str) -> frozenset[str]:
        found = self._signatures.get(language)
        if found is None:
            with self._locks[language]:
                found = self._signatures.get(language)
                if found is None:
                    found = self._signatures[language] = _read_signature(language)
        return found

    def loaded(self) -> tuple[str, ...]:
        return tuple(language for language in SUPPORTED if language in self._lexicons)


RESOURCES = _Resources()


def lexicon(language: str) -> Lexicon:
    """The lexicon of a supported language, built on the first call in this process."""
    return RESOURCES.lexicon(language)


def signature(language: str) -> frozenset[str]:
    """The most frequent word forms of a supported language, read on the first call in this process."""
    return RESOURCES.signature(language)


def warm_up(languages: Iterable[str] = SUPPORTED) -> float:
    """Load the lexicons and signatures of these languages now (at worker start); returns the seconds it took."""
    started = time.perf_counter()
    for language in languages:
        if language not in SUPPORTED:
            raise ValueError(f"no local lexicon for {language!r}; supported: {', '.join(SUPPORTED)}")
        signature(language)
        lexicon(language)
    return time.perf_counter() - started
