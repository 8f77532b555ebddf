"""Speech out: a text spoken by an Azure voice, as mp3, wav or ogg, cached in every tier like any AI answer
(single-flight, stale-if-error), and the voices a language has."""
from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

from backend.db.speech_clips import Spoken
from backend.errors import ValidationFailed
from backend.observability import metrics
from backend.observability.cost import charge
from backend.resilience.policy import Outcome, ProviderPolicy
from backend.services.keys import cache_key
from backend.services.language_model import configured

if TYPE_CHECKING:
    from backend.providers.azure_tts import AzureSynthesisClient

logger = logging.getLogger(__name__)
PROVIDER = "azure_tts"
# The voice a language speaks with when none is named (Azure's neural voices; any other locale must name one).
DEFAULT_VOICES = {
    "en-US": "en-US-JennyNeural", "en-GB": "en-GB-SoniaNeural", "en-AU": "en-AU-NatashaNeural",
    "fr-FR": "fr-FR-DeniseNeural", "de-DE": "de-DE-KatjaNeural", "es-ES": "es-ES-ElviraNeural",
    "es-MX": "es-MX-DaliaNeural", "it-IT": "it-IT-ElsaNeural", "pt-BR": "pt-BR-FranciscaNeural",
    "pt-PT": "pt-PT-RaquelNeural", "nl-NL": "nl-NL-ColetteNeural", "ja-JP": "ja-JP-NanamiNeural",
    "zh-CN": "zh-CN-XiaoxiaoNeural", "ko-KR": "ko-KR-SunHiNeural", "ru-RU": "ru-RU-SvetlanaNeural",
    "pl-PL": "pl-PL-ZofiaNeural", "tr-TR": "tr-TR-EmelNeural", "ar-SA": "ar-SA-ZariyahNeural",
}


def voice_for(language: str, voice: str | None) -> str:
    """The voice to speak ``language`` with: the one named, if it belongs to the language (422 otherwise: an English
    voice reading French is not what a learner should hear), else the language's default."""
    if voice is None:
        default = DEFAULT_VOICES.get(language)
        if default is None:
            raise ValidationFailed(f"There is no default voice for {language}: name one (GET /api/voices)",
                                   status=422, details=[{"field": "voice", "message": "required for this language"}])
        return default
    if not voice.lower().startswith(language.lower() + "-"):
        raise ValidationFailed(f"The voice {voice} does not speak {language}", status=422,
                               details=[{"field": "voice", "message": f"not a {language} voice"}])
    return voice


def spoken(text: str, language: str, voice: str | None, rate: float = 1.0, fmt: str = "mp3") -> Spoken:
    """A synthesis request with its voice resolved (voice_for)."""
    return Spoken(text, language, voice_for(language, voice), round(rate, 2), fmt)


@functools.lru_cache(maxsize=256)
def speech_key(request: Spoken) -> str:
    """The cache key of a synthesis request (remembered: a hit asks for it twice, before the limits and after)."""
    return cache_key("speech", "v1", "azure", {"text": request.text, "language": request.language,
                                               "voice": request.voice, "rate": request.rate,
                                               "format": request.format})


class SynthesisService:
    """Synthesises speech through Azure, one cache entry per (text, language, voice, rate, format)."""

    def __init__(self, azure: AzureSynthesisClient | None, not_configured: str, policy: ProviderPolicy,
                 voices_policy: ProviderPolicy, price_per_mchars: float = 0.0):
        self._azure = azure
        self._not_configured = not_configured
        self._policy = policy
        self._voices_policy = voices_policy
        self._price_per_mchars = price_per_mchars

    def synthesize(self, request: Spoken) -> Outcome:
        """The audio (bytes) of ``request``: from the cache when the same was synthesised before."""
        azure = configured(self._azure, PROVIDER, self._not_configured)
        key = speech_key(request)

        def call(timeout: float) -> bytes:
            audio = azure.synthesize(request.text, request.language, request.voice, request.rate, request.format,
                                     timeout=timeout)
            metrics.AI_TTS_CHARACTERS.labels(PROVIDER).inc(len(request.text))
            charge(PROVIDER, price)
            return audio

        # Synthesis is billed by the character: its cost is known before the call.
        price = len(request.text) / 1_000_000 * self._price_per_mchars
        return self._policy.execute(key, call, cost_bound=price)

    def read_ahead(self, request: Spoken) -> None:
        """Before the request's rate limits are taken: have the cached clip read in their Redis round trip when it
        would come from Redis (TieredCache.prefetch). Nothing when synthesis is not configured (the view says so)."""
        if self._azure is not None and self._policy.cache is not None:
            self._policy.cache.prefetch(speech_key(request))

    def forget_read_ahead(self) -> None:
        """The request is over: a clip read ahead and not looked up is dropped."""
        if self._policy.cache is not None:
            self._policy.cache.forget_prefetched()

    def voices(self, language: str) -> Outcome:
        """The voices of a language (cached like any answer: a day by default)."""
        azure = configured(self._azure, PROVIDER, self._not_configured)

        def call(timeout: float) -> dict[str, Any]:
            return {"voices": azure.voices(language, timeout=timeout)}

        return self._voices_policy.execute(cache_key("voices", "v1", "azure", {"language": language}), call)
