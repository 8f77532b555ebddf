"""The OpenAPI document matches the implementation: same routes and methods, the models the routes validate with."""
from __future__ import annotations

import re

from backend.openapi.document import REF
from backend.schemas.requests import AnalyzeRequest, ExplanationRequest, SubtopicsRequest


def test_every_route_is_documented_and_nothing_else(app):
    document = app.test_client().get("/openapi.json").get_json()
    implemented = {(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method) for rule in app.url_map.iter_rules()
                   if rule.endpoint != "static" for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method.upper()) for path, operations in document["paths"].items() for method in operations}
    assert implemented == documented


def test_request_bodies_are_the_models_the_routes_validate_with(app):
    schemas = app.test_client().get("/openapi.json").get_json()["components"]["schemas"]
    for model in (AnalyzeRequest, SubtopicsRequest, ExplanationRequest):
        expected = model.model_json_schema(ref_template=REF)
        expected.pop("$defs", None)
        assert schemas[model.__name__] == expected


def test_document_basics(app):
    document = app.test_client().get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert set(document["components"]["securitySchemes"]) == {"ApiKey", "Bearer", "AdminKey"}
    analyze = document["paths"]["/api/analyze"]["post"]
    assert {"200", "401", "422", "429", "502", "503", "504"} <= set(analyze["responses"])


def test_every_ai_operation_says_its_text_is_untrusted(client):
    """Model output comes back as the model wrote it: clients are told to render it as text."""
    document = client.get("/openapi.json").get_json()
    assert "untrusted" in document["info"]["description"]
    for path in ("/api/analyze", "/api/create_subtopics", "/api/explanation", "/api/transcribe", "/api/pronunciation"):
        assert "untrusted" in document["paths"][path]["post"]["description"], path


def test_the_breaker_names_are_this_deployments(make_app, fake_openai):
    """The breaker admin's `name` lists the registry's providers: the fallback only where it is set."""
    def names(app):
        schema = app.test_client().get("/openapi.json").get_json()["components"]["schemas"]["OpenRequest"]
        return schema["properties"]["name"]["enum"]

    assert names(make_app()) == ["gemini", "azure_speech", "azure_tts"]
    assert names(make_app(FALLBACK_LLM_BASE_URL=fake_openai.base_url)) == ["gemini", "fallback", "azure_speech",
                                                                          "azure_tts"]
