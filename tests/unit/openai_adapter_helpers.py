"""What the OpenAI-compatible adapter tests share: the tasks and talk they send, a client against the session's
fake server (tests/conftest.py `fake_openai`, reset before every test), and helpers to ask and to time a call."""
from __future__ import annotations

import time

import pytest

from backend.llm.client import Message
from backend.observability.cost import TokenPrices
from backend.providers.openai_compat import OpenAICompatClient
from backend.schemas.answers import SubtopicList, TopicExplanation, WritingAnalysis
from backend.services import prompts
from tests.conftest import FAKE_PROVIDER_KEY

KEY, MODEL = FAKE_PROVIDER_KEY, "gpt-fake-mini"
PRICES = TokenPrices(0.15, 0.60)
MARGIN = 0.2  # what a deadline may be overrun by on a loaded machine (measured: under 10 ms)
TASKS = [(WritingAnalysis, prompts.ANALYSIS_SYSTEM, "Analyse the learner's text.",
          {"text": "Yesterday i recieve a leter from my freind. He go to the the shop.", "level": "B1"}),
         (SubtopicList, prompts.SUBTOPICS_SYSTEM, "List subtopics.", {"topic": "Travel", "count": 5}),
         (TopicExplanation, prompts.EXPLANATION_SYSTEM, "Explain the subtopic.",
          {"topic": "Food", "subtopic": "Ordering in a restaurant", "level": "A2"})]
TALK = [Message("user", "Hi!"), Message("model", "Hello! How can I help?"),
        Message("user", "Yesterday i recieve a letter from my freind")]


@pytest.fixture
def fake(fake_openai):
    """The session's fake OpenAI server; conftest's autouse `_reset_fakes` has reset it for this test."""
    return fake_openai


def make(fake, **options):
    return OpenAICompatClient(**{"base_url": fake.base_url, "api_key": KEY, "model": MODEL, "timeout_seconds": 2.0,
                                 "prices": PRICES, **options})


def quick(fake):
    """A warmed-up client without input allowance (else a 0.3 s limit is the input's, as for Gemini), for timing."""
    llm = make(fake, input_seconds_per_1k_chars=0.0)
    llm.warm_up([SubtopicList])
    return llm


@pytest.fixture
def llm(fake):
    client = make(fake)
    yield client
    client.close()


def ask(llm, model_cls=SubtopicList, **kwargs):
    _, system, task, inputs = next(t for t in TASKS if t[0] is model_cls)
    return llm.generate_json(system=system, prompt=prompts.input_prompt(task, inputs), schema=model_cls, **kwargs)


def timed(call):
    started = time.monotonic()
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - returned for the test to judge
        return exc, time.monotonic() - started
    return None, time.monotonic() - started
