"""The fake Gemini server's tutor-conversation answers through the real google-genai client: a turn's corrections,
summaries of earlier turns, the request log, the level and language a reply saw, and streamed replies (chunks,
pauses, a reset after the first chunk)."""

import json
import time

import httpx2
import pydantic
import pytest
from google.genai import types

from tests.fakes.base import REQUEST_LOG
from tests.unit.gemini_fake_client import KEY, MODEL, SubtopicList, ask, client, fake, make_client, server  # noqa: F401, I001  (fixtures)


class Correction(pydantic.BaseModel):
    text: str
    correction: str
    explanation: str


class TurnCorrections(pydantic.BaseModel):
    corrections: list[Correction]


def corrections(sdk, message, schema=TurnCorrections):
    inputs = {"message": message, "language": "en-US", "level": "B1"}
    resp = ask(sdk, schema, inputs) if schema else sdk.models.generate_content(
        model=MODEL, contents=f"Correct the learner.\nINPUT: {json.dumps(inputs)}",
        config=types.GenerateContentConfig(response_mime_type="application/json"))
    return TurnCorrections.model_validate_json(resp.text).corrections


# --- corrections

def test_turn_corrections_are_the_real_errors_of_the_message(client):  # noqa: F811
    message = "Yesterday i recieve a letter from my freind and he go to the the shop."
    found = corrections(client, message)
    pairs = {(c.text, c.correction) for c in found}
    assert {("i", "I"), ("recieve", "receive"), ("freind", "friend"), ("he go", "he goes"), ("the the", "the")} <= pairs
    assert all(c.text in message and c.correction != c.text for c in found)
    assert all(c.explanation and "\n" not in c.explanation for c in found)
    assert corrections(client, message) == found  # deterministic


def test_a_clean_message_has_no_corrections_and_no_schema_title_is_needed(client):  # noqa: F811
    assert corrections(client, "I really like jazz music.") == []
    untitled = TurnCorrections.model_json_schema()
    untitled.pop("title")
    assert [c.text for c in corrections(client, "She have a dog.", untitled)] == ["She have"]
    assert [c.text for c in corrections(client, "She have a dog.", None)] == ["She have"]  # JSON mode, no schema


# --- summaries

SUMMARISE = "Summarise the conversation so far in two or three sentences, for the tutor's memory."
TURNS = ("Summarise these turns:\nLearner: I like jazz music very much and listen every day\n"
         "Tutor: Great! Who is your favourite musician?\nLearner: Miles Davis, because he play trumpet so well\n"
         "Tutor: Why do you like the trumpet?\nLearner: It sounds warm")


def say(sdk, system, contents, **config):
    return sdk.models.generate_content(model=MODEL, contents=contents, config=types.GenerateContentConfig(
        system_instruction=system, **config)).text


def test_a_summarisation_request_gets_a_summary_of_the_turns_given(client):  # noqa: F811
    summary = say(client, SUMMARISE, TURNS)
    assert summary.startswith("Summary: the learner talked about")
    assert '"I like jazz music very much…"' in summary and '"Miles Davis, because he play' in summary
    assert '"It sounds warm"' in summary and "the tutor replied 2 times" in summary
    assert "You wrote" not in summary and "Good, let's keep going" not in summary
    assert say(client, "You are a summarizer of lessons.", TURNS) == summary == say(client, SUMMARISE, TURNS)
    listed = {"turns": [{"role": "user", "text": "We went to Rome"}, {"role": "model", "text": "Nice!"}]}
    assert say(client, SUMMARISE, f"INPUT: {json.dumps(listed)}") == (
        'Summary: the learner talked about "We went to Rome"; the tutor replied 1 time.')


def spoken(*turns):
    """Turns the way the service lists them: a previous summary, then the new turns as one JSON line."""
    lines = [{"speaker": ("learner", "tutor")[i % 2], "text": text} for i, text in enumerate(turns)]
    return lambda previous: f"Previous summary: {previous}\nNew turns (JSON, oldest first):\n{json.dumps(lines)}"


def test_a_summary_extends_the_previous_one(client):  # noqa: F811
    first = say(client, SUMMARISE, spoken("We went to Rome in May", "Lovely!", "i ate pasta")("(none)"))
    assert first == ('Summary: the learner talked about "We went to Rome in May"; "i ate pasta"; '
                     'the tutor replied 1 time.')
    later = spoken(*[w for i in range(1, 6) for w in (f"Then day {i} came along slowly", "Go on")])
    second = say(client, SUMMARISE, later(first))
    assert second == ('Summary: the learner talked about "We went to Rome in May"; "i ate pasta"; '
                      '"Then day 1 came along slowly"; (1 more); "Then day 3 came along slowly"; '
                      '"Then day 4 came along slowly"; "Then day 5 came along slowly"; the tutor replied 6 times.')
    third = say(client, SUMMARISE, spoken("Finally home")(second))
    assert '"We went to Rome in May"; "i ate pasta"; "Then day 1 came along slowly"; (2 more);' in third
    assert third.endswith('"Finally home"; the tutor replied 6 times.')


def test_a_tutor_instruction_carrying_an_earlier_summary_still_gets_a_tutor_reply(client):  # noqa: F811
    system = ("You are a tutor.\nSummary of earlier turns (summarised): the learner talked about \"could you "
              "summarize it\"; the tutor replied 1 time.")
    reply = say(client, system, "i like music")
    assert reply.startswith("Hello! Let's practise together.") and "say 'I' instead of 'i'" in reply


# --- what a reply saw, and the request log

def test_a_reply_names_the_level_and_language_lines_of_its_instruction(client):  # noqa: F811
    plain = say(client, "You are a tutor.", "I like my cat.")
    told = say(client, "You are a tutor.\nLanguage: fr-FR\nLevel: b1\nScenario: at the market", "I like my cat.")
    assert told == plain + " [Level: B1; Language: fr-FR]" and "[" not in plain
    assert say(client, "You are a tutor.\nLevel: C1", "I like my cat.") == plain + " [Level: C1]"
    service = "You are a tutor.\nLanguage: de-DE. Answer in it.\nLearner level (CEFR): A2. Keep it simple."
    assert say(client, service, "I like my cat.") == plain + " [Level: A2; Language: de-DE]"


def test_the_request_log_keeps_bodies_paths_and_streams_oldest_first(client, fake):  # noqa: F811
    say(client, "Tutor. Level: B1", "first words")
    list(client.models.generate_content_stream(model="gemini-2.5-pro", contents="second words"))
    ask(client, SubtopicList, {"topic": "third", "count": 3})
    log = fake.requests()
    assert [(r["model"], r["stream"]) for r in log] == [(MODEL, False), ("gemini-2.5-pro", True), (MODEL, False)]
    assert log[1]["path"] == "/v1beta/models/gemini-2.5-pro:streamGenerateContent"
    assert log[0]["body"]["systemInstruction"]["parts"][0]["text"] == "Tutor. Level: B1"
    assert [r["body"]["contents"][-1]["parts"][0]["text"] for r in log[:2]] == ["first words", "second words"]
    assert '"topic": "third"' in log[2]["body"]["contents"][-1]["parts"][0]["text"]
    log[0]["body"].clear()
    log.clear()
    assert len(fake.requests()) == 3 and fake.requests()[0]["body"]["contents"]  # a copy
    assert httpx2.get(f"{fake.base_url}/_fake/requests").json() == {"requests": fake.requests()}
    fake.reset()
    assert fake.requests() == []


def test_the_request_log_is_bounded_and_logs_unreadable_bodies(fake):  # noqa: F811
    url = f"{fake.base_url}/v1beta/models/{MODEL}:generateContent"
    with httpx2.Client(headers={"x-goog-api-key": KEY}) as http:
        http.post(url, content=b"{broken")
        for i in range(REQUEST_LOG + 4):
            http.post(url, json={"contents": [{"parts": [{"text": f"turn {i}"}]}]})
    log = fake.requests()
    assert len(log) == REQUEST_LOG and fake.calls == REQUEST_LOG + 5
    assert [r["body"]["contents"][0]["parts"][0]["text"] for r in (log[0], log[-1])] == ["turn 4", "turn 203"]
    fake.reset()
    httpx2.post(url, content=b"{broken", headers={"x-goog-api-key": KEY})
    assert fake.requests() == [{"path": f"/v1beta/models/{MODEL}:generateContent", "model": MODEL,
                                "stream": False, "body": None}]


# --- streamed replies

TALK = [types.Content(role="user", parts=[types.Part(text="Hi! i like music")]),
        types.Content(role="model", parts=[types.Part(text="Great! What music do you like?")]),
        types.Content(role="user", parts=[types.Part(text="She like jazz and i play piano")])]


def pieces(sdk):
    """(seconds after the call when each chunk arrived, its text), and the exception that ended the stream."""
    started, got = time.monotonic(), []
    try:
        for chunk in sdk.models.generate_content_stream(model=MODEL, contents=TALK, config=types.GenerateContentConfig(
                system_instruction="You are a tutor.")):
            got.append((time.monotonic() - started, chunk.text))
    except Exception as exc:  # noqa: BLE001 - the class is what is checked
        return got, exc
    return got, None


def test_a_streamed_tutor_reply_comes_in_several_chunks_with_pauses_between(client, fake):  # noqa: F811
    whole = say(client, "You are a tutor.", TALK)
    got, exc = pieces(client)
    assert exc is None and len(got) >= 3 and "".join(t for _, t in got) == whole  # 32 characters a chunk
    fake.configure(chunk_latency_ms=150)
    got, exc = pieces(client)
    assert exc is None and got[-1][0] >= 0.15 * (len(got) - 1)  # the server paused between chunks
    assert got[0][0] < got[-1][0] - 0.15  # and the first came well before the end


@pytest.mark.parametrize("after", [1, 2])
def test_a_reset_after_the_first_chunks(fake, after):  # noqa: F811
    whole = say(make_client(fake), "You are a tutor.", TALK)
    fake.configure(error="stream_reset", fault_after_chunks=after, chunk_latency_ms=50)
    got, exc = pieces(make_client(fake))
    assert isinstance(exc, httpx2.ReadError) and len(got) == after
    assert whole.startswith("".join(t for _, t in got))
    fake.reset()
    fake.configure(fault_after_chunks=1)
    fake.script([{"error": "stream_reset"}])  # one call only
    assert len(pieces(make_client(fake))[0]) == 1
    got, exc = pieces(make_client(fake))
    assert exc is None and "".join(t for _, t in got) == whole


def test_fault_after_chunks_is_checked(fake):  # noqa: F811
    with pytest.raises(ValueError):
        fake.configure(fault_after_chunks=-1)
    config = httpx2.post(f"{fake.base_url}/_fake/config", json={"fault_after_chunks": 3}).json()
    assert config["fault_after_chunks"] == 3
