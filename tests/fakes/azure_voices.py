"""The fake Azure synthesis service's voices, answered at ``GET /cognitiveservices/voices/list`` in Azure's JSON shape.

The Speech SDK (1.53) configured with ``host="ws://H:P"`` fetches ``GET http://H:P/cognitiveservices/voices/list`` (no
query; headers ``Ocp-Apim-Subscription-Key``, an empty ``Authorization: Bearer``, ``X-ConnectionId``) and filters by
locale itself. It needs an HTTP/1.1 answer: an HTTP/1.0 one fails with ``HTTPAPI_READ_DATA_FAILED``.
"""
from __future__ import annotations

VOICES_PATH = "/cognitiveservices/voices/list"

# (locale, locale name, [(short name suffix, gender), ...]); the SDK's own default voice is among them.
_LOCALES = [
    ("en-US", "English (United States)", [("JennyNeural", "Female"), ("GuyNeural", "Male"), ("AriaNeural", "Female"),
                                          ("AvaMultilingualNeural", "Female")]),
    ("en-GB", "English (United Kingdom)", [("SoniaNeural", "Female"), ("RyanNeural", "Male")]),
    ("fr-FR", "French (France)", [("DeniseNeural", "Female"), ("HenriNeural", "Male")]),
    ("de-DE", "German (Germany)", [("KatjaNeural", "Female"), ("ConradNeural", "Male")]),
    ("es-ES", "Spanish (Spain)", [("ElviraNeural", "Female"), ("AlvaroNeural", "Male")]),
    ("it-IT", "Italian (Italy)", [("ElsaNeural", "Female"), ("DiegoNeural", "Male")]),
    ("pt-BR", "Portuguese (Brazil)", [("FranciscaNeural", "Female"), ("AntonioNeural", "Male")]),
    ("ja-JP", "Japanese (Japan)", [("NanamiNeural", "Female"), ("KeitaNeural", "Male")]),
]


def voice_list() -> list[dict]:
    """Every voice, as the service lists them."""
    voices = []
    for locale, locale_name, speakers in _LOCALES:
        for suffix, gender in speakers:
            short = f"{locale}-{suffix}"
            display = suffix.removesuffix("Neural").removesuffix("Multilingual")
            voices.append({
                "Name": f"Microsoft Server Speech Text to Speech Voice ({locale}, {suffix})",
                "DisplayName": display, "LocalName": display, "ShortName": short, "Gender": gender,
                "Locale": locale, "LocaleName": locale_name, "SampleRateHertz": "24000", "VoiceType": "Neural",
                "Status": "GA", "WordsPerMinute": "150"})
    return voices


def known_voice(name: str) -> bool:
    """Whether the service speaks with this voice (short name, or the long form the service also accepts)."""
    return any(name in (voice["ShortName"], voice["Name"]) for voice in voice_list())
