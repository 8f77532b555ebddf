"""The local analysis's rough CEFR level from vocabulary and sentence length, checked on the calibration texts."""
from __future__ import annotations

import itertools

import pytest

from backend.providers import local_analysis, local_cefr, local_lexicon
from tests.unit.local_samples import ALL_SAMPLES, LEVELS, SAMPLES


def test_the_level_rises_with_the_sample_level():
    for language, levels in SAMPLES.items():
        scores = {level: [local_cefr.score(_profile(text, language)) for text in texts]
                  for level, texts in levels.items()}
        labelled = [level for level in LEVELS if level in scores]
        for lower, higher in itertools.pairwise(labelled):
            assert max(scores[lower]) < min(scores[higher]) + 0.5, (language, lower, higher, scores)
        assert max(scores["A1"]) < min(scores["C1"]), (language, scores)


@pytest.mark.parametrize("language, level, text", ALL_SAMPLES)
def test_each_sample_is_placed_within_one_level(language, level, text):
    got = local_analysis.analyze(text)["cefr_assessment"]["level"]
    assert abs(LEVELS.index(got) - LEVELS.index(level)) <= 1, (got, level)


def test_c1_texts_rank_above_a1_texts():
    for language, levels in SAMPLES.items():
        a1 = [LEVELS.index(local_analysis.analyze(t)["cefr_assessment"]["level"]) for t in levels["A1"]]
        c1 = [LEVELS.index(local_analysis.analyze(t)["cefr_assessment"]["level"]) for t in levels["C1"]]
        assert max(a1) < min(c1), (language, a1, c1)


def test_a_text_without_punctuation_is_not_ranked_high_for_its_length():
    text = " ".join(SAMPLES["en"]["A2"]).replace(".", "").replace(",", "").replace("?", "")
    level = local_analysis.analyze(text)["cefr_assessment"]["level"]
    assert LEVELS.index(level) <= LEVELS.index("B1")


def _profile(text: str, language: str) -> local_cefr.VocabularyProfile:
    from backend.providers.local_text import sentence_lengths, tokens

    reading = local_analysis._read([t for t in tokens(text) if not t.has_digit], local_lexicon.lexicon(language))
    return local_cefr.VocabularyProfile.measure(reading.vocabulary, sentence_lengths(text))
