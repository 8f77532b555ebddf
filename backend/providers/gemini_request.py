"""generateContent with the request's wire form built once per configuration, not on every call.

google-genai converts its request models to the wire format on every call: `_GenerateContentParameters_to_mldev`
walks the config with some 120 path lookups over pydantic models, after a deep copy of the config for its automatic
function calling. Measured in-process against the fake (300 JSON calls, the fake's own thread included): 4.30 ms
of CPU per call through generate_content, 2.47 ms this way (`bench.miss_overhead` reports the SDK's share of a
miss). Everything but the contents, the system prompt and the per-call timeout is the same for every call of one
operation, so here the config's wire form is made once, by the SDK's own converter (it stays exactly the SDK's
format: a test compares the requests of both paths on the wire), and each call adds its contents and its system
prompt (a conversation's holds its scenario and running summary, different for every learner).
The request then goes through the SDK's own API client (API key, base URL, API version, headers, timeout, transport,
its errors) and the answer through the SDK's own response conversion, so every caller still gets a
GenerateContentResponse and every failure still maps as before (gemini_errors.map_failure).

This leans on the SDK's module-level converters and `BaseApiClient.request`, which are not public API: the pinned
google-genai (requirements.txt) is what the wire test checks; on an upgrade, that test says whether they still
hold. Where the wire form differs or the client is not the plain Gemini API (Vertex AI), the SDK's own path is used.
An answer the model marks as to be continued (a continuation token) is followed through the SDK's own machinery,
as its generate_content would.
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

# Distinct configurations kept (kind, schema, temperature, ...): one per operation; the bound is a safeguard.
MAX_TEMPLATES = 64
_PLACEHOLDER = [{"role": "user", "parts": [{"text": "-"}]}]


class RequestTemplates:
    """The wire form of each configuration, built on first use (bounded, least recently used dropped first)."""

    def __init__(self, max_templates: int = MAX_TEMPLATES) -> None:
        self._max = max_templates
        self._templates: OrderedDict[Any, tuple[str, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

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
        response = api_client.request("post", path, request, config.http_options)
        answer = _answer(response, config)
        token = _extra_utils.should_continue_generation(answer)
        if token is None:
            return answer
        return _continued(models, model, contents, config, answer, token)

    def warm(self, client: genai.Client, key: Any, model: str, config: types.GenerateContentConfig) -> None:
        """Build the template for ``key`` now (a worker's warm-up), without calling Gemini."""
        if not client.models._api_client.vertexai:
            self._template(client.models._api_client, key, model, config)

    def __len__(self) -> int:
        return len(self._templates)

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


def _answer(response: Any, config: types.GenerateContentConfig) -> types.GenerateContentResponse:
    """The SDK's own conversion of a generateContent response body (as its _generate_content does), without the
    response schema: given one, the SDK also parses the answer's text into ``parsed`` (a third of the conversion's
    cost, 418 -> 280 us measured), which nothing here reads: backend/llm/parse.py parses and repairs the text."""
    body = json.loads(response.body) if response.body else {}
    body = genai_models._GenerateContentResponse_from_mldev(body, None, None)
    answer = types.GenerateContentResponse._from_response(response=body, kwargs={"config": {
        "include_all_fields": getattr(config, "include_all_fields", None)}})
    answer.sdk_http_response = types.HttpResponse(headers=response.headers)
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
