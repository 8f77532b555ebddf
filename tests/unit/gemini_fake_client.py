"""The google-genai side of the fake Gemini tests: the schema both test modules ask for, fixtures, a call helper."""

import json

import pydantic
import pytest
from google import genai
from google.genai import types

from tests.fakes.gemini import FakeGemini

KEY = "test-key"
MODEL = "gemini-2.5-flash"


class Task(pydantic.BaseModel):
    title: str
    description: str


class SubtopicList(pydantic.BaseModel):
    topic: str
    subtopics: list[Task]


@pytest.fixture(scope="module")
def server():
    fake = FakeGemini(key=KEY).start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(server):
    server.reset()
    return server


def make_client(fake, key=KEY, timeout=2000):
    options = types.HttpOptions(base_url=fake.base_url, api_version="v1beta", timeout=timeout)
    return genai.Client(api_key=key, http_options=options)


@pytest.fixture
def client(fake):
    return make_client(fake)


def ask(client, model_cls, inputs, model=MODEL):
    """Call generateContent the way the service does: JSON mode, a titled schema, an INPUT line."""
    schema = model_cls.model_json_schema() if isinstance(model_cls, type) else model_cls
    prompt = f"Do the task described by the schema.\nINPUT: {json.dumps(inputs)}"
    config = types.GenerateContentConfig(response_mime_type="application/json", response_json_schema=schema)
    return client.models.generate_content(model=model, contents=prompt, config=config)
