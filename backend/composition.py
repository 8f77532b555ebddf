"""The composition root: every service, policy, store and provider client a worker needs, built once per app in
create_app (Flask-free) and reached through backend.http.context.current_backend()."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from backend.db.engine import Database
from backend.jobs.engine import JobEngine
from backend.llm.corrections import CORRECTIONS
from backend.llm.lessons import EXERCISES, LESSON_PLAN, SECTION_CONTENT
from backend.llm.parse import ANALYSIS, EXPLANATION, SUBTOPICS
from backend.media.fetch import AudioFetcher
from backend.observability.cost import TokenPrices
from backend.providers import local_analysis
from backend.providers.registry import Provider, ProviderRegistry
from backend.resilience.breaker import CircuitBreaker
from backend.resilience.breaker_state import BreakerConfig
from backend.resilience.bulkhead import Bulkhead
from backend.resilience.policy import ProviderPolicy
from backend.resilience.retry import RetryPolicy
from backend.resilience.shared_state import SharedState, build_shared_state
from backend.resilience.spend_meter import SpendMeter
from backend.services.analysis import AnalysisService
from backend.services.budgets import BudgetService
from backend.services.clips import ClipService
from backend.services.content import ContentService
from backend.services.conversations import ConversationService
from backend.services.jobs import JobService
from backend.services.language_model import LanguageModel, Route
from backend.services.learner_data import LearnerDataService, Retention
from backend.services.lessons import LessonGenerator
from backend.services.speech import SpeechService
from backend.services.speech_out import SynthesisService
from backend.services.turn_stream import TurnStreams
from backend.services.turn_types import TurnSettings
from backend.services.turns import TurnService
from backend.serving.drain import Drain
from backend.settings import Settings

logger = logging.getLogger(__name__)

# Language models in order of preference: the primary, then stand-ins for its outages.
LANGUAGE_MODELS = ("gemini", "fallback")
GEMINI_NOT_CONFIGURED = "Gemini is not configured: set GEMINI_API_KEY (and GEMINI_BASE_URL to use a proxy)"
AZURE_NOT_CONFIGURED = ("Azure Speech is not configured: set AZURE_SPEECH_KEY and AZURE_SPEECH_REGION "
                        "(or AZURE_SPEECH_HOST for a container or proxy)")


@dataclass
class Backend:
    """The services and providers of one app."""

    settings: Settings
    shared: SharedState
    providers: ProviderRegistry
    analysis: AnalysisService
    content: ContentService
    speech: SpeechService
    speech_out: SynthesisService
    clips: ClipService
    audio_fetcher: AudioFetcher
    database: Database
    conversations: ConversationService
    turns: TurnService
    streams: TurnStreams
    learner_data: LearnerDataService
    lessons: LessonGenerator
    jobs: JobService
    executor: ThreadPoolExecutor
    budgets: BudgetService
    # Begun by the gunicorn worker's SIGTERM (config/gunicorn.conf.py hands it over); /health/ready reads it.
    drain: Drain

    @property
    def breakers(self) -> dict[str, CircuitBreaker]:
        """Every provider's breaker, by name."""
        return self.providers.breakers

    def warm_up(self) -> None:
        """Prepare, without any provider call, what the first requests of a new worker would otherwise wait for."""
        for name in LANGUAGE_MODELS:
            client = self.providers[name].client if name in self.providers else None
            if client is not None:
                client.warm_up([operation.model for operation in (ANALYSIS, SUBTOPICS, EXPLANATION, CORRECTIONS,
                                                                  LESSON_PLAN, SECTION_CONTENT, EXERCISES)])
        # English only (0.3 s, +2 MiB of word lists): the other languages load on first use (0.1-0.85 s each),
        # so that workers starting together do not each hold 150 MB of loading peak.
        local_analysis.warm_up(["en"])

    def close(self) -> None:
        """Release provider connections, thread pools and database connections (on worker exit)."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.providers.close()
        self.shared.close()
        self.database.dispose()


def build_backend(settings: Settings) -> Backend:
    """Create the provider clients (lazy: no connection is made here), policies and services."""
    shared = build_shared_state(settings)
    providers = ProviderRegistry(
        Provider("gemini", _gemini_client(settings), build_breaker("gemini", settings, shared),
                 Bulkhead("gemini", settings.gemini_bulkhead)),
        # The stand-in is listed only when set: without one nothing is missing, so health does not say degraded.
        *([Provider("fallback", _fallback_client(settings), build_breaker("fallback", settings, shared),
                    Bulkhead("fallback", settings.fallback_bulkhead))]
          if settings.fallback_configured else []),
        Provider("azure_speech", _azure_client(settings), build_breaker("azure_speech", settings, shared),
                 Bulkhead("azure_speech", settings.azure_speech_max_concurrency)),
        # Synthesis has a breaker of its own: a text-to-speech outage must not stop recognition, nor the reverse.
        Provider("azure_tts", _synthesis_client(settings), build_breaker("azure_tts", settings, shared),
                 Bulkhead("azure_tts", settings.azure_tts_max_concurrency)),
    )
    retry = RetryPolicy(settings.retry_max_attempts, retry_after_cap=settings.retry_after_cap_seconds)

    # A turn's corrections and summaries run beside its reply, on the turn executor's threads: they get bulkheads
    # of their own, the executor's size, so they never take a slot a request thread needs for a reply (measured:
    # with one shared bulkhead, 32 concurrent turns on two workers had replies refused while corrections held slots).
    beside_limit = max(2, settings.web_threads // 2)
    beside = {name: Bulkhead(f"{name} (corrections and summaries)", beside_limit) for name in LANGUAGE_MODELS}

    writes_together = shared.redis.deferring if shared.redis is not None else nullcontext

    def policy(provider: str, operation: str, *, personal: bool = False, side: bool = False,
               metered: bool = True) -> ProviderPolicy:
        # A stand-in's answers are kept only briefly, like partial ones: the primary's replace them soon.
        stand_in = provider != LANGUAGE_MODELS[0] and provider in LANGUAGE_MODELS
        # A learner's conversation is personal: never cached, never shared with another caller's flight.
        return ProviderPolicy(provider, operation, deadline_seconds=settings.request_deadline_seconds,
                              cache=None if personal else shared.cache, flights=None if personal else shared.flights,
                              breaker=providers[provider].breaker,
                              bulkhead=beside[provider] if side else providers[provider].bulkhead,
                              retry=retry, partial_ttl=settings.cache_partial_ttl_seconds,
                              ttl=settings.cache_partial_ttl_seconds if stand_in else None, metered=metered,
                              holds=not side, deferred_writes=writes_together)

    def routes(operation: str, *, personal: bool = False, side: bool = False) -> list[Route]:
        """The configured language models for one operation, in order of preference."""
        return [Route(client, policy(name, operation, personal=personal, side=side)) for name in LANGUAGE_MODELS
                if name in providers and (client := providers[name].client) is not None]

    language_model = LanguageModel(GEMINI_NOT_CONFIGURED, reask=settings.llm_reask,
                                   max_repair_chars=settings.llm_max_repair_chars)
    speech = SpeechService(providers["azure_speech"].client, AZURE_NOT_CONFIGURED,
                           policy("azure_speech", "transcribe"), policy("azure_speech", "pronunciation"),
                           price_per_hour={"transcribe": settings.price_azure_speech_per_hour,
                                           "pronunciation": settings.price_azure_pronunciation_per_hour})
    speech_out = SynthesisService(providers["azure_tts"].client, AZURE_NOT_CONFIGURED,
                                  # The voice list is free: listing voices is never refused for a budget.
                                  policy("azure_tts", "speech"), policy("azure_tts", "voices", metered=False),
                                  price_per_mchars=settings.price_azure_tts_per_mchars)
    database = Database(settings.database_url, pool_size=settings.database_pool_size,
                        timeout_seconds=settings.database_timeout_seconds)
    # Corrections and summaries run beside the reply; bounded, as each may wait on a provider for a while.
    executor = ThreadPoolExecutor(max_workers=beside_limit, thread_name_prefix="turn")
    turns = TurnService(
        database, language_model, replies=routes("converse", personal=True),
        corrections=routes("corrections", personal=True, side=True),
        summaries=routes("summarize", personal=True, side=True),
        local_corrections=(ProviderPolicy(local_analysis.PROVIDER, "corrections",
                                          deadline_seconds=settings.request_deadline_seconds, metered=False),
                           local_analysis.corrections),
        speech=speech, executor=executor, speech_out=speech_out,
        settings=TurnSettings(lease_seconds=settings.longest_request_seconds + 15,
                              history_tokens=settings.conversation_history_tokens,
                              max_turns=settings.max_turns_per_conversation,
                              deadline_seconds=settings.request_deadline_seconds))
    return Backend(
        settings=settings, shared=shared, providers=providers,
        audio_fetcher=AudioFetcher(settings.allowed_audio_hosts, max_bytes=settings.max_audio_bytes,
                                   max_concurrency=settings.audio_url_concurrency,
                                   min_bytes_per_second=settings.audio_url_min_bytes_per_second,
                                   allow_http=settings.audio_url_allow_http,
                                   allow_private=settings.audio_url_allow_private),
        analysis=AnalysisService(language_model, routes("analyze"), local=(
            # The in-process answer when no language model can give one: cached briefly, like a stand-in's.
            ProviderPolicy(local_analysis.PROVIDER, "analyze", deadline_seconds=settings.request_deadline_seconds,
                           cache=shared.cache, ttl=settings.cache_partial_ttl_seconds, metered=False),
            lambda inputs: local_analysis.analyze(inputs["text"]))),
        content=ContentService(language_model, routes("create_subtopics"), routes("explanation")),
        speech=speech, speech_out=speech_out, clips=ClipService(database), database=database,
        conversations=ConversationService(database), turns=turns,
        streams=TurnStreams(turns, settings.stream_concurrency), executor=executor,
        learner_data=LearnerDataService(database, Retention(settings.data_retention_days,
                                                            settings.idempotency_key_hours)),
        # Lessons are generated by job workers (backend/jobs/tasks.py); the generator needs no request.
        lessons=LessonGenerator(language_model, routes("lesson_plan"), routes("lesson_section"),
                                routes("lesson_exercises"), max_parallel=3),
        # The web side only writes the job row and hands its id to the engine (backend/jobs); workers run it.
        jobs=JobService(database, JobEngine(settings).enqueue, max_active=settings.max_active_jobs_per_caller),
        # Daily budgets, counted where the breakers' state lives: Redis, else this host's (or process's) store.
        budgets=BudgetService(database, SpendMeter(shared.local, shared.redis),
                              per_caller=settings.budget_daily_usd_per_caller,
                              per_key=settings.budget_daily_usd_per_key),
        drain=Drain(settings.shutdown_drain_seconds),
    )


def _gemini_client(settings: Settings) -> Any:
    """Gemini through google-genai, or None when it is not configured."""
    if not settings.gemini_configured:
        return None
    from backend.providers.gemini import GeminiClient

    return GeminiClient(api_key=settings.gemini_api_key.get_secret_value(), model=settings.gemini_model,
                        base_url=settings.gemini_base_url, timeout_seconds=settings.gemini_timeout_seconds,
                        max_output_tokens=settings.gemini_max_output_tokens,
                        thinking_budget=settings.gemini_thinking_budget,
                        prices=TokenPrices(settings.price_gemini_input_per_mtok, settings.price_gemini_output_per_mtok))


def _fallback_client(settings: Settings) -> Any:
    """An OpenAI-compatible chat-completions server through the openai SDK, or None when it is not set."""
    if not settings.fallback_configured:
        return None
    from backend.providers.openai_compat import OpenAICompatClient  # importing openai costs ~0.45 s

    return OpenAICompatClient(
        base_url=settings.fallback_llm_base_url, api_key=settings.fallback_llm_api_key.get_secret_value(),
        model=settings.fallback_llm_model, timeout_seconds=settings.fallback_llm_timeout_seconds,
        max_output_tokens=settings.gemini_max_output_tokens, json_mode=settings.fallback_llm_json_mode,
        prices=TokenPrices(settings.price_fallback_input_per_mtok, settings.price_fallback_output_per_mtok))


def _azure_client(settings: Settings) -> Any:
    """Azure Speech, or None when it is not configured."""
    if not settings.azure_configured:
        return None
    # Imported only when configured: the SDK loads native libraries (and OpenSSL) on import.
    from backend.providers.azure_speech import AzureSpeechClient

    return AzureSpeechClient(key=settings.azure_speech_key.get_secret_value(),
                             region=settings.azure_speech_region or None, host=settings.azure_speech_host or None,
                             timeout_seconds=settings.azure_speech_timeout_seconds,
                             max_concurrency=settings.azure_speech_max_concurrency)


def _synthesis_client(settings: Settings) -> Any:
    """Azure speech synthesis (the same resource as recognition), or None when it is not configured."""
    if not settings.azure_configured:
        return None
    from backend.providers.azure_tts import AzureSynthesisClient

    return AzureSynthesisClient(key=settings.azure_speech_key.get_secret_value(),
                                region=settings.azure_speech_region or None, host=settings.azure_speech_host or None,
                                timeout_seconds=settings.azure_speech_timeout_seconds,
                                max_concurrency=settings.azure_tts_max_concurrency)


def build_breaker(name: str, settings: Settings, shared: SharedState) -> CircuitBreaker:
    """One breaker per provider, its state in Redis when configured (else this host's or process's store)."""
    config = BreakerConfig(
        failure_threshold=settings.circuit_breaker_failure_threshold,
        failure_rate=settings.circuit_breaker_failure_rate,
        minimum_calls=settings.circuit_breaker_minimum_calls,
        window_seconds=settings.circuit_breaker_window_seconds,
        recovery_timeout=settings.circuit_breaker_recovery_timeout,
        half_open_calls=settings.circuit_breaker_half_open_calls,
        # A trial that never reports (its worker died) frees its permit once its deadline has surely passed,
        # the longest input's included.
        trial_timeout=settings.longest_request_seconds + 5)
    # Slowness is judged net of what the input needs (ProviderPolicy.execute's input_seconds), so long audio or a
    # long text does not need a wider threshold here.
    return CircuitBreaker(name, config, local=shared.local, redis=shared.redis,
                          slow_call_seconds=settings.circuit_breaker_timeout)
