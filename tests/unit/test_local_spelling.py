"""The local analysis's spelling check (contract section 11): misspellings found with their correction in each
supported language, and no error for names, numbers, contractions, rare words or correct calibration texts."""
from __future__ import annotations

import re
import time

import pytest

from backend.providers import local_analysis
from backend.providers.local_spelling import MAX_ERRORS
from tests.unit.local_samples import ALL_SAMPLES, OTHER_LANGUAGES, SAMPLES


def errors_of(text: str) -> set[tuple[str, str]]:
    answer = local_analysis.analyze(text)
    assert answer is not None, text
    return {(e["text"], e["correction"]) for e in answer["errors"]}


# --- spelling -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("I did not recieve your letter becuase I was away. Thier house is big and definately beautifull.",
     {("recieve", "receive"), ("becuase", "because"), ("Thier", "Their"), ("definately", "definitely"),
      ("beautifull", "beautiful")}),
    ("In my contry there are many beatiful places and the food is delicous. I will wait untill tomorrow.",
     {("contry", "country"), ("beatiful", "beautiful"), ("delicous", "delicious"), ("untill", "until")}),
    ("Becuase of the rain we stayed at home and I told my freind's brother about the goverment.",
     {("Becuase", "Because"), ("freind", "friend"), ("goverment", "government")}),
])
def test_english_misspellings_are_found_with_their_correction(text, expected):
    assert errors_of(text) == expected


@pytest.mark.parametrize("language, text, expected", [
    ("es", "Ayer no pude salir porque estaba enfermo. Mañana tambien tengo que trabajar, pero el fin de semana "
           "es exelente.", {("tambien", "también"), ("exelente", "excelente")}),
    ("fr", "J'habite dans un apartement au centre-ville. Je parle francais et anglais.",
     {("apartement", "appartement"), ("francais", "français")}),
    ("it", "Mi piace molto studiare l'italiano, ma la grammatica è dificile. Il raggazzo di mia sorella è "
           "simpatico.", {("dificile", "difficile"), ("raggazzo", "ragazzo")}),
    ("de", "Ich wohne seit zwei Jahren in Berlin und arbeite in einem Büro. Das ist ziemlcih anstrengend, aber "
           "ich mag es.", {("ziemlcih", "ziemlich")}),
    ("pt", "Eu gosto muito de morar em Lisboa. O meu trabalho é exelente e os meus colegas são simpáticos.",
     {("exelente", "excelente")}),
    ("ru", "Я очень люблю читать книги. Мне очень интерестно узнавать новое. Вчера я читал весь вечер.",
     {("интерестно", "интересно")}),
])
def test_misspellings_are_found_in_other_languages(language, text, expected):
    assert local_analysis.detect_language(text) == language
    assert errors_of(text) == expected


def test_each_error_quotes_the_text_exactly_and_corrects_it():
    text = "Yesterday I recieve a mesage from my sister becuase she want to visit us. Becuase of that I was happy."
    answer = local_analysis.analyze(text)
    assert answer["errors"]
    for error in answer["errors"]:
        assert error["type"] == "spelling"
        assert re.search(rf"(?<!\w){re.escape(error['text'])}(?!\w)", text), error
        assert error["correction"] != error["text"] and error["correction"]
        assert error["text"] in error["explanation"] and error["correction"] in error["explanation"]
    # The same mistake is reported once; the capitalised one at a sentence start is a different text.
    assert [e["text"] for e in answer["errors"]].count("becuase") == 1


@pytest.mark.parametrize("text", [
    # Names inside sentences, including ones one letter away from common words (Marek / mark, Kait / wait).
    "Yesterday Siobhan and Marek went to London with Katja and Przemysław. Then Kait met Grzegorz in Kraków.",
    # Numbers, codes, ordinals, addresses, handles, file names.
    "We paid 25 dollars for 3 tickets on the 2nd of May, flight BA2490, at 10:45pm. Write to john.doe@mail.com "
    "or see https://www.exampel-site.com/pagez?id=12 and www.recieve.org, follow @recieveit and #becuase, "
    "then open notes_final.txt and reprot.pdf.",
    # Contractions and elisions, straight and typographic apostrophes; possessives.
    "I don't think it's true, you're right, they'd've known. I can’t and won’t, she isn’t here. Mary's car is "
    "at James' house and the children's toys are in the students' room.",
    # Hyphenated words, acronyms, mixed case, brands, informal words, British spellings, loanwords.
    "The well-known e-mail from my mother-in-law was about a state-of-the-art smartphone. NASA, the BBC and "
    "UNESCO use iPhones and WhatsApp. Gonna grab a selfie, okay? I realise the colour of the theatre in the "
    "centre was grey. We had croissants and espresso at the café.",
    # Valid but rare words and inflected forms missing from the spelling dictionary.
    "The ostensibly idiosyncratic predilections of the heterodox scholars were entrenched in their orthodoxies.",
])
def test_what_is_probably_not_a_misspelling_is_not_reported(text):
    assert errors_of(text) == set()


@pytest.mark.parametrize("language, level, text", ALL_SAMPLES)
def test_correct_sample_texts_get_no_spelling_error(language, level, text):
    assert local_analysis.detect_language(text) == language
    assert errors_of(text) == set()


@pytest.mark.parametrize("language", sorted(OTHER_LANGUAGES))
def test_other_supported_languages_are_detected_and_not_flagged(language):
    assert local_analysis.detect_language(OTHER_LANGUAGES[language]) == language
    assert errors_of(OTHER_LANGUAGES[language]) == set()


def test_a_huge_token_is_left_alone_quickly():
    text = SAMPLES["en"]["B1"][0] + " " + "recieve" * 700 + "."
    started = time.perf_counter()
    answer = local_analysis.analyze(text)
    assert time.perf_counter() - started < 1.0
    assert answer is not None and answer["errors"] == []


def test_errors_are_capped():
    words = ["recieve", "becuase", "definately", "seperate", "untill", "beleive", "freind", "goverment",
             "enviroment", "probaly", "beautifull", "tecnology", "comunicate", "familly", "experiance", "writting",
             "mesage", "contry", "beatiful", "intresting", "delicous", "turists", "castels", "mountins",
             "sincerly", "accomodation"]
    text = " ".join(f"I {w} it today and I think that the others also know it." for w in words)
    answer = local_analysis.analyze(text)
    assert len(answer["errors"]) == MAX_ERRORS
