"""The fake Gemini server's lesson answers (plan, section content, exercises), through the real google-genai client."""

import json

from backend.schemas.lessons import ExerciseSet, LessonPlan, SectionContent
from tests.fakes.gemini_answers import build_answer
from tests.unit.gemini_fake_client import ask, client, fake, server  # noqa: F401, I001  (fixtures)

SECTION = {"topic": "Travel", "level": "B1", "language": "en-US", "lesson": "Travel: a lesson",
           "section": "Key vocabulary for Travel"}


def test_a_plan_has_the_asked_number_of_distinct_titles_from_the_topic(client):  # noqa: F811
    for count in (2, 4, 8, 16):
        plan = LessonPlan.model_validate(ask(client, LessonPlan, {"topic": "Travel", "sections": count}).parsed)
        assert "Travel" in plan.title and len(plan.sections) == count == len(set(plan.sections))
        assert all("Travel" in title for title in plan.sections)
    again = LessonPlan.model_validate(ask(client, LessonPlan, {"topic": "Travel", "sections": 4}).parsed)
    assert again.sections == plan.sections[:4]  # deterministic


def test_section_content_explains_the_section_simpler_at_a1(client):  # noqa: F811
    easy = SectionContent.model_validate(ask(client, SectionContent, {**SECTION, "level": "A1"}).parsed)
    hard = SectionContent.model_validate(ask(client, SectionContent, {**SECTION, "level": "C1"}).parsed)
    assert easy.title == hard.title == SECTION["section"] and SECTION["section"] in hard.explanation
    assert len(easy.explanation) < len(hard.explanation) and easy.key_points and easy.examples


def test_exercises_have_their_answer_among_their_options(client):  # noqa: F811
    for count in (3, 4, 5):
        result = ExerciseSet.model_validate(ask(client, ExerciseSet, {**SECTION, "exercises": count}).parsed)
        assert len(result.exercises) == count == len({e.question for e in result.exercises})
        for exercise in result.exercises:
            assert exercise.answer in exercise.options and len(set(exercise.options)) == len(exercise.options) == 4
    assert len({e.options.index(e.answer) for e in result.exercises}) > 1  # the right answer is not always first


def test_without_a_schema_title_the_inputs_say_which_answer_it_is():
    def answer(inputs):
        return build_answer({"contents": [{"parts": [{"text": f"Task.\nINPUT: {json.dumps(inputs)}"}]}],
                             "generationConfig": {"responseMimeType": "application/json"}})
    assert LessonPlan.model_validate(answer({"topic": "Art", "sections": 3})).sections[0].endswith("Art")
    assert SectionContent.model_validate(answer(SECTION)).title == SECTION["section"]
    assert len(ExerciseSet.model_validate(answer({**SECTION, "exercises": 4})).exercises) == 4
    assert "subtopics" in answer({"topic": "Art", "count": 3})  # the subtopics' inputs are still subtopics
