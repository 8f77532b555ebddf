"""SSML building: whatever the text holds, an XML parser reads back exactly one voice speaking exactly that text."""
from __future__ import annotations

import math
from xml.etree import ElementTree

import pytest

from backend.errors import ValidationFailed
from backend.media import ssml

NS = "{http://www.w3.org/2001/10/synthesis}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
INJECTIONS = [
    '</prosody></voice><voice name="en-US-GuyNeural">hijacked',
    '<break time="100s"/>',
    "&amp; &lt; &#x3C; &unknown; &",
    "<![CDATA[x]]> and ]]>",
    "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e 'boom'>]>&e;",
    "<!-- comment --> it's \"quoted\" 'too'",
    '<prosody rate="x-slow">slow</prosody><mstts:express-as style="angry">',
]


def parse(document: str) -> ElementTree.Element:
    return ElementTree.fromstring(document)


def spoken(document: str) -> tuple[list[str], str, str]:
    """(voice names, the text content of the voices, the prosody rate) as a server reads them."""
    root = parse(document)
    voices = root.findall(f"{NS}voice")
    rates = [p.get("rate") for p in root.iter(f"{NS}prosody")]
    assert len(rates) == 1
    return [v.get("name") for v in voices], "".join("".join(v.itertext()) for v in voices), rates[0]


def test_the_document_has_the_expected_shape():
    document = ssml.build_ssml("Hello there.", language="en-US", voice="en-US-JennyNeural", rate=1.25)
    root = parse(document)

    assert root.tag == f"{NS}speak" and root.get("version") == "1.0" and root.get(XML_LANG) == "en-US"
    [voice] = list(root)
    [prosody] = list(voice)
    assert (voice.tag, voice.get("name")) == (f"{NS}voice", "en-US-JennyNeural")
    assert (prosody.tag, prosody.get("rate"), prosody.text) == (f"{NS}prosody", "1.25", "Hello there.")


@pytest.mark.parametrize("text", INJECTIONS)
def test_markup_in_the_text_is_only_ever_text(text):
    document = ssml.build_ssml(text, language="en-US", voice="en-US-JennyNeural", rate=1.0)

    assert spoken(document) == (["en-US-JennyNeural"], text, "1.0")
    root = parse(document)
    assert [element.tag for element in root.iter()] == [f"{NS}speak", f"{NS}voice", f"{NS}prosody"]


def test_quotes_are_escaped_too():
    document = ssml.build_ssml("say \"hi\" and 'bye'", language="en-US", voice="en-US-GuyNeural")

    assert "&quot;hi&quot;" in document and "&apos;bye&apos;" in document


def test_control_characters_are_dropped_but_tabs_and_newlines_kept():
    text = "a\x00b\x07c\x1bd\x7fe\x85f\tg\nh\ri\ud800j\ufffek\uffffl"

    document = ssml.build_ssml(text, language="en-US", voice="en-US-JennyNeural")

    assert spoken(document)[1] == "abcdef\tg\nh\nijkl"  # an XML parser reads a lone \r as \n
    assert ssml.speakable_text(text) == "abcdef\tg\nh\rijkl"
    document.encode("utf-8")  # no lone surrogate left to break the encoding


def test_unicode_text_is_kept_as_is():
    text = "Grüße, 你好, Привет — ça va? 🙂"
    assert spoken(ssml.build_ssml(text, language="de-DE", voice="de-DE-KatjaNeural"))[1] == text


@pytest.mark.parametrize("text", ["", "   ", "\x00\x01\x02", "\n\t"])
def test_text_with_nothing_to_speak_is_refused(text):
    with pytest.raises(ValidationFailed):
        ssml.build_ssml(text, language="en-US", voice="en-US-JennyNeural")


@pytest.mark.parametrize("voice", ["en-US-JennyNeural", "zh-CN-henan-YundengNeural", "iu-Cans-CA-SiqiniqNeural",
                                   "en-US-Ava:DragonHDLatestNeural", "fr-FR-DeniseNeural"])
def test_azure_voice_names_are_accepted(voice):
    assert spoken(ssml.build_ssml("hi", language="en-US", voice=voice))[0] == [voice]


@pytest.mark.parametrize("voice", ['en-US-Jenny" xml:lang="fr', "en-US-Jenny><voice", "JennyNeural", "",
                                   "en-US-Jenny Neural", "en-US-Jenny&amp;", "EN-us-JennyNeural", "en-US-" + "a" * 100,
                                   "en-US-JennyNeural\n", "../en-US-JennyNeural"])
def test_anything_else_as_a_voice_is_refused(voice):
    with pytest.raises(ValidationFailed) as refused:
        ssml.build_ssml("hi", language="en-US", voice=voice)
    assert refused.value.details[0]["field"] == "voice"


@pytest.mark.parametrize("language, normalized", [("en-US", "en-US"), ("en-us", "en-US"), (" fr-fr ", "fr-FR"),
                                                  ("zh-hans-cn", "zh-Hans-CN"), ("es-419", "es-419")])
def test_languages_are_normalised(language, normalized):
    assert ssml.normalize_language(language) == normalized


@pytest.mark.parametrize("language", ["en", "english", "en-US-x", 'en-US" a="b', "e1-US", "", "en_US", "en-USA"])
def test_anything_else_as_a_language_is_refused(language):
    with pytest.raises(ValidationFailed):
        ssml.build_ssml("hi", language=language, voice="en-US-JennyNeural")


@pytest.mark.parametrize("rate, attribute", [(0.5, "0.5"), (1, "1.0"), (1.0, "1.0"), (1.25, "1.25"), (2.0, "2.0"),
                                             (1 / 3 + 1, "1.333"), (0.75, "0.75")])
def test_rates_are_written_as_multipliers(rate, attribute):
    assert ssml.rate_attribute(rate) == attribute
    assert spoken(ssml.build_ssml("hi", language="en-US", voice="en-US-JennyNeural", rate=rate))[2] == attribute


@pytest.mark.parametrize("rate", [0.49, 2.01, 0, -1, math.nan, math.inf, True, "1.0", None])
def test_rates_out_of_range_are_refused(rate):
    with pytest.raises(ValidationFailed):
        ssml.rate_attribute(rate)
