"""The fake OpenAI-compatible server's faults and control, through the real openai SDK: HTTP errors as the SDK's
classes, keys, hangs, resets and refused connections, scripts, fail_next and seeded error rates, the /_fake control
routes, and the command-line server."""

# ruff: noqa: F811  (the fixtures imported here come back as test arguments of the same name)
import json
import subprocess
import sys
import time

import httpx2
import openai
import pytest

from tests.fakes.openai_compat import FakeOpenAI
from tests.unit.openai_fake_client import (  # noqa: F401  (fixtures)
    MODEL,
    ROOT,
    USER,
    SubtopicList,
    chat,
    client,
    fake,
    joined,
    make_client,
    server,
    task,
)

# --- errors -----------------------------------------------------------------------

@pytest.mark.parametrize("error, cls, status", [
    ("400", openai.BadRequestError, 400), ("401", openai.AuthenticationError, 401),
    ("404", openai.NotFoundError, 404), ("429", openai.RateLimitError, 429), ("quota", openai.RateLimitError, 429),
    ("500", openai.InternalServerError, 500), ("503", openai.InternalServerError, 503)])
def test_http_errors_map_to_sdk_classes(client, fake, error, cls, status):
    fake.configure(error=error, retry_after=7)
    with pytest.raises(cls) as info:
        chat(client)
    exc = info.value
    assert exc.status_code == status and set(exc.body) == {"message", "type", "param", "code"}
    assert exc.message.startswith(f"Error code: {status} - ") and exc.request_id.startswith("req_")
    if status == 429:
        assert exc.response.headers["retry-after"] == "7" and exc.response.headers["x-ratelimit-remaining-requests"]
        assert exc.code == ("insufficient_quota" if error == "quota" else "rate_limit_exceeded")
    assert fake.calls == 1  # max_retries=0: one attempt


def test_keys(fake):
    with pytest.raises(openai.AuthenticationError, match="Incorrect API key provided: sk-") as info:
        chat(make_client(fake, key="sk-wrong-key-123"))
    assert info.value.code == "invalid_api_key"
    raw = httpx2.post(f"{fake.base_url}/chat/completions", json={"model": MODEL, "messages": USER})
    assert raw.status_code == 401 and "didn't provide an API key" in raw.json()["error"]["message"]


def test_hang_reset_and_refused(client, fake):
    fake.configure(error="hang")
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.3).chat.completions.create(model=MODEL, messages=USER)
    with pytest.raises(openai.APITimeoutError):
        chat(client, timeout=httpx2.Timeout(0.3, connect=1.0))  # the per-call kwarg
    assert time.monotonic() - started < 2
    for fault in ("reset", "cut"):
        fake.configure(error=fault)
        with pytest.raises(openai.APIConnectionError) as info:
            chat(client)
        assert not isinstance(info.value, openai.APITimeoutError)
    fake.configure(error="bad_json")
    with pytest.raises(json.JSONDecodeError):  # a 200 whose JSON does not parse is not an OpenAIError
        chat(client)
    closed = FakeOpenAI().start()
    dead = make_client(closed)
    closed.stop()
    with pytest.raises(openai.APIConnectionError) as info:
        chat(dead)
    assert isinstance(info.value.__cause__, httpx2.ConnectError)


# --- control ----------------------------------------------------------------------

def test_script_then_normal_behaviour(client, fake):
    fake.script([{"text": '{"exact": 1}'}, {"status": 503}, {"chunks": ["Hel", "lo"]},
                 {"status": 429, "headers": {"Retry-After": "3"}, "text": "slow down"}, {"error": "reset"}])
    assert chat(client).choices[0].message.content == '{"exact": 1}'
    with pytest.raises(openai.InternalServerError):
        chat(client)
    assert joined(chat(client, stream=True))[:2] == ("Hello", "stop")
    with pytest.raises(openai.RateLimitError, match="slow down") as info:
        chat(client)
    assert info.value.response.headers["retry-after"] == "3"
    with pytest.raises(openai.APIConnectionError):
        chat(client)
    assert chat(client).choices[0].message.content.startswith("You said")
    assert fake.calls == 6 and fake.stats()["script_pending"] == 0


def test_fail_next_heals_error_rate_is_seeded_and_sdk_retries_show(client, fake):
    fake.configure(fail_next=2, error="500")
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            chat(client)
    assert chat(client).choices[0].finish_reason == "stop" and fake.configure()["error"] is None

    def pattern():
        fake.configure(error_rate=0.5, seed=7)
        outcome = []
        for _ in range(10):
            try:
                outcome.append(chat(client).choices[0].finish_reason)
            except openai.InternalServerError:
                outcome.append("503")
        return outcome
    assert pattern() == pattern() and {"stop", "503"} == set(pattern())
    fake.reset()
    fake.script([{"status": 500, "headers": {"retry-after-ms": "10"}}])
    assert chat(make_client(fake, retries=1)).choices[0].finish_reason == "stop"
    assert fake.calls == 2 and fake.stats()["last_headers"]["x-stainless-retry-count"] == "1"


def test_control_routes_and_latency(client, fake):
    base = fake.root_url
    config = httpx2.post(f"{base}/_fake/config", json={"latency_ms": 150, "error": 503}).json()
    assert config["latency_ms"] == 150 and config["error"] == "503"
    bad = httpx2.post(f"{base}/_fake/config", json={"error": "bogus"})
    assert bad.status_code == 400 and "error must be one of" in bad.json()["error"]["message"]
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError):
        chat(client)
    assert time.monotonic() - started >= 0.15
    assert httpx2.post(f"{base}/_fake/script", json=[{"text": "x"}]).json()["script_pending"] == 1
    assert httpx2.post(f"{base}/_fake/reset").json()["config"]["error"] is None
    broken = httpx2.post(f"{fake.base_url}/chat/completions", content=b"{not json")
    assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_request_error"
    calls = httpx2.get(f"{base}/_fake/calls").json()
    assert calls["calls"] == 1 and calls["by_kind"]["invalid"] == 1
    missing = httpx2.get(f"{fake.base_url}/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["message"] == "Invalid URL (GET /v1/nothing)"
    with pytest.raises(ValueError, match="loopback"):
        FakeOpenAI(host="0.0.0.0")


def test_command_line_server():
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.openai_compat", "--port", "0", "--key", "k",
                             "--json-object-only"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        cli = openai.OpenAI(base_url=url, api_key="k", max_retries=0, timeout=5)
        assert chat(cli, task("List.", {"topic": "cli", "count": 2}), response_format={"type": "json_object"})
        with pytest.raises(openai.BadRequestError):
            cli.chat.completions.parse(model=MODEL, messages=USER, response_format=SubtopicList)
    finally:
        proc.terminate()
        proc.wait(5)
