"""Each provider's settings in a group of its own (environment names as in the contract: GEMINI_*, FALLBACK_LLM_*,
AZURE_SPEECH_*, and their PRICE_*); backend.settings.Settings puts the groups together."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator


class GeminiSettings(BaseModel):
    """Google Gemini through google-genai: the primary language model."""

    gemini_api_key: SecretStr = SecretStr("")
    gemini_model: str = Field("gemini-2.5-flash", min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    gemini_base_url: str = ""
    gemini_timeout_seconds: float = Field(20.0, gt=0, le=600)
    gemini_max_output_tokens: int = Field(4096, ge=64, le=65536)
    # Thinking tokens of 2.5 models count against the output limit: give them their own budget (-1 = the model's
    # dynamic default, 0 = off), added on top of GEMINI_MAX_OUTPUT_TOKENS so the answer keeps its room.
    gemini_thinking_budget: int = Field(1024, ge=-1, le=32768)
    # Bulkhead: concurrent Gemini calls per worker process; beyond it, an immediate 503. Unset: three quarters of
    # WEB_THREADS (24 of 32), so a slow Gemini leaves threads for health checks, cached answers and Azure.
    gemini_max_concurrency: int | None = Field(None, ge=1, le=1024)
    # USD per million tokens (estimates; set your contract's); thinking tokens bill as output.
    price_gemini_input_per_mtok: float = Field(0.30, ge=0)
    price_gemini_output_per_mtok: float = Field(2.50, ge=0)

    @field_validator("gemini_base_url")
    @classmethod
    def _valid_gemini_base_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an absolute URL (http:// or https://)")
        return value.rstrip("/")

    @property
    def gemini_configured(self) -> bool:
        """Whether Gemini calls can be made."""
        return bool(self.gemini_api_key.get_secret_value())


class FallbackSettings(BaseModel):
    """A fallback language model: any OpenAI-compatible chat-completions server, through the openai SDK."""

    # An OpenAI-compatible chat-completions server (OpenAI, Azure OpenAI, vLLM, Ollama,
    # llama.cpp, a LiteLLM proxy). The base URL includes the API prefix (https://api.openai.com/v1,
    # http://ollama:11434/v1); empty = no fallback. An empty key is sent as a dummy (keyless local servers).
    fallback_llm_base_url: str = ""
    fallback_llm_api_key: SecretStr = SecretStr("")
    fallback_llm_model: str = Field("gpt-4o-mini", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:/@-]+$")
    fallback_llm_timeout_seconds: float = Field(20.0, gt=0, le=600)
    # json_schema (the server enforces the answer's schema), json_object (the schema goes in the prompt: older
    # vLLM, llama.cpp, Ollama, many proxies) or auto (json_schema until the server refuses it, then json_object).
    fallback_llm_json_mode: Literal["auto", "json_schema", "json_object"] = "auto"
    # Bulkhead for fallback calls per worker process; unset: the same rule as GEMINI_MAX_CONCURRENCY.
    fallback_llm_max_concurrency: int | None = Field(None, ge=1, le=1024)
    # USD per million tokens (defaults: gpt-4o-mini's list price; 0 for a self-hosted model).
    price_fallback_input_per_mtok: float = Field(0.15, ge=0)
    price_fallback_output_per_mtok: float = Field(0.60, ge=0)

    @field_validator("fallback_llm_base_url")
    @classmethod
    def _valid_http_base_url(cls, value: str) -> str:
        value = value.strip()
        if value and (not value.startswith(("http://", "https://")) or not value.split("://", 1)[1].strip("/")):
            raise ValueError("must be an absolute http(s):// URL, e.g. https://api.openai.com/v1")
        return value.rstrip("/")

    @property
    def fallback_configured(self) -> bool:
        """Whether a fallback language model is set (a key is optional: local servers need none)."""
        return bool(self.fallback_llm_base_url)


class AzureSpeechSettings(BaseModel):
    """Azure Speech through azure-cognitiveservices-speech: recognition, pronunciation assessment, synthesis."""

    azure_speech_key: SecretStr = SecretStr("")
    azure_speech_region: str = ""
    azure_speech_host: str = ""
    azure_speech_timeout_seconds: float = Field(30.0, gt=0, le=600)
    azure_speech_max_concurrency: int = Field(16, ge=1, le=256)
    # USD per hour of audio sent (estimates; set your contract's).
    price_azure_speech_per_hour: float = Field(1.00, ge=0)
    price_azure_pronunciation_per_hour: float = Field(1.30, ge=0)
    # Speech synthesis: USD per million characters (neural voices), and syntheses in flight per worker (its
    # bulkhead; it has a breaker of its own, apart from recognition's).
    price_azure_tts_per_mchars: float = Field(16.0, ge=0)
    azure_tts_max_concurrency: int = Field(16, ge=1, le=256)

    @field_validator("azure_speech_host")
    @classmethod
    def _valid_azure_host(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError("must be an absolute URL (http(s):// or ws(s)://)")
        return value.rstrip("/")

    @property
    def azure_configured(self) -> bool:
        """Whether Azure Speech calls can be made."""
        key = self.azure_speech_key.get_secret_value()
        return bool(key) and bool(self.azure_speech_region or self.azure_speech_host)
