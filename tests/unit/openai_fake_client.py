"""What the fake OpenAI-compatible server's tests share: the service's answer models, a fake server per test module
(reset before each test), an openai SDK client against it, and helpers to chat, ask a task and join a stream."""

import json
from pathlib import Path

import openai
import pytest

from tests.fakes.openai_compat import FakeOpenAI

try:  # the service's answer models; they moved from services/ to schemas/
    from backend.schemas.answers import SubtopicList, TopicExplanation, WritingAnalysis  # noqa: F401
except ImportError:  # pragma: no cover - the older layout
    from backend.services.schemas import SubtopicList, TopicExplanation, WritingAnalysis  # noqa: F401

KEY, MODEL = "sk-fake-test-key", "gpt-fake-mini"
ROOT = Path(__file__).resolve().parents[2]
USER = [{"role": "system", "content": "You are a friendly English tutor."},
        {"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Yesterday i recieve a letter from my freind"}]


@pytest.fixture(scope="module")
def server():
    fake = FakeOpenAI(key=KEY).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(server):
    server.reset()
    return server


def make_client(fake, key=KEY, timeout=5.0, base_url=None, retries=0):
    return openai.OpenAI(base_url=base_url or fake.base_url, api_key=key, max_retries=retries, timeout=timeout)


@pytest.fixture
def client(fake):
    return make_client(fake)


def chat(client, messages=USER, **kwargs):
    return client.chat.completions.create(model=MODEL, messages=messages, **kwargs)


def task(system, inputs):
    """Messages the way the service asks: a system instruction, then the task with an INPUT line."""
    return [{"role": "system", "content": system + " Answer with JSON only."},
            {"role": "user", "content": f"Do the task.\nINPUT: {json.dumps(inputs)}"}]


def joined(stream):
    """Deltas joined, the last finish_reason, the usage seen, the number of chunks."""
    text, finish, usage, count = "", None, None, 0
    for chunk in stream:
        count += 1
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return text, finish, usage, count
