"""Settings of the fake OpenAI-compatible server, the faults they inject and OpenAI's error bodies."""

from tests.fakes.fake_settings import SettingsTable

# name: (status, type, param, code, message); {model} and {retry_after} are filled in when sent.
HTTP_ERRORS = {
    "400": (400, "invalid_request_error", None, None, "Invalid request (injected by the fake)."),
    "401": (401, "invalid_request_error", None, "invalid_api_key",
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."),
    "404": (404, "invalid_request_error", "model", "model_not_found",
            "The model `{model}` does not exist or you do not have access to it."),
    "429": (429, "requests", None, "rate_limit_exceeded",
            ("Rate limit reached for {model} in organization org-fake on requests per min (RPM): Limit 60, Used 60, "
             "Requested 1. Please try again in {retry_after}s. Visit https://platform.openai.com/account/rate-limits "
             "to learn more.")),
    "quota": (429, "insufficient_quota", None, "insufficient_quota",
              ("You exceeded your current quota, please check your plan and billing details. For more information "
               "on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.")),
    "500": (500, "server_error", None, None,
            "The server had an error while processing your request. Sorry about that!"),
    "503": (503, "server_error", None, None, "The engine is currently overloaded, please try again later."),
}
# Transport faults. Before any byte: hang (no answer), reset (TCP RST). In the body: bad_json (a 200 whose JSON
# does not parse; in a stream, a broken data line after half the deltas), cut and stream_reset (the same: RST after
# half the body or half the deltas; stream_reset is the Gemini fake's name), stall (half, then silence). Streams
# only (a plain call answers normally): stream_error (an error event after half the deltas), stream_eof (the body
# ends cleanly after half the deltas: no finish_reason, no [DONE]). In a stream, "half the deltas" is
# `fault_after_chunks` text deltas when set (at least one), and the fault comes `chunk_latency_ms` after them.
TRANSPORT = ("hang", "reset", "bad_json", "cut", "stream_reset", "stall", "stream_error", "stream_eof")
FAULTS = tuple(HTTP_ERRORS) + TRANSPORT
# Model output that is delivered but bent: fenced, wrapped in prose, cut at the token limit, empty, refused, filtered.
MALFORMED = ("markdown", "prose", "truncated", "empty", "refusal", "content_filter")


def boolean(value):
    """Parse a boolean setting given as bool, number or text."""
    if isinstance(value, str):
        if value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if value.strip().lower() in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return bool(value)


def model_list(value):
    """Known models as a comma-separated string (None: any model is known)."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return ",".join(m.strip() for m in items if str(m).strip()) or None


# Which calls fail, as in the Gemini fake: with fail_next > 0 that many calls fail with `error` (503 when unset),
# then both clear; else with error_rate > 0 that share of calls fails (seeded by `seed`); else a set `error` fails
# every call. `malformed` bends every successful answer. json_object_only answers 400 to json_schema, as some
# vLLM / llama.cpp / Ollama versions do; strict_schemas checks strict json_schema rules as OpenAI does; models lists
# the known models (others get 404).
DEFAULTS = {"latency_ms": 0, "chunk_latency_ms": 0, "chunk_size": 8, "fault_after_chunks": 0, "error": None,
            "error_rate": 0.0, "seed": None, "fail_next": 0, "retry_after": 1, "malformed": None, "key": None,
            "json_object_only": False, "strict_schemas": True, "models": None}
TYPES = {"latency_ms": int, "chunk_latency_ms": int, "chunk_size": int, "fault_after_chunks": int, "error": str,
         "error_rate": float, "seed": int, "fail_next": int, "retry_after": int, "malformed": str, "key": str,
         "json_object_only": boolean, "strict_schemas": boolean, "models": model_list}
CHOICES = {"error": FAULTS, "malformed": MALFORMED}


SETTINGS = SettingsTable(DEFAULTS, TYPES, CHOICES)


def error_body(message, kind="invalid_request_error", param=None, code=None):
    """An error in OpenAI's shape."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def http_error(name, model="", retry_after=1, message=None):
    """(status, body, headers) of an injected HTTP error."""
    status, kind, param, code, text = HTTP_ERRORS[name]
    headers = {}
    if status == 429:
        headers = {"Retry-After": str(retry_after), "x-ratelimit-limit-requests": "60",
                   "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": f"{retry_after}s",
                   "x-ratelimit-limit-tokens": "150000", "x-ratelimit-remaining-tokens": "149000",
                   "x-ratelimit-reset-tokens": "400ms"}
    text = message or text.format(model=model or "unknown", retry_after=retry_after)
    return status, error_body(text, kind, param, code), headers


def status_error(status, message=None):
    """(status, body, headers) for a scripted status code."""
    for name, spec in HTTP_ERRORS.items():
        if spec[0] == status and name != "quota":
            return http_error(name, message=message)
    kind = "invalid_request_error" if status < 500 else "server_error"
    return status, error_body(message or f"Scripted error {status}.", kind), {}


def auth_error(given):
    """What OpenAI answers without a key, or with a wrong one (401 both)."""
    if not given:
        return 401, error_body("You didn't provide an API key. You need to provide your API key in an Authorization "
                               "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password "
                               "field (with blank username) if you're accessing the API from your browser and are "
                               "prompted for a username and password. You can obtain an API key from "
                               "https://platform.openai.com/account/api-keys."), {}
    masked = given[:3] + "*" * max(0, len(given) - 7) + given[-4:] if len(given) > 8 else "***"
    return 401, error_body(f"Incorrect API key provided: {masked}. You can find your API key at "
                           "https://platform.openai.com/account/api-keys.", code="invalid_api_key"), {}
