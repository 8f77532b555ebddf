"""The fake OpenAI-compatible server's tutor-conversation answers through the real openai SDK: a turn's corrections
(json_schema and json_object), summaries, the request log, the level and language a reply saw, and streamed replies
(several deltas, pauses, a reset after the first delta)."""

# ruff: noqa: F811  (the fixtures imported here come back as test arguments of the same name)
import json
import time

import httpx2
import openai
import pydantic
import pytest
from openai.lib._pydantic import to_strict_json_schema

from tests.fakes.base import REQUEST_LOG
from tests.unit.openai_fake_client import (  # noqa: F401  (fixtures)
    KEY,
    MODEL,
    USER,
    chat,
    client,
    fake,
    joined,
    make_client,
    server,
    task,
)


class Correction(pydantic.BaseModel):
    text: str
    correction: str
    explanation: str


class TurnCorrections(pydantic.BaseModel):
    corrections: list[Correction]


MESSAGE = "Yesterday i recieve a letter from my freind and he go to the the shop."
INPUTS = {"message": MESSAGE, "language": "en-US", "level": "B1"}


# --- corrections

def test_turn_corrections_through_parse_by_hand_and_json_object(client):
    parsed = client.chat.completions.parse(model=MODEL, messages=task("Correct the learner.", INPUTS),
                                           response_format=TurnCorrections).choices[0].message.parsed
    pairs = {(c.text, c.correction) for c in parsed.corrections}
    assert {("i", "I"), ("recieve", "receive"), ("freind", "friend"), ("he go", "he goes"), ("the the", "the")} <= pairs
    assert all(c.text in MESSAGE and c.correction != c.text and "\n" not in c.explanation for c in parsed.corrections)
    schema = to_strict_json_schema(TurnCorrections)
    schema.pop("title", None)  # the name alone says which answer it is
    for name in ("turn_corrections", "corrections"):
        fmt = {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
        content = chat(client, task("Correct.", INPUTS), response_format=fmt).choices[0].message.content
        assert TurnCorrections.model_validate_json(content) == parsed
    content = chat(client, task("Correct.", INPUTS), response_format={"type": "json_object"}).choices[0].message.content
    assert TurnCorrections.model_validate_json(content) == parsed


def test_a_clean_message_has_no_corrections(client):
    inputs = {**INPUTS, "message": "I really like jazz music."}
    parsed = client.chat.completions.parse(model=MODEL, messages=task("Correct.", inputs),
                                           response_format=TurnCorrections).choices[0].message.parsed
    assert parsed.corrections == []


# --- summaries, and what a reply saw

TURNS = ("Summarise these turns:\nLearner: I like jazz music very much and listen every day\n"
         "Tutor: Great! Who is your favourite musician?\nLearner: Miles Davis, because he play trumpet so well")


def said(client, system, text, **kwargs):
    return chat(client, [{"role": "system", "content": system}, {"role": "user", "content": text}],
                **kwargs).choices[0].message.content


def test_a_summarisation_request_gets_a_summary_of_the_turns_given(client):
    summary = said(client, "Summarise the conversation so far for the tutor's memory.", TURNS)
    assert summary == ('Summary: the learner talked about "I like jazz music very much…"; '
                       '"Miles Davis, because he play trumpet…"; the tutor replied 1 time.')
    streamed, finish, _, _ = joined(chat(client, [{"role": "system", "content": "Please summarize."},
                                                  {"role": "user", "content": TURNS}], stream=True))
    assert streamed == summary and finish == "stop"
    turns = json.dumps([{"speaker": "learner", "text": "We went to Rome"}, {"speaker": "tutor", "text": "Nice!"}])
    assert said(client, "Summarise the conversation so far.", f"Previous summary: {summary}\nNew turns:\n{turns}") == (
        'Summary: the learner talked about "I like jazz music very much…"; "Miles Davis, because he play trumpet…"; '
        '"We went to Rome"; the tutor replied 2 times.')
    reply = said(client, "You are a tutor. Summary of earlier turns: jazz.", "i like music")
    assert reply.startswith('You said: "i like music"') and "Summary:" not in reply


def test_a_reply_names_the_level_and_language_lines_of_its_instruction(client):
    plain = said(client, "You are a tutor.", "I like my cat.")
    told = said(client, "You are a tutor.\nLearner level (CEFR): A2.\nLanguage: es-ES. Answer in it.", "I like my cat.")
    assert told == plain + " [Level: A2; Language: es-ES]" and "[" not in plain


# --- the request log

def test_the_request_log_keeps_bodies_oldest_first(client, fake):
    chat(client)
    joined(chat(client, stream=True))
    chat(client, task("Correct.", INPUTS), response_format={"type": "json_object"})
    log = fake.requests()
    assert [r.get("stream", False) for r in log] == [False, True, False] and log[0]["messages"] == USER
    assert log[2]["response_format"] == {"type": "json_object"} and MESSAGE in json.dumps(log[2])
    log[0]["messages"].clear()
    assert fake.requests()[0]["messages"] == USER  # a copy
    assert httpx2.get(f"{fake.root_url}/_fake/requests").json() == {"requests": fake.requests()}
    fake.reset()
    assert fake.requests() == []


def test_the_request_log_is_bounded_and_logs_unreadable_bodies(fake):
    url = f"{fake.base_url}/chat/completions"
    with httpx2.Client(headers={"Authorization": f"Bearer {KEY}"}) as http:
        http.post(url, content=b"{broken")
        for i in range(REQUEST_LOG + 4):
            http.post(url, json={"model": MODEL, "messages": [{"role": "user", "content": f"turn {i}"}]})
    log = fake.requests()
    assert len(log) == REQUEST_LOG and fake.calls == REQUEST_LOG + 5
    assert [r["messages"][0]["content"] for r in (log[0], log[-1])] == ["turn 4", "turn 203"]
    fake.reset()
    httpx2.post(url, content=b"{broken", headers={"Authorization": f"Bearer {KEY}"})
    assert fake.requests() == [None]


# --- streamed replies

def deltas(sdk):
    """(seconds after the call when each text delta arrived, its text), and the exception that ended the stream."""
    started, got = time.monotonic(), []
    try:
        for chunk in chat(sdk, stream=True):
            text = chunk.choices[0].delta.content if chunk.choices else None
            if text:
                got.append((time.monotonic() - started, text))
    except Exception as exc:  # noqa: BLE001 - the class is what is checked
        return got, exc
    return got, None


def test_a_streamed_reply_comes_in_several_deltas_with_pauses_between(client, fake):
    whole = chat(client).choices[0].message.content
    fake.configure(chunk_size=40, chunk_latency_ms=100)
    got, exc = deltas(client)
    assert exc is None and len(got) >= 3 and "".join(t for _, t in got) == whole
    assert got[-1][0] >= 0.1 * len(got)  # a pause after the role chunk and between deltas
    assert got[0][0] < got[-1][0] - 0.1  # the first delta came well before the end


@pytest.mark.parametrize("after", [1, 2])
def test_a_reset_after_the_first_deltas(client, fake, after):
    whole = chat(client).choices[0].message.content
    fake.configure(error="stream_reset", fault_after_chunks=after, chunk_latency_ms=30)
    got, exc = deltas(make_client(fake))
    assert isinstance(exc, openai.APIConnectionError) and len(got) == after
    assert whole.startswith("".join(t for _, t in got))
    fake.configure(error=None)
    fake.script([{"error": "stream_reset"}])  # one call only
    assert len(deltas(make_client(fake))[0]) == after
    got, exc = deltas(make_client(fake))
    assert exc is None and "".join(t for _, t in got) == whole
    fake.configure(error="stream_reset")  # a plain call: half the body, then a reset
    with pytest.raises(openai.APIConnectionError):
        chat(client)
