"""SSML for Azure speech synthesis: a caller's text is always spoken as text, never read as markup.

The text is XML-escaped (``&``, ``<``, ``>`` and both quotes), so ``</voice><voice name="x">``,
``<break time="100s"/>``, ``&amp;`` or ``]]>`` are read aloud literally; characters XML 1.0 cannot carry (control
characters other than tab, newline and carriage return, lone surrogates, U+FFFE/U+FFFF) are dropped, since one of
them makes the whole document unreadable to the service. The voice and language must match strict patterns before
they reach an attribute.
"""
from __future__ import annotations

import math
import re
from xml.sax.saxutils import escape, quoteattr

from backend.errors import ValidationFailed

SSML_NAMESPACE = "http://www.w3.org/2001/10/synthesis"
MIN_RATE, MAX_RATE = 0.5, 2.0
MAX_VOICE_LENGTH = 100
_ESCAPES = {'"': "&quot;", "'": "&apos;"}  # escape() itself handles &, < and >
# Locales: language, optional script, region as two letters or three digits (en-US, zh-Hans-CN).
LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[A-Z][a-z]{3})?-(?:[A-Z]{2}|[0-9]{3})")
# Azure voice short names: en-US-JennyNeural, zh-CN-henan-YundengNeural, iu-Cans-CA-SiqiniqNeural,
# en-US-Ava:DragonHDLatestNeural.
VOICE = re.compile(r"[a-z]{2,3}(?:-[A-Z][a-z]{3})?-(?:[A-Z]{2}|[0-9]{3})(?:-[a-z]+)?-[A-Za-z0-9]+(?::[A-Za-z0-9]+)?")
# Characters XML 1.0 cannot carry, tab, newline and carriage return excepted; C1 controls are control characters too.
_UNSPEAKABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def speakable_text(text: str) -> str:
    """The text as it will be spoken: control characters and characters XML cannot carry removed."""
    return _UNSPEAKABLE.sub("", text)


def normalize_language(language: str) -> str:
    """``en-us`` → ``en-US``; anything that is not a language-region tag is refused."""
    parts = language.strip().split("-")
    if len(parts) in (2, 3):
        parts = [parts[0].lower(), *([parts[1].title()] if len(parts) == 3 else []), parts[-1].upper()]
    normalized = "-".join(parts)
    if not LANGUAGE.fullmatch(normalized):
        raise ValidationFailed(f"language must be a locale such as en-US, not {language[:40]!r}",
                               details=[{"field": "language", "message": "not a locale"}], status=422)
    return normalized


def check_voice(voice: str) -> str:
    """The voice name, if it is an Azure voice short name (e.g. en-US-JennyNeural)."""
    if len(voice) > MAX_VOICE_LENGTH or not VOICE.fullmatch(voice):
        raise ValidationFailed(f"voice must be an Azure voice name such as en-US-JennyNeural, not {voice[:40]!r}",
                               details=[{"field": "voice", "message": "not a voice name"}], status=422)
    return voice


def rate_attribute(rate: float) -> str:
    """The prosody rate as a multiplier of the voice's normal speed ("1.25"), which SSML 1.0 and Azure both read as
    such; a percentage would be ambiguous (Azure reads "50%" as a change of +50 %, SSML 1.1 as half speed)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or not (
            MIN_RATE <= rate <= MAX_RATE):
        raise ValidationFailed(f"rate must be between {MIN_RATE} and {MAX_RATE}",
                               details=[{"field": "rate", "message": "out of range"}], status=422)
    text = f"{float(rate):.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def build_ssml(text: str, *, language: str, voice: str, rate: float = 1.0) -> str:
    """One ``<speak>`` document: ``text`` read by ``voice`` at ``rate``, the text escaped so it is only ever spoken."""
    spoken = speakable_text(text)
    if not spoken.strip():
        raise ValidationFailed("text has nothing to speak", details=[{"field": "text", "message": "empty"}],
                               status=422)
    return (f'<speak version="1.0" xmlns="{SSML_NAMESPACE}" xml:lang={quoteattr(normalize_language(language))}>'
            f"<voice name={quoteattr(check_voice(voice))}><prosody rate={quoteattr(rate_attribute(rate))}>"
            f"{escape(spoken, _ESCAPES)}</prosody></voice></speak>")
