"""The fake Gemini server's keys, injected faults, scripts, counters and control routes, through google-genai."""

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest
from google import genai
from google.genai import errors, types

from tests.fakes.gemini import FakeGemini
from tests.unit.gemini_fake_client import MODEL, SubtopicList, ask, client, fake, make_client, server  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[2]


# --- keys and injected errors ------------------------------------------------------

def test_wrong_key_is_400_and_missing_key_403(fake):  # noqa: F811
    with pytest.raises(errors.ClientError) as info:
        ask(make_client(fake, key="wrong"), SubtopicList, {"topic": "x", "count": 3})
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert "API key not valid" in info.value.message
    raw = httpx2.post(f"{fake.base_url}/v1beta/models/{MODEL}:generateContent", json={"contents": []})
    assert raw.status_code == 403 and raw.json()["error"]["status"] == "PERMISSION_DENIED"
    assert fake.calls == 2


@pytest.mark.parametrize("code, cls, status", [
    ("500", errors.ServerError, "INTERNAL"), ("503", errors.ServerError, "UNAVAILABLE"),
    ("429", errors.ClientError, "RESOURCE_EXHAUSTED"), ("400", errors.ClientError, "INVALID_ARGUMENT")])
def test_http_errors_raise_like_the_real_api(client, fake, code, cls, status):  # noqa: F811
    fake.configure(error=code, retry_after=7)
    with pytest.raises(cls) as info:
        ask(client, SubtopicList, {"topic": "x", "count": 3})
    assert (info.value.code, info.value.status) == (int(code), status)
    if code == "429":
        assert info.value.response.headers["Retry-After"] == "7"


def test_hang_times_out_without_blocking_others(fake):  # noqa: F811
    fake.script([{"error": "hang"}])
    hung = make_client(fake, timeout=300)
    started = time.monotonic()
    box = {}

    def call_hung():
        try:
            ask(hung, SubtopicList, {"topic": "x", "count": 3})
        except Exception as exc:  # noqa: BLE001 - the class is what is checked
            box["exc"] = exc
    thread = threading.Thread(target=call_hung)
    thread.start()
    while fake.calls < 1 and time.monotonic() - started < 2:  # the hung call must take the script entry
        time.sleep(0.005)
    assert ask(make_client(fake), SubtopicList, {"topic": "y", "count": 3}).parsed["topic"] == "y"
    thread.join(5)
    assert isinstance(box["exc"], httpx2.ReadTimeout)
    assert time.monotonic() - started < 2


def test_reset_and_refused_connections(client, fake):  # noqa: F811
    ask(client, SubtopicList, {"topic": "x", "count": 3})  # leaves a pooled keep-alive connection
    fake.configure(error="reset")
    with pytest.raises(httpx2.ReadError):
        ask(client, SubtopicList, {"topic": "x", "count": 3})
    with pytest.raises(httpx2.ReadError):
        ask(make_client(fake), SubtopicList, {"topic": "x", "count": 3})
    closed = FakeGemini().start()
    dead = make_client(closed)
    closed.stop()
    with pytest.raises(httpx2.ConnectError):
        ask(dead, SubtopicList, {"topic": "x", "count": 3})


def test_malformed_output_modes(client, fake):  # noqa: F811
    inputs = {"topic": "Sport", "count": 3}
    fake.configure(malformed="markdown")
    assert ask(client, SubtopicList, inputs).text.startswith("```json\n{")
    fake.configure(malformed="prose")
    resp = ask(client, SubtopicList, inputs)
    assert not resp.text.startswith("{") and '"subtopics"' in resp.text
    fake.configure(malformed="truncated")
    resp = ask(client, SubtopicList, inputs)
    assert resp.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS and resp.parsed is None
    fake.configure(malformed="empty")
    assert ask(client, SubtopicList, inputs).text is None
    fake.configure(malformed="blocked")
    resp = ask(client, SubtopicList, inputs)
    assert resp.text is None and not resp.candidates
    assert resp.prompt_feedback.block_reason == types.BlockedReason.SAFETY
    fake.configure(malformed="safety")
    resp = ask(client, SubtopicList, inputs)
    assert resp.text is None and resp.candidates[0].finish_reason == types.FinishReason.SAFETY


# --- faults in the middle of a body or a stream ---------------------------------------

def stream(sdk, **config):
    """Every chunk's text until the stream ends or fails: (texts, exception or None)."""
    texts = []
    try:
        for chunk in sdk.models.generate_content_stream(model=MODEL, contents="Hello, i go home",
                                                           config=types.GenerateContentConfig(**config)):
            texts.append(chunk.text)
    except Exception as exc:  # noqa: BLE001 - the class is what is checked
        return texts, exc
    return texts, None


@pytest.mark.parametrize("fault, raised, midway", [
    ("stream_error", errors.ServerError, True), ("stream_reset", httpx2.ReadError, True),
    ("cut", httpx2.RemoteProtocolError, True), ("stall", httpx2.ReadTimeout, True), ("stream_eof", None, True),
    ("503", errors.ServerError, False), ("reset", httpx2.ReadError, False), ("hang", httpx2.ReadTimeout, False)])
def test_stream_faults_raise_like_the_real_api(fake, fault, raised, midway):  # noqa: F811
    fake.configure(error=fault, chunk_size=8)
    texts, exc = stream(make_client(fake, timeout=300))
    assert (type(exc) if exc else None) is raised and bool(texts) is midway, exc
    assert fake.stats()["by_kind"] == {"generate": 0, "stream": 1}
    if fault == "stream_error":
        assert exc.code == 500 and exc.status == "INTERNAL"


def test_mid_body_faults_on_plain_calls_and_stream_faults_do_not_touch_them(client, fake):  # noqa: F811
    for fault, raised in (("cut", httpx2.RemoteProtocolError), ("stream_reset", httpx2.ReadError)):
        fake.configure(error=fault)
        with pytest.raises(raised):
            ask(make_client(fake), SubtopicList, {"topic": "x", "count": 3})
    fake.configure(error="stall")
    with pytest.raises(httpx2.ReadTimeout):
        ask(make_client(fake, timeout=300), SubtopicList, {"topic": "x", "count": 3})
    for fault in ("stream_error", "stream_eof"):
        fake.configure(error=fault)
        assert ask(client, SubtopicList, {"topic": "x", "count": 3}).parsed["topic"] == "x"


def test_scripted_streams_and_malformed_streams(client, fake):  # noqa: F811
    fake.script([{"chunks": ["One ", "two ", "three"]}, {"error": "stream_eof"}, {"status": 429},
                 {"text": "cut short", "finish_reason": "MAX_TOKENS"}])
    assert stream(client) == (["One ", "two ", "three"], None)
    texts, exc = stream(client)
    assert texts and exc is None  # ended quietly, without a finish reason
    assert isinstance(stream(client)[1], errors.ClientError)
    fake.configure(malformed="blocked")
    texts, exc = stream(client)  # the script still comes first
    assert texts == ["cut short"] and exc is None
    assert stream(client) == ([None], None)  # blocked: one event, promptFeedback and no candidates


# --- counting, scripts and healing ---------------------------------------------------

def test_counter_counts_every_call_and_records_the_last(client, fake):  # noqa: F811
    ask(client, SubtopicList, {"topic": "a", "count": 3})
    fake.configure(error="503")
    with pytest.raises(errors.ServerError):
        ask(client, SubtopicList, {"topic": "b", "count": 3})
    stats = httpx2.get(f"{fake.base_url}/_fake/calls").json()
    assert fake.calls == stats["calls"] == 2 and stats["by_model"] == {MODEL: 2}
    assert "INPUT: " in stats["last_request"]["contents"][-1]["parts"][0]["text"]
    assert stats["last_request"]["generationConfig"]["responseJsonSchema"]["title"] == "SubtopicList"


def test_script_is_consumed_in_order_before_normal_behaviour(client, fake):  # noqa: F811
    fake.script([{"text": '{"exact": 1}'}, {"status": 503}])
    fake.script([{"text": "cut", "finish_reason": "MAX_TOKENS"},
                 {"status": 429, "headers": {"Retry-After": "3"}, "body": {"error": {"code": 429}}}])
    assert ask(client, SubtopicList, {"topic": "a", "count": 3}).text == '{"exact": 1}'
    with pytest.raises(errors.ServerError):
        ask(client, SubtopicList, {"topic": "a", "count": 3})
    resp = ask(client, SubtopicList, {"topic": "a", "count": 3})
    assert resp.text == "cut" and resp.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    with pytest.raises(errors.ClientError) as info:
        ask(client, SubtopicList, {"topic": "a", "count": 3})
    assert info.value.response.headers["Retry-After"] == "3"
    assert len(ask(client, SubtopicList, {"topic": "a", "count": 3}).parsed["subtopics"]) == 3
    assert fake.calls == 5


def test_fail_next_heals(client, fake):  # noqa: F811
    fake.configure(fail_next=2, error="429")
    for _ in range(2):
        with pytest.raises(errors.ClientError):
            ask(client, SubtopicList, {"topic": "a", "count": 3})
    assert ask(client, SubtopicList, {"topic": "a", "count": 3}).parsed["topic"] == "a"
    assert fake.configure()["error"] is None and fake.calls == 3


def test_error_rate_is_deterministic_with_a_seed(client, fake):  # noqa: F811
    def pattern():
        fake.configure(error_rate=0.5, seed=42)
        outcome = []
        for _ in range(12):
            try:
                ask(client, SubtopicList, {"topic": "a", "count": 3})
                outcome.append("ok")
            except errors.ServerError:
                outcome.append("503")
        return outcome
    first = pattern()
    assert first == pattern() and {"ok", "503"} == set(first)


def test_http_control_routes(fake):  # noqa: F811
    base = fake.base_url
    config = httpx2.post(f"{base}/_fake/config", json={"latency_ms": 5, "error": 503}).json()
    assert config["latency_ms"] == 5 and config["error"] == "503"
    bad = httpx2.post(f"{base}/_fake/config", json={"error": "bogus"})
    assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert httpx2.post(f"{base}/_fake/script", json=[{"text": "x"}]).json()["script_pending"] == 1
    assert httpx2.post(f"{base}/_fake/reset").json()["config"]["error"] is None
    assert httpx2.get(f"{base}/_fake/calls").json() == {
        "calls": 0, "by_kind": {"generate": 0, "stream": 0}, "by_model": {}, "last_request": None,
        "script_pending": 0}
    broken = httpx2.post(f"{base}/v1/models/{MODEL}:generateContent", content=b"{not json")
    assert broken.status_code == 400 and fake.calls == 1
    missing = httpx2.get(f"{base}/v1beta/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == 404


def test_latency_and_concurrency(client, fake):  # noqa: F811
    fake.configure(latency_ms=300)
    started = time.monotonic()
    with ThreadPoolExecutor(40) as pool:
        results = list(pool.map(lambda i: ask(client, SubtopicList, {"topic": f"t{i}", "count": 3}), range(40)))
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.5 and fake.calls == 40
    assert {r.parsed["topic"] for r in results} == {f"t{i}" for i in range(40)}


def test_command_line_server():
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.gemini", "--port", "0", "--key", "k"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:")
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=url, api_version="v1beta",
                                                                         timeout=2000))
        assert ask(client, SubtopicList, {"topic": "cli", "count": 4}).parsed["topic"] == "cli"
    finally:
        proc.terminate()
        proc.wait(5)
