"""Build the OpenAPI 3.1 document from the same pydantic models the routes validate with."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from backend.openapi.budgets import budget_paths
from backend.openapi.common import (
    ADMIN,
    CLIENT,
    envelope,
    error_responses,
    json_body,
    multipart_audio,
    open_object,
    plain,
)
from backend.openapi.conversations import conversation_paths
from backend.openapi.lessons import lesson_paths
from backend.openapi.speech import speech_paths
from backend.schemas import responses
from backend.schemas.admin import ClearRequest, OpenRequest, ResetRequest
from backend.schemas.requests import (
    AnalyzeRequest,
    AudioUrlRequest,
    ExplanationRequest,
    PronunciationForm,
    PronunciationUrlRequest,
    SubtopicsRequest,
    TranscribeForm,
)

REF = "#/components/schemas/{model}"
AI_ERRORS = (400, 401, 413, 415, 422, 429, 502, 503, 504)
ADMIN_ERRORS = (400, 401, 403, 422, 429, 503)


# Model output is returned as the model wrote it: a scripted `<script>` in feedback comes back verbatim.
# What a partial answer keeps, per operation (the rules are in backend/llm/analysis.py and content.py).
PARTIAL_ANALYSIS = ("An answer the model got partly wrong keeps its usable parts with partial: true: a missing or "
                    "unreadable CEFR level gives cefr_assessment: null (a level is never invented); dropped or "
                    "missing lists are empty, missing feedback is an empty string. An answer with no level, no "
                    "feedback and no error in the learner's text is asked for once more, then answered 502.")
PARTIAL_EXPLANATION = ("An explanation the model sent as a list or an object of strings is joined into one text "
                       "(paragraphs separated by a blank line) with partial: true; without any explanation text the "
                       "answer is asked for once more, then answered 502.")
PARTIAL_SUBTOPICS = ("partial: true when subtopics had to be completed (a missing description is empty), dropped, "
                     "or fewer than requested were usable; none usable is asked for once more, then answered 502.")
UNTRUSTED_TEXT = ("Every text field of an answer (feedback, corrections, explanations, transcripts) is untrusted "
                  "text written by a model or derived from the learner's input: render it as text, never as HTML "
                  "or markup, and never execute it.")


@lru_cache(maxsize=4)
def build_document(breakers: tuple[str, ...] = ()) -> dict[str, Any]:
    """The whole document (built once per process: it depends on code, and on the breakers this deployment has,
    which the breaker admin's `name` lists)."""
    schemas: dict[str, Any] = {}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template=REF)
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas[model.__name__] = schema
        return {"$ref": REF.format(model=model.__name__)}

    def ai(summary: str, body: dict[str, Any], result: type[BaseModel], partial: str = "") -> dict[str, Any]:
        description = f"{partial} {UNTRUSTED_TEXT}" if partial else UNTRUSTED_TEXT
        return {"post": {"summary": summary, "description": description, "security": CLIENT, "requestBody": body,
                         "responses": {"200": envelope(ref(result), "The result; X-Cache says HIT, MISS or STALE"),
                                       **error_responses(AI_ERRORS)}}}

    def admin(method: str, summary: str, body: type[BaseModel] | None = None, required: bool = False):
        operation: dict[str, Any] = {"summary": summary, "security": ADMIN,
                                     "responses": {"200": envelope(open_object()), **error_responses(ADMIN_ERRORS)}}
        if body is not None:
            operation["requestBody"] = json_body(ref(body), required=required)
        return {method: operation}

    def form(model: type[BaseModel]) -> tuple[dict[str, Any], list[str]]:
        """The text fields of a multipart form, from the model that validates them."""
        schema = model.model_json_schema()
        return schema["properties"], schema.get("required", [])

    paths = {
        "/api/analyze": ai("Writing feedback with a CEFR level", json_body(ref(AnalyzeRequest)),
                           responses.AnalysisResult, PARTIAL_ANALYSIS),
        "/api/create_subtopics": ai("Subtopics of a lesson topic", json_body(ref(SubtopicsRequest)),
                                    responses.SubtopicsResult, PARTIAL_SUBTOPICS),
        "/api/explanation": ai("An explanation of a subtopic", json_body(ref(ExplanationRequest)),
                               responses.ExplanationResult, PARTIAL_EXPLANATION),
        "/api/transcribe": ai("Transcript of a recording (multipart upload or audio_url)",
                              multipart_audio(*form(TranscribeForm), ref(AudioUrlRequest)),
                              responses.TranscriptionResult),
        "/api/pronunciation": ai("Pronunciation scores against a reference text",
                                 multipart_audio(*form(PronunciationForm), ref(PronunciationUrlRequest)),
                                 responses.PronunciationResult),
        "/health": {"get": {"summary": "Liveness (touches no dependency)",
                            "responses": {"200": plain({"type": "object", "properties": {"status": {
                                "type": "string", "enum": ["ok"]}}, "required": ["status"]})}}},
        "/health/ready": {"get": {"summary": "Readiness", "responses": {
            "200": envelope(open_object()), **error_responses((503,))}}},
        "/health/cache": {"get": {"summary": "Cache mode and statistics",
                                  "responses": {"200": envelope(open_object())}}},
        "/api/health": {"get": {"summary": "Component health", "responses": {
            "200": envelope(open_object()), **error_responses((503,))}}},
        "/metrics": {"get": {"summary": "Prometheus metrics of every worker", "responses": {"200": {
            "description": "Prometheus text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/api/metrics": {"get": {"summary": "JSON summary of routes, cache, breakers, cost and spend",
                                 "description": "With a valid X-Admin-Key, spend.top_callers lists today's top "
                                                "spenders; a wrong key is refused (401) and counted.",
                                 "parameters": [{"name": "X-Admin-Key", "in": "header", "required": False,
                                                 "schema": {"type": "string"}}],
                                 "responses": {"200": envelope(open_object()), **error_responses((401, 429))}}},
        "/api/cache/stats": admin("get", "Cache statistics"),
        "/api/cache/clear": admin("post", "Clear the cache (one namespace or all)", ClearRequest),
        "/api/circuit-breaker/state": admin("get", "Breaker states"),
        "/api/circuit-breaker/reset": admin("post", "Close one breaker or all", ResetRequest),
        "/api/circuit-breaker/open": admin("post", "Hold a breaker open", OpenRequest, required=True),
        "/dashboard": {"get": {"summary": "Operators' dashboard", "responses": {"200": {
            "description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": plain(open_object())}}},
        **conversation_paths(ref),
        **speech_paths(ref),
        **lesson_paths(ref),
        **budget_paths(ref),
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Backend-AI", "version": "1.0.0",
                 "description": "AI backend of a language-learning app: transcripts, pronunciation scores, "
                                "writing feedback, lesson content and tutor conversations. " + UNTRUSTED_TEXT},
        "paths": paths,
        "components": {"schemas": _with_breaker_names(schemas, breakers), "securitySchemes": {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "Bearer": {"type": "http", "scheme": "bearer"},
            "AdminKey": {"type": "apiKey", "in": "header", "name": "X-Admin-Key"}}},
    }


def _with_breaker_names(schemas: dict[str, Any], breakers: tuple[str, ...]) -> dict[str, Any]:
    """The breaker admin's `name` as an enum of this deployment's breakers (the provider registry's names)."""
    if breakers:
        for model in (OpenRequest, ResetRequest):
            name = schemas[model.__name__]["properties"]["name"]
            target = next((option for option in name.get("anyOf", []) if option.get("type") == "string"), name)
            target.pop("pattern", None)
            target["enum"] = list(breakers)
    return schemas
