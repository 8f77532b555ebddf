"""Request checks of the fake OpenAI-compatible server: the 400s and 404s a real server gives for bad requests."""

import re

from tests.fakes.openai_compat_faults import error_body, http_error

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
FORMATS = ("text", "json_object", "json_schema")
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def bad(message, param=None, code=None):
    return 400, error_body(message, param=param, code=code), {}


def text_of(content):
    """The text of a message's content: a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def check(request, cfg):
    """None when the request is acceptable, else (status, error body, headers)."""
    if not isinstance(request, dict):
        return bad("Invalid type for request body: expected an object.")
    model, messages = request.get("model"), request.get("messages")
    if not model or not isinstance(model, str):
        return bad("you must provide a model parameter")
    if messages is None:
        return bad("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        return bad("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty "
                   "array instead.", "messages", "empty_array")
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ROLES:
            return bad(f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', "
                       "'tool', and 'developer'.", f"messages[{i}].role", "invalid_value")
        if not isinstance(msg.get("content"), (str, list)) and not (role == "assistant" and msg.get("tool_calls")):
            return bad(f"Invalid type for 'messages[{i}].content': expected one of a string or array of objects.",
                       f"messages[{i}].content", "invalid_type")
    if cfg["models"] and model not in cfg["models"].split(","):
        return http_error("404", model)
    return check_numbers(request) or check_stream(request) or check_format(request, cfg)


def check_numbers(request):
    temperature = request.get("temperature")
    if temperature is not None and (not isinstance(temperature, (int, float)) or not 0 <= temperature <= 2):
        return bad(f"Invalid 'temperature': expected a number between 0 and 2, but got {temperature} instead.",
                   "temperature", "decimal_above_max_value")
    for name in ("max_tokens", "max_completion_tokens"):
        value = request.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            return bad(f"Invalid '{name}': integer below minimum value. Expected a value >= 1, but got {value} "
                       "instead.", name, "integer_below_min_value")
    return None


def check_stream(request):
    if request.get("stream_options") is not None and not request.get("stream"):
        return bad("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options")
    return None


def check_format(request, cfg):
    fmt = request.get("response_format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind not in FORMATS:
        return bad(f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and 'text'.",
                   "response_format.type", "invalid_value")
    if kind == "json_object":
        words = " ".join(text_of(m.get("content")) for m in request["messages"])
        if "json" not in words.lower():
            return bad("'messages' must contain the word 'json' in some form, to use 'response_format' of type "
                       "'json_object'.", "messages")
        return None
    if kind != "json_schema":
        return None
    if cfg["json_object_only"]:
        return bad("'response_format.type' json_schema is not supported by this server; use 'json_object' or "
                   "'text'.", "response_format")
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict) or "name" not in spec:
        return bad("Missing required parameter: 'response_format.json_schema.name'.",
                   "response_format.json_schema.name", "missing_required_parameter")
    if not isinstance(spec["name"], str) or not NAME.match(spec["name"]):
        return bad("Invalid 'response_format.json_schema.name': string does not match pattern. Expected a string "
                   "that matches the pattern '^[a-zA-Z0-9_-]+$'.", "response_format.json_schema.name",
                   "invalid_value")
    schema = spec.get("schema")
    if schema is not None and not isinstance(schema, dict):
        return bad("Invalid type for 'response_format.json_schema.schema': expected an object.",
                   "response_format.json_schema.schema", "invalid_type")
    problem = strict_problem(schema or {}) if spec.get("strict") and cfg["strict_schemas"] else None
    if problem:
        return bad(f"Invalid schema for response_format '{spec['name']}': {problem}", "response_format")
    return None


def strict_problem(schema):
    """What OpenAI's strict mode would reject in this schema, or None."""
    if schema.get("type") != "object":
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{schema.get('type')}\"'."
    return walk(schema, ())


def walk(node, path):
    if isinstance(node, list):
        return next((p for i, n in enumerate(node) if (p := walk(n, (*path, str(i))))), None)
    if not isinstance(node, dict):
        return None
    where = f"In context=({', '.join(repr(p) for p in path)})"
    if node.get("type") == "object" or "properties" in node:
        if node.get("additionalProperties") is not False:
            return f"{where}, 'additionalProperties' is required to be supplied and to be false."
        missing = [k for k in node.get("properties", {}) if k not in (node.get("required") or [])]
        if missing:
            return (f"{where}, 'required' is required to be supplied and to be an array including every key in "
                    f"properties. Missing '{missing[0]}'.")
    for key in ("properties", "$defs", "definitions"):
        for name, sub in (node.get(key) or {}).items():
            if problem := walk(sub, (*path, key, name)):
                return problem
    for key in ("items", "anyOf", "allOf", "oneOf"):
        if key in node and (problem := walk(node[key], (*path, key))):
            return problem
    return None
