"""Minimal instances of any JSON (or OpenAPI-style) schema, for answers the fake Gemini server has no maker for."""

FORMATS = {"date-time": "2024-01-01T00:00:00Z", "date": "2024-01-01", "time": "00:00:00", "email": "user@example.com",
           "uri": "https://example.com/", "uuid": "00000000-0000-4000-8000-000000000000"}


def resolve(schema, root):
    """Follow a local $ref such as '#/$defs/Item'."""
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 20:
        node = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        schema, seen = node, seen + 1
    return schema if isinstance(schema, dict) else {}


def schema_type(schema):
    """The schema's type, lower-case (OpenAPI-style schemas use OBJECT, STRING, ...)."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "null")
    if kind is None and "properties" in schema:
        kind = "object"
    return str(kind).lower() if kind else None


def from_schema(schema, root, name="value", depth=0):
    """A minimal value satisfying a JSON (or OpenAPI-style) schema."""
    schema = resolve(schema, root)
    for key in ("anyOf", "oneOf"):
        options = [resolve(s, root) for s in schema.get(key) or []]
        if options:
            chosen = next((s for s in options if schema_type(s) != "null"), options[0])
            return from_schema(chosen, root, name, depth)
    if schema.get("allOf"):
        merged = {}
        for part in schema["allOf"]:
            part = resolve(part, root)
            merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
            merged.setdefault("properties", {}).update(part.get("properties", {}))
            merged.setdefault("required", []).extend(part.get("required", []))
        return from_schema(merged, root, name, depth)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    kind = schema_type(schema)
    if kind == "object":
        props = schema.get("properties", {})
        keys = list(props) if depth < 6 else schema.get("required", [])
        return {k: from_schema(props.get(k, {}), root, k, depth + 1) for k in keys}
    if kind == "array":
        size = int(schema.get("minItems") or (1 if depth < 6 else 0))
        return [from_schema(schema.get("items", {}), root, name, depth + 1) for _ in range(size)]
    if kind in ("integer", "number"):
        value = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
        value = min(value, schema.get("maximum", value))
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    if schema.get("format") in FORMATS:
        return FORMATS[schema["format"]]
    text = f"example {name}".replace("_", " ").ljust(int(schema.get("minLength", 0)), "x")
    return text[: schema.get("maxLength", len(text))]


def complete(schema, value, root, depth=0):
    """Add whatever required fields a known answer lacks, so it always fits the schema."""
    schema = resolve(schema, root)
    if depth > 8:
        return value
    if isinstance(value, dict) and schema_type(schema) == "object":
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                value[key] = from_schema(props.get(key, {}), root, key, depth + 1)
        for key, sub in props.items():
            if key in value:
                value[key] = complete(sub, value[key], root, depth + 1)
    elif isinstance(value, list) and schema_type(schema) == "array":
        return [complete(schema.get("items", {}), v, root, depth + 1) for v in value]
    return value
