"""The in-process analysis answered when no language model can (contract section 11): basic, and honest about it."""
# What it does: finds the text's language among those with a local dictionary, lists the spelling mistakes it is
# sure of (local_spelling), guesses a CEFR level from vocabulary and sentence length (local_cefr), and says plainly
# that this is a basic automatic check. The answer has the shape of /api/analyze's, plus "degraded": true.
# None means "no local answer" (the caller keeps its 503): a language without a dictionary, or a text whose words
# the dictionary mostly does not recognise. The word lists load once per process (local_lexicon), never at import.
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import regex

from backend.providers import local_cefr, local_lexicon
from backend.providers.local_lexicon import NAMES, SUPPORTED, Lexicon, WordInfo, normalize
from backend.providers.local_spelling import KNOWN_ZIPF, spelling_errors
from backend.providers.local_text import Token, mask, sentence_lengths, tokens

PROVIDER = "local"
# Whether a text is in the language its lexicon was chosen for, and the lexicon can judge it: at least MIN_WORDS
# words recognised, and of the words (unknown capitalised words inside a sentence, names, left out)
#   - at least MIN_RECOGNISED_SHARE recognised or reported as misspelled (a misspelled word is still a word of the
#     language), and
#   - at least MIN_KNOWN_SHARE recognised as written: a text mostly "misspelled" is in another language.
# Measured: correct sample texts are recognised at 93-100% by their own lexicon; learner texts with many mistakes
# at 77-90% as written and 97-100% with their misspellings. A neighbouring language's lexicon, wordfreq listing many
# foreign words, recognises up to 72% of a text as written and 84% with "misspellings" (Catalan read as Spanish),
# Galician 64% / 77% (as Spanish or Portuguese), Swedish 63% / 67% (as English).
MIN_WORDS = 3
MIN_RECOGNISED_SHARE = 0.9
MIN_KNOWN_SHARE = 0.65
# Languages by script; within one, the first is the default when no frequent word decides (English for Latin).
_SCRIPTS = {"latin": ("en", "es", "fr", "de", "it", "pt", "nl", "lv"), "cyrillic": ("ru",), "arabic": ("ar", "fa")}
# Letters counted per script to find the text's (Greek, CJK, Hebrew, Devanagari... count as "other": no answer).
_SCRIPT_LETTERS = {"latin": regex.compile(r"\p{Script=Latin}"), "cyrillic": regex.compile(r"\p{Script=Cyrillic}"),
                   "arabic": regex.compile(r"\p{Script=Arabic}"),
                   "other": regex.compile(r"[^\P{L}\p{Script=Latin}\p{Script=Cyrillic}\p{Script=Arabic}]")}
# Languages whose nouns are capitalised: a capital inside a sentence is a noun to measure, not a name to skip.
_CAPITALISED_NOUNS = {"de"}

__all__ = ["PROVIDER", "SUPPORTED", "analyze", "detect_language", "warm_up"]


def warm_up(languages: Iterable[str] = SUPPORTED) -> float:
    """Load the word lists now, at worker start, instead of during the first degraded request; returns seconds."""
    return local_lexicon.warm_up(languages)


def detect_language(text: str) -> str | None:
    """The supported language the text is written in, or None when analyze() would give no answer for it (the
    same checks, spelling included)."""
    found = _understand(text)
    return found[0] if found else None


def analyze(text: str) -> dict[str, Any] | None:
    """The local answer for a learner's text, or None when there is none to give.

    The request's `level` and `native_language` change nothing here: the level is measured, not taken from the
    learner, and the feedback is the same plain English whatever their first language.
    """
    found = _understand(text)
    if found is None:
        return None
    language, reading, errors, masked = found
    name = NAMES[language]
    profile = local_cefr.VocabularyProfile.measure(reading.vocabulary, sentence_lengths(text, masked))
    cefr = local_cefr.assessment(profile, name)
    return {
        "errors": errors,
        "feedback": _feedback(name, len(errors), profile, cefr["level"]),
        "strengths": _strengths(name, len(errors), profile),
        "improvement_areas": _improvement_areas(len(errors), profile),
        "recommended_tasks": _tasks(len(errors), profile),
        "cefr_assessment": cefr,
        "partial": False,
        "degraded": True,
    }


def corrections(inputs: dict[str, Any]) -> dict[str, Any] | None:
    """Corrections of a conversation message (``inputs["message"]``) found in-process, or None (a language this
    module does not read). Only the errors it is sure of: spelling, against word lists."""
    found = _understand(str(inputs.get("message", "")))
    if found is None:
        return None
    return {"corrections": [{"text": error["text"], "correction": error["correction"],
                             "explanation": error["explanation"]} for error in found[2]],
            "partial": False, "degraded": True}


def _understand(text: str) -> tuple[str, _Reading, list[dict[str, str]], str] | None:
    """(language, reading, spelling errors, masked text) of a text its most likely lexicon can judge, else None."""
    masked = mask(text)
    words = tokens(text, masked)
    found = _detect(words)
    if found is None:
        return None
    language, reading = found
    if reading.recognised < MIN_WORDS or reading.share < MIN_KNOWN_SHARE:
        return None  # decided before the spelling check, the costly part
    errors = spelling_errors(words, local_lexicon.lexicon(language))
    return (language, reading, errors, masked) if reading.acceptable(len(errors)) else None


@dataclass(frozen=True)
class _Reading:
    """How much of a text one lexicon recognises, and the frequencies of the words it measures."""

    recognised: int
    counted: int              # words that count for the share (unknown capitalised words are names: left out)
    vocabulary: list[float]   # Zipf values of the recognised words that are vocabulary (names left out)

    @property
    def share(self) -> float:
        return self.recognised / self.counted if self.counted else 0.0

    def acceptable(self, misspelled: int) -> bool:
        with_misspelled = min(1.0, (self.recognised + misspelled) / self.counted) if self.counted else 0.0
        return (self.recognised >= MIN_WORDS and self.share >= MIN_KNOWN_SHARE
                and with_misspelled >= MIN_RECOGNISED_SHARE)


def _detect(words: list[Token]) -> tuple[str, _Reading] | None:
    """(language, reading) of the supported language the text most likely is in, if its script is one of theirs."""
    letters = [w for w in words if not w.has_digit]
    script = _script(letters)
    if script is None:
        return None
    candidates = _SCRIPTS[script]
    lowered = [normalize(w.text, candidates[0]) for w in letters]
    hits = {}
    for lang in candidates:
        frequent = local_lexicon.signature(lang)
        hits[lang] = sum(1 for w in lowered if w in frequent)
    best = max(hits.values())
    tied = [lang for lang in candidates if hits[lang] == best]
    if best == 0:
        tied = tied[:1]  # no frequent word of any language: try the script's default only
    # Several languages share their most frequent words (es / pt, fr / it): their full lexicons decide.
    readings = {lang: _read(letters, local_lexicon.lexicon(lang)) for lang in tied}
    language = max(tied, key=lambda lang: readings[lang].share)
    return language, readings[language]


def _script(words: list[Token]) -> str | None:
    """The script most letters of the text are written in, if it is one the supported languages use."""
    letters = "".join(w.text for w in words)
    counts = {script: len(pattern.findall(letters)) for script, pattern in _SCRIPT_LETTERS.items()}
    script = max(counts, key=counts.__getitem__)
    return None if script == "other" or counts[script] == 0 else script


def _read(words: list[Token], lexicon: Lexicon) -> _Reading:
    language = lexicon.language
    infos = lexicon.lookup([normalize(w.text, language) for w in words])
    recognised = counted = 0
    vocabulary: list[float] = []
    for word, info in zip(words, infos, strict=True):
        pieces = [info] if _known(info) else _pieces(word.text, lexicon)
        name_like = word.text[:1].isupper() and not word.sentence_start and language not in _CAPITALISED_NOUNS
        if pieces is None:
            counted += not name_like  # an unknown capitalised word inside a sentence is a name, not a failure
            continue
        recognised += 1
        counted += 1
        if not name_like:
            vocabulary.extend(piece.zipf for piece in pieces)
    return _Reading(recognised, counted, vocabulary)


def _pieces(text: str, lexicon: Lexicon) -> list[WordInfo] | None:
    """The known pieces of a word joined by apostrophes or hyphens (j'ai, dell'anno, e-mail), None unless every
    piece longer than three letters is known."""
    parts = [p for p in text.replace("\u2019", "'").replace("-", "'").split("'") if p]
    if len(parts) < 2:
        return None
    infos = lexicon.lookup([normalize(p, lexicon.language) for p in parts])
    if any(len(p) > 3 and not _known(i) for p, i in zip(parts, infos, strict=True)):
        return None
    known = [i for i in infos if _known(i)]
    return known or None


def _known(info: WordInfo) -> bool:
    return info.in_dictionary or info.zipf >= KNOWN_ZIPF


def _feedback(name: str, errors: int, profile: local_cefr.VocabularyProfile, level: str) -> str:
    spelling = (f"It found {errors} word{'s' if errors != 1 else ''} that look{'s' if errors == 1 else ''} "
                f"misspelled." if errors else "It found no word that looks misspelled.")
    rough = " (very rough for a text this short)" if profile.words < 30 else ""
    return (f"This is a basic automatic check, made without the AI tutor, which is not available right now. It "
            f"looked only at spelling, against a dictionary of {name}, and at how common your words are; grammar, "
            f"word choice, punctuation and style were not checked, so there may be mistakes it does not show. "
            f"{spelling} About {profile.beyond_common:.0%} of your words are outside the 1,000 most common {name} "
            f"words; with the length of your sentences, this suggests roughly level {level}{rough}. Send your "
            f"text again later for full feedback.")


def _strengths(name: str, errors: int, profile: local_cefr.VocabularyProfile) -> list[str]:
    found = [f"You wrote a text of {profile.words} words in {name}."]
    if not errors and profile.words >= 10:
        found.append("The dictionary check found no spelling mistakes.")
    if profile.beyond_common >= 0.3 and profile.words >= 20:
        found.append(f"You use a good range of less common words ({profile.beyond_common:.0%} of them are "
                     f"outside the 1,000 most common).")
    if profile.mean_sentence_length >= 12:
        found.append(f"You write full sentences ({profile.mean_sentence_length:.0f} words on average).")
    return found


def _improvement_areas(errors: int, profile: local_cefr.VocabularyProfile) -> list[str]:
    areas = []
    if errors:
        areas.append(f"Spelling: check the {errors} word{'s' if errors != 1 else ''} listed as misspelled.")
    if profile.words >= 20 and profile.beyond_common < 0.15:
        areas.append("Vocabulary range: most of your words are among the 1,000 most common; try some more "
                     "precise ones.")
    if profile.words >= 20 and profile.mean_sentence_length < 8:
        areas.append("Sentence length: try linking short sentences into longer ones.")
    if not areas:
        areas.append("Grammar, word choice and style were not checked: a full analysis can say more.")
    return areas


def _tasks(errors: int, profile: local_cefr.VocabularyProfile) -> list[dict[str, str]]:
    tasks = []
    if errors:
        tasks.append({"title": "Correct the spelling",
                      "description": "Rewrite the sentences with the words listed as misspelled, checking each "
                                     "correction in a dictionary."})
    if profile.beyond_common < 0.3:
        tasks.append({"title": "Vary your vocabulary",
                      "description": "Replace five common words of your text with more precise ones, then read "
                                     "the text aloud."})
    tasks.append({"title": "Ask again for full feedback",
                  "description": "Send the same text later, when the full analysis is available again, for "
                                 "comments on grammar, vocabulary and style."})
    return tasks
