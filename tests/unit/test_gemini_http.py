"""The thin HTTP path of generateContent (backend/providers/gemini_http.py): every failure maps as it does through
google-genai's own client, connections are kept alive and reopened when the server closed them, and a POST the
server may have received is never sent twice."""
from __future__ import annotations

import socket
import time

import pytest
from google.genai import errors as genai_errors
from google.genai import types

from backend.errors import ProviderConnectionError, ProviderError, ProviderRateLimited
from backend.providers import gemini_http
from backend.providers.gemini import GeminiClient
from backend.providers.gemini_errors import map_failure
from backend.providers.gemini_http import GeminiHttp
from backend.schemas.answers import WritingAnalysis
from tests.conftest import FAKE_PROVIDER_KEY
from tests.unit.gemini_wire_server import Reply, WireServer

MODEL = "gemini-2.5-flash"
SYSTEM = "You are a writing tutor."
PROMPT = "Analyse: She go to school every days."


def gemini(base_url: str, **options) -> GeminiClient:
    options.setdefault("timeout_seconds", 5.0)
    return GeminiClient(api_key=FAKE_PROVIDER_KEY, model=MODEL, base_url=base_url, **options)


@pytest.fixture
def wire():
    server = WireServer()
    yield server
    server.stop()


def ask(client: GeminiClient, timeout: float | None = None):
    return client.generate_json(system=SYSTEM, prompt=PROMPT, schema=WritingAnalysis, timeout=timeout)


def thin(client: GeminiClient) -> GeminiHttp | None:
    held = client._templates._http
    return held[1] if held is not None else None


def our_failure(client: GeminiClient, timeout: float | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        ask(client, timeout)
    assert thin(client) is not None  # the thin path made the call
    return info.value


def sdk_failure(client: GeminiClient, timeout: float | None = None) -> ProviderError:
    """The same call through google-genai's own generate_content, its failure mapped as the adapter maps one."""
    limit = client._timeout_seconds + client.input_seconds(PROMPT)
    seconds = min(timeout, limit) if timeout is not None else limit
    try:
        client._sdk().models.generate_content(model=MODEL, contents=PROMPT,
                                              config=client._config(SYSTEM, WritingAnalysis, seconds))
    except Exception as exc:  # noqa: BLE001 - mapped below, as GeminiClient._generate maps it
        mapped = map_failure(exc, seconds=seconds, input_seconds=client.input_seconds(PROMPT))
        mapped.__cause__ = exc
        return mapped
    raise AssertionError("the SDK's call did not fail")


def described(exc: ProviderError) -> tuple:
    return (type(exc), exc.message, exc.transient, exc.counts_for_breaker, exc.retry_after, exc.status,
            type(exc.__cause__))


@pytest.mark.parametrize("fault, timeout", [("429", None), ("500", None), ("503", None), ("400", None),
                                            ("reset", None), ("cut", None), ("hang", 0.4), ("stall", 0.4)])
def test_failures_map_as_through_the_sdk(fake_gemini, fault, timeout):
    fake_gemini.configure(error=fault, retry_after=7)
    client = gemini(fake_gemini.base_url)
    ours = our_failure(client, timeout)
    assert fake_gemini.calls == 1  # sent once: nothing is retried below the policy
    theirs = sdk_failure(client, timeout)
    assert fake_gemini.calls == 2
    # The same error, raised from the same SDK error (ClientError, ServerError) or httpx2 exception class.
    assert described(ours) == described(theirs)
    if fault.isdigit():
        assert ours.__cause__.code == int(fault) and ours.__cause__.details == theirs.__cause__.details
    if fault == "429":
        assert isinstance(ours, ProviderRateLimited) and ours.retry_after == 7.0
    client.close()


def test_a_wrong_key_maps_as_through_the_sdk(fake_gemini):
    client = GeminiClient(api_key="not-the-key", model=MODEL, base_url=fake_gemini.base_url)
    ours, theirs = our_failure(client), sdk_failure(client)
    assert described(ours) == described(theirs) and isinstance(ours.__cause__, genai_errors.ClientError)
    client.close()


def test_a_refused_connection_maps_as_through_the_sdk():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = gemini(f"http://127.0.0.1:{port}")
    ours, theirs = our_failure(client), sdk_failure(client)
    assert described(ours) == described(theirs) and isinstance(ours, ProviderConnectionError)
    client.close()


def test_an_error_answer_that_is_not_json_maps_as_through_the_sdk(wire):
    client = gemini(wire.base_url)
    wire.script(Reply(status=502, body=b"<html>bad gateway</html>", headers={"Retry-After": "3"}),
                Reply(status=502, body=b"<html>bad gateway</html>", headers={"Retry-After": "3"}))
    ours, theirs = our_failure(client), sdk_failure(client)
    assert described(ours) == described(theirs) and ours.retry_after == 3.0
    assert ours.__cause__.details == theirs.__cause__.details
    client.close()


def test_a_kept_alive_connection_carries_every_call(wire):
    client = gemini(wire.base_url)
    for _ in range(3):
        assert ask(client).text == "Hello there."
    assert [seen.connection for seen in wire.seen] == [1, 1, 1] and wire.connections == 1
    client.close()


def test_a_connection_the_server_closed_while_idle_is_replaced_before_sending(wire):
    client = gemini(wire.base_url)
    ask(client)
    wire.close_idle()  # as a server's idle timeout does: a FIN on the kept-alive connection
    time.sleep(0.05)
    assert ask(client).text == "Hello there."
    # Found closed before the request was written: one request per call, the second on a new connection.
    assert [seen.connection for seen in wire.seen] == [1, 2]
    client.close()


@pytest.mark.parametrize("reset", [False, True])
def test_a_request_the_server_hung_up_on_is_not_sent_again(wire, reset):
    client = gemini(wire.base_url)
    ask(client)
    wire.script(Reply(hang_up=True, reset=reset))  # read, then closed without an answer: maybe processed
    ours = our_failure(client)
    assert len(wire.seen) == 2  # not retried on another connection: a POST could be billed twice
    assert ask(client).text == "Hello there."  # the next call opens a new connection
    assert [seen.connection for seen in wire.seen] == [1, 1, 2]
    # google-genai's own client, on a kept-alive connection of its own, fails the same way and sends it once too.
    client._sdk().models.generate_content(model=MODEL, contents=PROMPT, config=client._text_config(SYSTEM, 5.0))
    wire.script(Reply(hang_up=True, reset=reset))
    theirs = sdk_failure(client)
    assert described(ours) == described(theirs) and isinstance(ours, ProviderConnectionError)
    assert [seen.connection for seen in wire.seen] == [1, 1, 2, 3, 3]
    client.close()


def test_a_connection_idle_past_the_keepalive_limit_is_not_reused(wire, monkeypatch):
    monkeypatch.setattr(gemini_http, "KEEPALIVE_SECONDS", 0.1)
    client = gemini(wire.base_url)
    ask(client)
    ask(client)
    time.sleep(0.2)
    ask(client)
    assert [seen.connection for seen in wire.seen] == [1, 1, 2]
    client.close()


def test_close_releases_the_connections_and_a_later_call_opens_new_ones(wire):
    client = gemini(wire.base_url)
    ask(client)
    first = thin(client)
    client.close()
    assert client._templates._http is None
    ask(client)
    assert thin(client) is not first and [seen.connection for seen in wire.seen] == [1, 2]
    client.close()


def test_per_call_options_beyond_a_timeout_go_through_the_sdks_client(wire):
    client = gemini(wire.base_url)
    config = client._config(SYSTEM, WritingAnalysis, 5.0)
    config.http_options = types.HttpOptions(timeout=3000, headers={"x-extra": "1"})
    client._templates.generate(client._sdk(), ("json", WritingAnalysis), MODEL,
                               [{"role": "user", "parts": [{"text": PROMPT}]}], config)
    assert ("x-extra", "1") in wire.seen[-1].header_set()  # only the SDK's client merges per-call headers
    client.close()


@pytest.mark.parametrize("variable, value, thin_path", [
    ("HTTPS_PROXY", "http://proxy.invalid:3128", True),  # an http:// base URL is not routed through it
    ("HTTP_PROXY", "http://proxy.invalid:3128", False), ("ALL_PROXY", "http://proxy.invalid:3128", False)])
def test_a_proxy_in_the_environment_keeps_the_sdks_path(wire, monkeypatch, variable, value, thin_path):
    monkeypatch.setenv(variable, value)
    client = gemini(wire.base_url)
    assert (GeminiHttp.for_client(client._sdk().models._api_client) is not None) is thin_path
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert GeminiHttp.for_client(client._sdk().models._api_client) is not None
    client.close()


def test_sdk_clients_configured_beyond_the_plain_api_keep_the_sdks_path(wire):
    from google import genai

    plain = types.HttpOptions(base_url=wire.base_url, api_version="v1beta", timeout=5000)
    assert GeminiHttp.for_client(genai.Client(api_key="k", http_options=plain)._api_client) is not None
    for options in (plain.model_copy(update={"retry_options": types.HttpRetryOptions(attempts=2)}),
                    plain.model_copy(update={"client_args": {"trust_env": False}}),
                    plain.model_copy(update={"extra_body": {"labels": {"team": "x"}}})):
        assert GeminiHttp.for_client(genai.Client(api_key="k", http_options=options)._api_client) is None
    assert GeminiHttp.for_client(genai.Client(api_key="auth_tokens/x", http_options=plain)._api_client) is None
