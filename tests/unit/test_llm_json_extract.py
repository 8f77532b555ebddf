"""Extracting JSON from model output: each syntactic repair named, text without JSON refused, the guards (size,
nesting, a cut-off number), and the metrics and logs of parsing."""
from __future__ import annotations

import json
import logging
import time

import pytest
from prometheus_client import REGISTRY

from backend.llm.extract import Unusable, extract_json, requote_single, scan_json
from backend.llm.parse import EXPLANATION, UnusableAnswer, parse_model_output
from tests.unit.llm_answers import EXPLAINED

CAP = 20_000


def extract(text: str):
    return extract_json(text, max_repair_chars=CAP)


@pytest.mark.parametrize("text, kinds", [
    ('{"a": 1}', []),
    ('```json\n{"a": 1}\n```', ["markdown_fence"]),
    ('Here it is: {"a": 1} Enjoy!', ["prose"]),
    ('{"a": 1,}', ["json_repair"]),
    ('```json\n{"a": 1, // one\n}\n```', ["markdown_fence", "json_repair"]),
    ('"{\\"a\\": 1}"', ["double_encoded"]),
    ("{'a': 1}", ["single_quotes", "json_repair"]),
])
def test_each_syntactic_repair_is_named(text, kinds):
    found = extract(text)
    assert found.value == {"a": 1} and found.kinds == kinds


@pytest.mark.parametrize("text", ["I'm sorry, I can't help with that.", "", "null", '"just words"', "42",
                                  "I can't explain {this} now.", "Sorry, [see above]."])  # brackets in prose
def test_text_without_a_json_object_is_unusable(text):
    with pytest.raises(Unusable):
        extract(text)


def test_a_cut_off_number_is_dropped_not_passed_on_shortened():
    # "0.75" arriving as "0.7" would otherwise be read as a complete, wrong value
    assert extract('{"level": "B1", "confidence": 0.7').value == {"level": "B1"}
    assert scan_json('{"a": "x", "b": "unfinished').cut == len('{"a": "x"')
    assert scan_json('{"a": ["x", "y"]').cut is None  # ends on a complete value: nothing to cut


def test_apostrophes_do_not_end_single_quoted_strings():
    text, changed = requote_single("{'a': 'It's the students' work', 'b': ['x']}")
    assert changed and json.loads(text) == {"a": "It's the students' work", "b": ["x"]}


def test_oversized_input_is_refused_before_repair_and_fast():
    pathological = '{"a": [' + ",".join(['{"x": "abc, def'] * 70_000)  # json-repair is quadratic on this
    started = time.perf_counter()
    with pytest.raises(Unusable, match="too large"):
        extract(pathological)
    assert time.perf_counter() - started < 0.5
    big_but_valid = json.dumps({"a": "x" * (CAP * 2)})
    assert extract(big_but_valid).kinds == []  # the cap guards repair only, never strict parsing


def test_deep_nesting_is_refused():
    with pytest.raises(Unusable, match="nests deeper"):
        extract("[" * 5000)


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_failures_repairs_by_kind_and_time(caplog):
    source = {"source": "explanation"}
    before = (_sample("json_parse_failures_total", source), _sample("json_parse_seconds_count", source),
              _sample("json_parse_repairs_total", {**source, "kind": "markdown_fence"}))
    secret = "UNIQUE-MODEL-WORDS-0451"
    with caplog.at_level(logging.INFO, logger="backend.llm"):
        parse_model_output("```json\n" + json.dumps({**EXPLAINED, "title": secret}) + "\n```", EXPLANATION)
        with pytest.raises(UnusableAnswer):
            parse_model_output(f"Sorry, {secret} is not something I can explain.", EXPLANATION)
    assert _sample("json_parse_failures_total", source) == before[0] + 1
    assert _sample("json_parse_seconds_count", source) == before[1] + 2
    assert _sample("json_parse_repairs_total", {**source, "kind": "markdown_fence"}) == before[2] + 1
    repaired = [r for r in caplog.records if r.getMessage() == "model output repaired"]
    assert repaired and repaired[0].repair_kind == "markdown_fence"
    assert all(secret not in json.dumps(vars(r), default=str) for r in caplog.records)
