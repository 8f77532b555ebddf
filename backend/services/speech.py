"""Speech: transcription and pronunciation assessment of decoded learner audio."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backend.errors import ValidationFailed
from backend.media.audio import DecodedAudio
from backend.observability.cost import charge
from backend.resilience.policy import Outcome, ProviderPolicy
from backend.services.keys import cache_key
from backend.services.language_model import configured

MAX_ASSESSMENT_SECONDS = 30.0  # Azure assesses at most 30 s of audio

if TYPE_CHECKING:
    from backend.providers.azure_speech import AzureSpeechClient


class SpeechService:
    """Runs Azure Speech on audio already decoded to 16 kHz mono PCM."""

    def __init__(self, azure: AzureSpeechClient | None, not_configured: str, transcribe_policy: ProviderPolicy,
                 pronunciation_policy: ProviderPolicy, price_per_hour: dict[str, float] | None = None):
        self._azure = azure
        self._not_configured = not_configured
        self._price_per_hour = price_per_hour or {}
        self._transcribe_policy = transcribe_policy
        self._pronunciation_policy = pronunciation_policy

    def _client(self) -> AzureSpeechClient:
        return configured(self._azure, "azure_speech", self._not_configured)

    def transcribe(self, audio: DecodedAudio, language: str) -> Outcome:
        """Return the transcript of the whole recording."""
        azure = self._client()
        # Keyed by the decoded samples, so the same speech in another container or file name is one entry.
        key = cache_key("transcribe", "v1", "azure", {"audio": audio.fingerprint, "language": language})

        def call(timeout: float) -> dict[str, Any]:
            result = azure.transcribe(audio.pcm16, audio.sample_rate, language, timeout=timeout)
            self._charge("transcribe", audio)
            return result

        # Long audio legitimately takes longer: the deadline, the call's limit and the breaker's judgement allow for it.
        return self._transcribe_policy.execute(key, call, input_seconds=azure.input_seconds(audio.duration_seconds),
                                               cost_bound=self._cost("transcribe", audio))

    def assess(self, audio: DecodedAudio, reference_text: str, language: str) -> Outcome:
        """Return pronunciation scores of the recording against the reference text."""
        azure = self._client()
        if audio.duration_seconds > MAX_ASSESSMENT_SECONDS:  # refused before any policy: the caller's input
            raise ValidationFailed(f"Pronunciation assessment is limited to {MAX_ASSESSMENT_SECONDS:.0f} s of audio",
                                   status=422)
        key = cache_key("pronunciation", "v1", "azure",
                        {"audio": audio.fingerprint, "language": language, "reference_text": reference_text})

        def call(timeout: float) -> dict[str, Any]:
            result = azure.assess_pronunciation(audio.pcm16, audio.sample_rate, reference_text, language,
                                                timeout=timeout)
            self._charge("pronunciation", audio)
            return result

        return self._pronunciation_policy.execute(key, call,
                                                  input_seconds=azure.input_seconds(audio.duration_seconds),
                                                  cost_bound=self._cost("pronunciation", audio))

    def _cost(self, feature: str, audio: DecodedAudio) -> float:
        """Azure bills recognised audio by the second: known before the call."""
        return audio.duration_seconds / 3600 * self._price_per_hour.get(feature, 0.0)

    def _charge(self, feature: str, audio: DecodedAudio) -> None:
        charge("azure_speech", self._cost(feature, audio), audio_seconds=audio.duration_seconds)
