"""generateContent with the request's wire form built once per configuration, not on every call.

google-genai converts its request models to the wire format on every call: `_GenerateContentParameters_to_mldev`
walks the config with some 120 path lookups over pydantic models, after a deep copy of the config for its automatic
function calling. Measured in-process against the fake (300 JSON calls, the fake's own thread included): 4.30 ms
of CPU per call through generate_content, 2.47 ms this way (`bench.miss_overhead` reports the SDK's share of a
miss). Everything but the contents, the system prompt and the per-call timeout is the same for every call of one
operation, so here the config's wire form is made once, by the SDK's own converter (it stays exactly the SDK's
format: a test compares the requests of both paths on the wire), and each call adds its contents and its system
prompt (a conversation's holds its scenario and running summary, different for every learner).
For the plain Gemini API with an API key, the request then goes out through a thin client (gemini_http.py: urllib3
over kept-alive connections, the SDK's URL, headers, timeout and error types) rather than the SDK's httpx client,
and the answer is read into the SDK's own response model holding only the fields callers read (_read_answer).
Measured with `python -m bench.app_cpu --compare` (lockstep, 31 rounds), an uncached analysis takes 680-760 us
less CPU in-process this way (4.63 -> 3.82 ms, 4.06 -> 3.43 ms in two runs): the SDK's client spent some 1,200 us
per call in Python around the round trip, urllib3 about 500; its full answer conversion 280 us, _read_answer 70
(130 us of the whole miss). Callers still get a GenerateContentResponse and every failure still maps as before
(gemini_errors.map_failure); tests compare both paths on the wire (tests/unit/test_gemini_wire.py), on failures
(test_gemini_http.py, test_gemini_http_tls.py) and on answers (test_gemini_answer_read.py). Any other client
configuration, or per-call options beyond a timeout, go through the SDK's own API client (`BaseApiClient.request`)
and its full response conversion, as before.

This leans on the SDK's module-level converters, its request builder and `BaseApiClient.request`, which are not
public API: the pinned google-genai (requirements.txt) is what the wire test checks; on an upgrade, that test says
whether they still hold. Where the wire form differs or the client is not the plain Gemini API (Vertex AI), the SDK's
own generate_content is used. An answer the model marks as to be continued (a continuation token) is read by the
SDK's full conversion and followed through the SDK's own machinery, as its generate_content would.
"""
from __future__ import annotations

import copy
import json
import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import urlencode

from google import genai
from google.genai import _common, _extra_utils, types
from google.genai import models as genai_models

from backend.providers.gemini_http import GeminiHttp

# Distinct configurations kept (kind, schema, temperature, ...): one per operation; the bound is a safeguard.
MAX_TEMPLATES = 64
_PLACEHOLDER = [{"role": "user", "parts": [{"text": "-"}]}]


class RequestTemplates:
    """The wire form of each configuration, built on first use (bounded, least recently used dropped first)."""

    def __init__(self, max_templates: int = MAX_TEMPLATES) -> None:
        self._max = max_templates
        self._templates: OrderedDict[Any, tuple[str, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()
        # The SDK client the thin HTTP client was made for, and that client (None: the SDK's API client sends).
        self._http: tuple[Any, GeminiHttp | None] | None = None

    def generate(self, client: genai.Client, key: Any, model: str, contents: list[dict[str, Any]],
                 config: types.GenerateContentConfig) -> types.GenerateContentResponse:
        """generate_content(model, contents, config), the config's wire form taken from the template for ``key``
        (the caller's name for everything in ``config`` but ``system_instruction`` and ``http_options``, which are
        read per call)."""
        models = client.models
        api_client = models._api_client
        # Vertex AI has another wire form; extra_body is merged by the API client into the request in place, which
        # would reach the shared template's nested dicts: both keep the SDK's own path.
        if api_client.vertexai or _extra_body(api_client, config):
            return models.generate_content(model=model, contents=contents, config=config)
        path, template = self._template(api_client, key, model, config)
        request = dict(template)
        if config.system_instruction:
            if not isinstance(config.system_instruction, str):
                raise TypeError("a templated request's system instruction is a string")
            # As the SDK writes a plain-text system instruction (t_content: one user part), first as it does.
            request = {"systemInstruction": {"parts": [{"text": config.system_instruction}], "role": "user"},
                       **request}
        request["contents"] = contents
        http = self._http_for(api_client)
        options = config.http_options
        # The thin path takes a per-call timeout; any other per-call option goes through the SDK's API client.
        if http is not None and (options is None or not options.model_fields_set - {"timeout"}):
            headers, text = http.post(path, request, options.timeout if options is not None else None)
            body = json.loads(text) if text else {}
            read = _read_answer(body, headers)
            answer = read if read is not None else _sdk_answer(body, headers, config)
        else:
            response = api_client.request("post", path, request, config.http_options)
            answer = _sdk_answer(json.loads(response.body) if response.body else {}, response.headers, config)
        token = _extra_utils.should_continue_generation(answer)
        if token is None:
            return answer
        return _continued(models, model, contents, config, answer, token)

    def warm(self, client: genai.Client, key: Any, model: str, config: types.GenerateContentConfig) -> None:
        """Build the template for ``key`` now (a worker's warm-up), without calling Gemini."""
        if not client.models._api_client.vertexai:
            self._template(client.models._api_client, key, model, config)
            self._http_for(client.models._api_client)

    def close(self) -> None:
        """Close the thin client's connections (the SDK client closes its own)."""
        with self._lock:
            held, self._http = self._http, None
        if held is not None and held[1] is not None:
            held[1].close()

    def __len__(self) -> int:
        return len(self._templates)

    def _http_for(self, api_client: Any) -> GeminiHttp | None:
        """The thin client of this SDK client (made on first use, in the process that uses it), or None."""
        held = self._http
        if held is not None and held[0] is api_client:
            return held[1]
        with self._lock:
            held = self._http
            if held is None or held[0] is not api_client:
                if held is not None and held[1] is not None:
                    held[1].close()  # the SDK client was replaced (closed and made anew)
                held = self._http = (api_client, GeminiHttp.for_client(api_client))
        return held[1]

    def _template(self, api_client: Any, key: Any, model: str,
                  config: types.GenerateContentConfig) -> tuple[str, dict[str, Any]]:
        with self._lock:
            found = self._templates.get(key)
            if found is not None:
                self._templates.move_to_end(key)
                return found
        built = _wire_form(api_client, model, config.model_copy(update={"http_options": None,
                                                                        "system_instruction": None}))
        with self._lock:
            self._templates[key] = built
            while len(self._templates) > self._max:
                self._templates.popitem(last=False)
        return built


def _extra_body(api_client: Any, config: types.GenerateContentConfig) -> bool:
    """Whether the client's or the call's HTTP options add fields to the request body."""
    client_options = getattr(api_client, "_http_options", None)
    return bool(getattr(client_options, "extra_body", None)
                or (config.http_options is not None and config.http_options.extra_body))


def _wire_form(api_client: Any, model: str, config: types.GenerateContentConfig) -> tuple[str, dict[str, Any]]:
    """(path, request without contents) as the SDK's _generate_content makes them for the Gemini API."""
    parameters = types._GenerateContentParameters(model=model, contents=_PLACEHOLDER, config=config)
    request = genai_models._GenerateContentParameters_to_mldev(api_client, parameters, None, parameters)
    url = request.get("_url")
    path = "{model}:generateContent".format_map(url) if url else "{model}:generateContent"
    query = request.get("_query")
    if query:
        path = f"{path}?{urlencode(query)}"
    request.pop("config", None)
    request = _common.encode_unserializable_types(_common.convert_to_dict(request))
    request.pop("contents", None)
    # The API client drops _url and _query from what it sends; the template is shared, so it gets copies.
    return path, {name: copy.deepcopy(value) for name, value in request.items() if not name.startswith("_")}


# What callers read of an answer (gemini.py, gemini_response.py, and continuation tokens: the SDK's
# should_continue_generation): only these fields are given to the SDK's response model on the thin path.
_CANDIDATE_FIELDS = ("content", "finishReason")
_PART_FIELDS = ("text", "thought")
_USAGE_FIELDS = ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount", "totalTokenCount")


def _read_answer(body: Any, headers: dict[str, str]) -> types.GenerateContentResponse | None:
    """The answer as the SDK's own response model, validated by it, holding only the fields callers read; None for
    anything but the usual shape, or an answer to be continued, which the SDK's full conversion (_sdk_answer) reads.

    The SDK prunes every unknown field from the whole body and validates all the rest (safety ratings, token
    details per modality, ...): 280 us per answer, measured, against 70 us for this. The fields read get the same
    validation as there, so a wrong type in one of them fails the same way; the fields nobody reads are not checked."""
    if not isinstance(body, dict):
        return None
    pruned: dict[str, Any] = {"sdkHttpResponse": {"headers": headers}}
    candidates = body.get("candidates")
    if candidates is not None:
        if not isinstance(candidates, list):
            return None
        pruned["candidates"] = []
        for candidate in candidates:
            if not isinstance(candidate, dict) or "continuationToken" in candidate:
                return None
            kept = {name: candidate[name] for name in _CANDIDATE_FIELDS if name in candidate}
            content = kept.get("content")
            if content is not None:
                parts = content.get("parts") if isinstance(content, dict) else "not an object"
                if parts is not None and not (isinstance(parts, list) and all(isinstance(p, dict) for p in parts)):
                    return None
                kept["content"] = {} if parts is None else {
                    "parts": [{name: part[name] for name in _PART_FIELDS if name in part} for part in parts]}
            pruned["candidates"].append(kept)
    for name, fields in (("usageMetadata", _USAGE_FIELDS), ("promptFeedback", ("blockReason",))):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, dict):
                return None
            pruned[name] = {field: value[field] for field in fields if field in value}
    if body.get("modelVersion") is not None:
        pruned["modelVersion"] = body["modelVersion"]
    return types.GenerateContentResponse.model_validate(pruned)


def _sdk_answer(body: Any, headers: dict[str, str] | None,
                config: types.GenerateContentConfig) -> types.GenerateContentResponse:
    """The SDK's own conversion of a generateContent response body (as its _generate_content does), without the
    response schema: given one, the SDK also parses the answer's text into ``parsed`` (a third of the conversion's
    cost, 418 -> 280 us measured), which nothing here reads: backend/llm/parse.py parses and repairs the text."""
    body = genai_models._GenerateContentResponse_from_mldev(body, None, None)
    answer = types.GenerateContentResponse._from_response(response=body, kwargs={"config": {
        "include_all_fields": getattr(config, "include_all_fields", None)}})
    answer.sdk_http_response = types.HttpResponse(headers=headers)
    return answer


def _continued(models: Any, model: str, contents: list[dict[str, Any]], config: types.GenerateContentConfig,
               first: types.GenerateContentResponse, token: bytes) -> types.GenerateContentResponse:
    """Follow continuation tokens as the SDK's generate_content does, then merge the hops into one answer."""
    answers: list[types.GenerateContentResponse] = [first]
    hop_token: bytes | None = token
    while hop_token is not None and _extra_utils.should_enable_automatic_continuation(config, default_enabled=True):
        hop_config = _extra_utils.prepare_continuation_config(config, hop_token)
        answers.append(models._generate_content(model=model, contents=contents, config=hop_config))
        hop_token = _extra_utils.should_continue_generation(answers[-1])
    return _extra_utils.merge_continuation_responses(answers, config=config)
