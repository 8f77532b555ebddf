"""The recovery rules of a lesson's three answers (backend/llm/lessons.py): what is kept, and an honest partial."""
from __future__ import annotations

import json

import pytest

from backend.llm.lessons import EXERCISES, LESSON_PLAN, SECTION_CONTENT
from backend.llm.parse import UnusableAnswer, parse_model_output

PLAN_ASKED = {"topic": "Travel", "sections": 3}
EXERCISES_ASKED = {"section": "Packing", "exercises": 4}


def _exercise(n, answer=None, options=("yes", "no")):
    return {"question": f"Q{n}?", "options": list(options), "answer": answer or options[0]}


def parse(answer, operation, context):
    return parse_model_output(json.dumps(answer), operation, context=context)


def test_a_clean_plan_is_kept_as_it_is():
    result = parse({"title": "Travel", "sections": ["A", "B", "C"]}, LESSON_PLAN, PLAN_ASKED)
    assert result.value.model_dump() == {"title": "Travel", "sections": ["A", "B", "C"]} and not result.partial


def test_more_sections_than_asked_are_cut_without_partial():
    result = parse({"title": "T", "sections": ["A", "B", "C", "D"]}, LESSON_PLAN, PLAN_ASKED)
    assert result.value.sections == ["A", "B", "C"] and not result.partial


@pytest.mark.parametrize("answer, title, sections", [
    ({"title": "T", "sections": ["A", "B"]}, "T", ["A", "B"]),  # fewer than asked
    ({"title": "T", "sections": ["A", "a ", "B", "", 7, "C"]}, "T", ["A", "B", "7"]),  # repeats and blanks dropped
    (["A", "B", "C"], "Travel", ["A", "B", "C"]),  # a bare list: the sections, the topic as title
    ({"lesson_title": "T", "outline": [{"title": "A"}, {"name": "B"}, {"x": 1}, "C"]}, "T", ["A", "B", "C"]),
    ({"title": " ", "sections": ["A", "B", "C"]}, "Travel", ["A", "B", "C"]),
])
def test_a_plan_that_needed_repair_is_partial(answer, title, sections):
    result = parse(answer, LESSON_PLAN, PLAN_ASKED)
    assert (result.value.title, result.value.sections, result.partial) == (title, sections, True)


@pytest.mark.parametrize("answer", [{"title": "T", "sections": []}, {"title": "T"}, {"sections": ["", " "]}, "x"])
def test_a_plan_without_a_usable_section_is_unusable(answer):
    with pytest.raises(UnusableAnswer):
        parse(answer, LESSON_PLAN, PLAN_ASKED)


def test_section_content_follows_the_explanation_rules():
    clean = {"title": "Packing", "explanation": "Pack light.", "key_points": ["One bag"], "examples": ["I pack."]}
    result = parse(clean, SECTION_CONTENT, {"section": "Packing"})
    assert result.value.model_dump() == clean and not result.partial
    joined = parse({"explanation": {"intro": "Pack light.", "why": "Less to carry."}}, SECTION_CONTENT,
                   {"section": "Packing"})
    assert joined.partial and joined.value.title == "Packing"
    assert joined.value.explanation == "Pack light.\n\nLess to carry." and joined.value.key_points == []
    with pytest.raises(UnusableAnswer):
        parse({"title": "Packing", "key_points": ["x"]}, SECTION_CONTENT, {"section": "Packing"})


def test_clean_exercises_are_kept_and_more_than_five_cut_without_partial():
    four = [_exercise(n) for n in range(1, 5)]
    result = parse({"exercises": four}, EXERCISES, EXERCISES_ASKED)
    assert [e.model_dump() for e in result.value.exercises] == four and not result.partial
    seven = parse({"exercises": [_exercise(n) for n in range(1, 8)]}, EXERCISES, EXERCISES_ASKED)
    assert len(seven.value.exercises) == 5 and not seven.partial


@pytest.mark.parametrize("bad", [
    _exercise(9, answer="maybe"),  # the answer is no option
    {"question": "Q9?", "options": ["yes"], "answer": "yes"},  # one option is no choice
    {"question": "Q9?", "options": ["yes", "Yes "], "answer": "yes"},  # the same option twice: one left
    {"question": "", "options": ["yes", "no"], "answer": "yes"},  # no question
    {"question": "Q9?", "options": ["yes", "no"]},  # no answer
    _exercise(1),  # the same question again
    "Q9?",
])
def test_an_exercise_that_cannot_be_checked_is_dropped_and_marks_partial(bad):
    three = [_exercise(n) for n in range(1, 4)]
    result = parse({"exercises": [*three, bad]}, EXERCISES, EXERCISES_ASKED)
    assert [e.model_dump() for e in result.value.exercises] == three and result.partial


@pytest.mark.parametrize("answer, options, expected", [
    ("B", ["red", "blue", "green"], "blue"),  # an option's letter
    ("c)", ["red", "blue", "green"], "green"),
    ("  BLUE ", ["red", "blue", "green"], "blue"),  # another case and spacing
    ({"1": "blue"}, ["red", "blue"], "blue"),
])
def test_an_answer_naming_an_option_another_way_is_that_option(answer, options, expected):
    three = [_exercise(n) for n in range(1, 4)]
    odd = {"question": "Colour?", "options": options, "answer": answer}
    result = parse({"exercises": [*three, odd]}, EXERCISES, EXERCISES_ASKED)
    assert result.value.exercises[-1].answer == expected and expected in result.value.exercises[-1].options
    assert result.partial


def test_a_letter_is_no_answer_when_the_options_are_letters():
    three = [_exercise(n) for n in range(1, 4)]
    odd = {"question": "Which letter?", "options": ["A", "C"], "answer": "B"}
    result = parse({"exercises": [*three, odd]}, EXERCISES, EXERCISES_ASKED)
    assert len(result.value.exercises) == 3 and result.partial


def test_exercises_under_other_names_or_as_a_bare_list_are_read():
    three = [_exercise(n) for n in range(1, 4)]
    bare = parse(three, EXERCISES, EXERCISES_ASKED)
    assert len(bare.value.exercises) == 3 and bare.partial
    renamed = [{"prompt": f"Q{n}?", "choices": {"A": "yes", "B": "no"}, "correct_answer": "A"} for n in range(1, 4)]
    result = parse({"questions": renamed}, EXERCISES, EXERCISES_ASKED)
    assert [e.model_dump() for e in result.value.exercises] == three and result.partial


def test_fewer_than_three_exercises_are_kept_as_partial_and_none_is_unusable():
    result = parse({"exercises": [_exercise(1), _exercise(2)]}, EXERCISES, EXERCISES_ASKED)
    assert len(result.value.exercises) == 2 and result.partial
    with pytest.raises(UnusableAnswer):
        parse({"exercises": [_exercise(1, answer="maybe")]}, EXERCISES, EXERCISES_ASKED)
    with pytest.raises(UnusableAnswer):
        parse({"exercises": []}, EXERCISES, EXERCISES_ASKED)
