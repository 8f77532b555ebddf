"""The fake OpenAI-compatible server's lesson answers, through the real openai SDK: json_schema and json_object."""

# ruff: noqa: F811  (the fixtures imported here come back as test arguments of the same name)
import json

import pytest

from backend.schemas.lessons import ExerciseSet, LessonPlan, SectionContent
from tests.unit.openai_fake_client import MODEL, chat, client, fake, server, task  # noqa: F401  (fixtures)

SECTION = {"topic": "Food", "level": "A2", "language": "en-US", "lesson": "Food: a lesson",
           "section": "Ordering in a restaurant"}


@pytest.mark.parametrize("model_cls, inputs", [
    (LessonPlan, {"topic": "Food", "sections": 5}), (SectionContent, SECTION),
    (ExerciseSet, {**SECTION, "exercises": 4})])
def test_lesson_answers_in_both_json_modes(client, model_cls, inputs):
    parsed = client.chat.completions.parse(model=MODEL, messages=task("Answer.", inputs),
                                           response_format=model_cls).choices[0].message.parsed
    assert isinstance(parsed, model_cls)
    loose = json.loads(chat(client, task("Answer in JSON.", inputs), response_format={"type": "json_object"})
                       .choices[0].message.content)
    assert model_cls.model_validate(loose) == parsed  # the inputs alone say which answer it is
    if model_cls is LessonPlan:
        assert len(parsed.sections) == 5 and all("Food" in title for title in parsed.sections)
    if model_cls is SectionContent:
        assert parsed.title == SECTION["section"] and parsed.explanation
    if model_cls is ExerciseSet:
        assert len(parsed.exercises) == 4 and all(e.answer in e.options for e in parsed.exercises)
