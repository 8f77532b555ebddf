"""A CEFR level guessed from vocabulary and sentence length alone: a rough estimate, said to be one."""
# Word frequency bands, on wordfreq's Zipf scale (log10 of uses per billion words): in each supported language about
# 1,000 word forms reach Zipf 5 and about 7,000 reach Zipf 4 (counted in wordfreq 3.1.1: English 1,111 / 7,223,
# Spanish 890 / 7,269, German 885 / 7,169). CEFR vocabulary sizes grow from a few hundred words (A1) to several
# thousand (B2) and beyond (C1, C2), so the share of a text outside these bands rises with the level.
#
# Calibrated on the sample texts in tests/unit/local_samples.py (three per level in English, some in Spanish,
# French and German), the measures behave like this:
#   - sentence length separates A1 (5-7 words a sentence), A2 (10-11) and B1 (13-18); vocabulary barely does:
#     texts up to B1 keep 90-100% of their words within the ~7,000 commonest forms;
#   - vocabulary separates B2 (4-11% beyond ~7,000, 30-39% beyond ~1,000), C1 (18-35% beyond ~7,000) and C2
#     (40-47% beyond ~7,000, 17-27% beyond Zipf 3), while sentences stay at 17-28 words from B2 on.
# So the score is a sentence-length part worth up to 3 (B2) plus a vocabulary part; each unit is one level, A1 = 0:
#   length = (mean sentence length - 5) / 5.5, within 0..3    (6 words -> 0.2, 10.5 -> 1, 16 -> 2, 21.5+ -> 3)
#   vocabulary = 5 x (share beyond ~7,000 - 0.05) + 2 x (share beyond ~1,000 - 0.25), each term at least 0
# and the level is the score rounded (A1 < 0.5 <= A2 < 1.5 <= B1 < 2.5 <= B2 < 3.5 <= C1 < 4.5 <= C2). Every sample
# lands within one level of its label. It cannot see grammar, accuracy or coherence, which define CEFR levels as
# much as vocabulary does: the confidence stays at or below MAX_CONFIDENCE whatever the text.
from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

LEVELS = ("A1", "A2", "B1", "B2", "C1", "C2")
COMMON_ZIPF = 5.0    # ~1,000 commonest forms
FREQUENT_ZIPF = 4.0  # ~7,000 commonest forms
RARE_ZIPF = 3.0      # ~30,000-60,000 commonest forms
# A text without sentence punctuation reads as one long sentence; beyond this many words its length says nothing.
RUN_ON_WORDS = 30
RUN_ON_CAP = 15.0
MIN_CONFIDENCE = 0.15
MAX_CONFIDENCE = 0.35  # reached at CONFIDENT_WORDS: a longer text gives steadier shares, never a reliable level
CONFIDENT_WORDS = 150


@dataclass(frozen=True)
class VocabularyProfile:
    words: int                # words measured (known to the lexicon, names left out)
    beyond_common: float      # share below COMMON_ZIPF
    beyond_frequent: float    # share below FREQUENT_ZIPF
    rare: float               # share below RARE_ZIPF
    mean_sentence_length: float

    @classmethod
    def measure(cls, zipfs: Iterable[float], sentence_lengths: list[int]) -> VocabularyProfile:
        values = list(zipfs)
        count = len(values) or 1
        mean = statistics.fmean(sentence_lengths) if sentence_lengths else 0.0
        if len(sentence_lengths) == 1 and sentence_lengths[0] > RUN_ON_WORDS:
            mean = min(mean, RUN_ON_CAP)
        return cls(len(values), sum(v < COMMON_ZIPF for v in values) / count,
                   sum(v < FREQUENT_ZIPF for v in values) / count, sum(v < RARE_ZIPF for v in values) / count, mean)


def score(profile: VocabularyProfile) -> float:
    """The level as a number, A1 = 0 .. C2 = 5 (see the calibration above)."""
    length = min(max(profile.mean_sentence_length - 5.0, 0.0) / 5.5, 3.0)
    vocabulary = 5.0 * max(0.0, profile.beyond_frequent - 0.05) + 2.0 * max(0.0, profile.beyond_common - 0.25)
    return length + vocabulary


def level(profile: VocabularyProfile) -> str:
    return LEVELS[min(len(LEVELS) - 1, max(0, int(score(profile) + 0.5)))]


def confidence(profile: VocabularyProfile) -> float:
    share = min(1.0, profile.words / CONFIDENT_WORDS)
    return round(MIN_CONFIDENCE + (MAX_CONFIDENCE - MIN_CONFIDENCE) * share, 2)


def assessment(profile: VocabularyProfile, language_name: str) -> dict[str, Any]:
    """The cefr_assessment of the answer: level, a low confidence, and a rationale naming what was measured."""
    return {
        "level": level(profile),
        "confidence": confidence(profile),
        "rationale": (
            f"Estimated from vocabulary and sentence length only: {profile.beyond_common:.0%} of the "
            f"{profile.words} words measured are outside the ~1,000 most frequent {language_name} word forms and "
            f"{profile.beyond_frequent:.0%} outside the ~7,000 most frequent (wordfreq Zipf frequency below "
            f"{COMMON_ZIPF:g} and {FREQUENT_ZIPF:g}); sentences average {profile.mean_sentence_length:.1f} words. "
            f"Grammar, accuracy and coherence were not assessed, hence the low confidence."),
    }
