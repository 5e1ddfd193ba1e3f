"""The registry reads lessons without running them, ours and a teacher's alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.params import ParamError, to_argv, validate
from app.registry import Registry, parse_docstring

ROOT = Path(__file__).resolve().parents[2]
TEACHER = ROOT / "tests" / "fixtures" / "teacher_lessons"


@pytest.fixture(scope="module")
def ours():
    return Registry(ROOT / "lessons")


@pytest.fixture(scope="module")
def teachers():
    return Registry(TEACHER)


def test_docstring_sections():
    doc = "Title here.\n\nProblem:\n    Line one\n    line two.\n\nExercises:\n    1. a\n"
    title, sections = parse_docstring(doc)
    assert title == "Title here."
    assert sections == {"Problem": "Line one\nline two.", "Exercises": "1. a"}


def test_lesson_03_metadata(ours):
    lesson = ours.get("03")
    assert lesson is ours.get("03_producer_consumer")
    assert lesson.title.startswith("Producer/consumer")
    assert set(lesson.sections) == {"Problem", "What to watch", "Expected output", "Failure modes",
                                    "Exercises"}
    producers = lesson.param("producers")
    assert (producers.type, producers.min, producers.max, producers.default) == ("int", 1, 16, 2)
    assert lesson.param("log_format") is None and lesson.param("verbose") is None
    assert lesson.available and lesson.signals == ()


def test_unknown_ids_are_none(ours):
    assert ours.get("99") is None and ours.get("../03_producer_consumer") is None


def test_teacher_lesson_is_discovered_without_bounds(teachers):
    lesson = teachers.get("42")
    assert lesson.title == "A teacher's own lesson that follows only part of the standard."
    kinds = {p.name: p.type for p in lesson.params}
    assert kinds == {"rounds": "int", "speed": "float", "mode": "choice", "name": "str", "loud": "bool"}
    values = validate(lesson, {"rounds": "1000000", "speed": 3, "mode": "slow", "loud": True})
    assert values == {"rounds": 1000000, "speed": 3.0, "mode": "slow", "name": "x", "loud": True}
    assert to_argv(lesson, values) == ["--rounds=1000000", "--speed=3.0", "--mode=slow", "--name=x", "--loud"]


def test_broken_teacher_lesson_is_listed_unavailable(teachers):
    broken = teachers.get("43")
    assert not broken.available and "broken on purpose" in broken.error


def test_registry_notices_a_new_file(tmp_path):
    registry = Registry(tmp_path)
    assert registry.all() == []
    (tmp_path / "50_new.py").write_text('"""New."""\n')
    assert [lesson.id for lesson in registry.all()] == ["50_new"]


@pytest.mark.parametrize("raw, field", [
    ({"producers": 0}, "producers"), ({"producers": 1.5}, "producers"), ({"producers": True}, "producers"),
    ({"producers": None}, "producers"), ({"producers": [1]}, "producers"), ({"duration": "inf"}, "duration"),
    ({"duration": float("nan")}, "duration"), ({"duration": ""}, "duration"), ({"x": 1}, "x"),
    ({"queue_size": "1" * 31}, "queue_size"),
])
def test_validation_refuses_with_the_field(ours, raw, field):
    with pytest.raises(ParamError) as err:
        validate(ours.get("03"), raw)
    assert err.value.field == field


def test_validation_accepts_form_strings_and_ints_for_floats(ours):
    lesson = ours.get("03")
    values = validate(lesson, {"producers": "3", "duration": 2}, from_form=True)
    assert values["producers"] == 3 and values["duration"] == 2.0
    assert "--producers=3" in to_argv(lesson, values)


def test_text_params_cannot_become_options(teachers):
    lesson = teachers.get("42")
    values = validate(lesson, {"name": "--loud"})
    assert "--name=--loud" in to_argv(lesson, values) and "--loud" not in to_argv(lesson, values)
    with pytest.raises(ParamError):
        validate(lesson, {"name": "x" * 201})
    with pytest.raises(ParamError):
        validate(lesson, {"mode": "medium"})
