"""The fake Gemini server's answers, exercised through the real google-genai client."""

import datetime
import json
import time
from typing import Literal

import httpx2
import pydantic
from google.genai import types

from tests.unit.gemini_fake_client import KEY, MODEL, SubtopicList, Task, ask, client, fake, server  # noqa: F401, I001  (fixtures)


class Error(pydantic.BaseModel):
    type: Literal["grammar", "vocabulary", "spelling", "punctuation", "style"]
    text: str
    correction: str
    explanation: str


class Cefr(pydantic.BaseModel):
    level: Literal["A1", "A2", "B1", "B2", "C1", "C2"]
    confidence: float = pydantic.Field(ge=0, le=1)
    rationale: str


class WritingAnalysis(pydantic.BaseModel):
    errors: list[Error]
    feedback: str
    strengths: list[str]
    improvement_areas: list[str]
    recommended_tasks: list[Task]
    cefr_assessment: Cefr


class TopicExplanation(pydantic.BaseModel):
    title: str
    explanation: str
    key_points: list[str]
    examples: list[str]


def analyze(sdk, text, **extra):
    return WritingAnalysis.model_validate(ask(sdk, WritingAnalysis, {"text": text, **extra}).parsed)


def test_writing_analysis_finds_real_errors(client):  # noqa: F811
    result = analyze(client, "i will recieve it tommorow. he go to the the shop and she have a dog", level="B1")
    found = {(e.type, e.text, e.correction) for e in result.errors}
    assert ("spelling", "recieve", "receive") in found
    assert ("spelling", "tommorow", "tomorrow") in found
    assert ("spelling", "i", "I") in found
    assert ("grammar", "he go", "he goes") in found
    assert ("grammar", "she have", "she has") in found
    assert ("grammar", "the the", "the") in found
    assert ("spelling", "he", "He") in found  # a sentence starting lowercase
    assert any(e.type == "punctuation" and e.correction.endswith(".") for e in result.errors)
    assert all(e.correction != e.text for e in result.errors)
    assert str(len(result.errors)) in result.feedback
    assert result.improvement_areas and result.recommended_tasks


def test_writing_analysis_of_clean_text_and_level_ordering(client):  # noqa: F811
    simple = analyze(client, "I like my cat. It is big. I see it.")
    rich = analyze(client, "Contemporary architecture frequently reconciles sustainability with aesthetic ambition, "
                           "although practitioners disagree considerably about acceptable compromises. Municipal "
                           "regulations, investor expectations and environmental constraints collectively shape "
                           "outcomes; consequently, remarkable buildings emerge from negotiation rather than "
                           "solitary inspiration. Nevertheless, distinctive visions occasionally prevail.")
    assert simple.errors == [] and rich.errors == []
    assert "0 issues" in simple.feedback
    levels = ["A1", "A2", "B1", "B2", "C1", "C2"]
    assert levels.index(rich.cefr_assessment.level) > levels.index(simple.cefr_assessment.level)
    assert analyze(client, "I like my cat. It is big. I see it.") == simple  # deterministic


def test_subtopics_honour_count_and_topic(client):  # noqa: F811
    for count in (3, 7, 12, 15):
        result = SubtopicList.model_validate(ask(client, SubtopicList, {"topic": "Travel", "count": count}).parsed)
        titles = [s.title for s in result.subtopics]
        assert result.topic == "Travel" and len(titles) == count == len(set(titles))
        assert all("Travel" in t for t in titles)


def test_explanation_is_simpler_at_a1(client):  # noqa: F811
    inputs = {"topic": "Food", "subtopic": "Ordering in a restaurant"}
    easy = TopicExplanation.model_validate(ask(client, TopicExplanation, {**inputs, "level": "A1"}).parsed)
    hard = TopicExplanation.model_validate(ask(client, TopicExplanation, {**inputs, "level": "C1"}).parsed)
    assert "Ordering in a restaurant" in easy.title and "Ordering in a restaurant" in hard.explanation
    assert len(easy.explanation) < len(hard.explanation) and easy.key_points and easy.examples


def test_unknown_schema_gets_a_generic_valid_object(client):  # noqa: F811
    class Part(pydantic.BaseModel):
        name: str
        size: int = pydantic.Field(ge=3)

    class Report(pydantic.BaseModel):
        kind: Literal["alpha", "beta"]
        parts: list[Part]
        score: float
        note: str | None
        flag: bool
        when: datetime.datetime
        ratio: float = pydantic.Field(gt=0, le=1)
        nested: dict[str, list[Part]] | None = None

    resp = ask(client, Report, {"anything": 1})
    report = Report.model_validate(resp.parsed)
    assert report.parts and report.parts[0].size >= 3


def test_envelope_usage_and_model(client, fake):  # noqa: F811
    resp = ask(client, SubtopicList, {"topic": "Music", "count": 3}, model="gemini-2.5-pro")
    usage = resp.usage_metadata
    assert resp.candidates[0].finish_reason == types.FinishReason.STOP
    assert resp.model_version == "gemini-2.5-pro"
    assert usage.candidates_token_count == -(-len(resp.text) // 4)
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count > 0
    assert fake.stats()["by_model"] == {"gemini-2.5-pro": 1}


# --- conversations and streams (plain text)

TUTOR = "You are an English tutor."
HISTORY = [types.Content(role="user", parts=[types.Part(text="Hi! i like music")]),
           types.Content(role="model", parts=[types.Part(text="Great! What music do you like?")]),
           types.Content(role="user", parts=[types.Part(text="She like jazz and i play piano")])]


def chat(sdk, contents=HISTORY, **config):
    config = types.GenerateContentConfig(system_instruction=TUTOR, temperature=0.7, **config)
    return sdk.models.generate_content(model=MODEL, contents=contents, config=config)


def test_a_conversation_is_answered_from_its_last_user_turn(client, fake):  # noqa: F811
    resp = chat(client)
    assert resp.text.startswith("Good, let's keep going (turn 2).")
    assert '"She like jazz and i play piano"' in resp.text and "say 'She likes' instead of 'She like'" in resp.text
    assert resp.text == chat(client).text  # deterministic
    sent = fake.stats()["last_request"]
    assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]
    assert sent["systemInstruction"]["parts"][0]["text"] == TUTOR
    assert "responseMimeType" not in sent["generationConfig"]
    words = len(TUTOR) + sum(len(p.text) for c in HISTORY for p in c.parts)
    assert resp.usage_metadata.prompt_token_count >= words // 4  # the whole history is counted
    first = chat(client, contents="I like my cat.")
    assert first.text.startswith("Hello!") and "well said" in first.text


def test_a_stream_sends_pieces_that_join_to_the_plain_answer(client, fake):  # noqa: F811
    plain = chat(client).text
    fake.configure(chunk_latency_ms=60, chunk_size=20)
    config = types.GenerateContentConfig(system_instruction=TUTOR)
    started, arrivals, chunks = time.monotonic(), [], []
    for chunk in client.models.generate_content_stream(model=MODEL, contents=HISTORY, config=config):
        arrivals.append(time.monotonic() - started)
        chunks.append(chunk)
    assert "".join(c.text for c in chunks) == plain and len(chunks) == -(-len(plain) // 20)
    assert arrivals[0] < 0.06 and arrivals[-1] >= 0.06 * (len(chunks) - 1)
    assert all(c.candidates[0].finish_reason is None and c.usage_metadata is None for c in chunks[:-1])
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == -(-len(plain) // 4)
    assert fake.stats()["by_kind"] == {"generate": 1, "stream": 1} and fake.calls == 2


def test_the_stream_is_server_sent_events(fake):  # noqa: F811
    url = f"{fake.base_url}/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    body = {"contents": [{"role": "user", "parts": [{"text": "Hello there, how are you today?"}]}]}
    with httpx2.stream("POST", url, json=body, headers={"x-goog-api-key": KEY}) as resp:
        assert resp.headers["content-type"] == "text/event-stream"
        assert resp.headers["transfer-encoding"] == "chunked"
        events = [json.loads(line[len("data: "):]) for line in resp.iter_lines() if line.startswith("data: ")]
    assert len(events) > 2 and events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert "usageMetadata" in events[-1] and all("usageMetadata" not in e for e in events[:-1])
