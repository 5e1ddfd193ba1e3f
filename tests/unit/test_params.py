"""Parameter validation from the plain data the registry's subprocess sends: type, bounds, choices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app import create_app
from app.lesson import Lesson, Param
from app.params import ParamError, to_argv, validate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def lesson() -> Lesson:
    # Built by hand, as the registry builds it from JSON: no callable crossed a process boundary.
    return Lesson(id="90_params", number="90", path=Path("90_params.py"), params=[
        Param("workers", "--workers", "int", 4, "threads", min=1, max=16),
        Param("rate", "--rate", "float", 1.0, "per second", min=0.5),
        Param("count", "--count", "int", 3, "unbounded"),
        Param("mode", "--mode", "choice", "fast", "how", choices=["fast", "slow"]),
        Param("level", "--level", "choice", 1, "which", choices=[1, 2, 3]),
        Param("name", "--name", "str", "x", "a name"),
        Param("loud", "--loud", "bool", False, "shout"),
    ])


@pytest.mark.parametrize("raw, message", [
    ({"workers": "0"}, "expected a whole number from 1 to 16, got '0'"),
    ({"workers": 17}, "expected a whole number from 1 to 16, got '17'"),
    ({"workers": "two"}, "expected a whole number from 1 to 16, got 'two'"),
    ({"rate": "0.1"}, "expected a number of at least 0.5, got '0.1'"),
    ({"rate": "inf"}, "expected a finite number, got 'inf'"),
    ({"count": "x"}, "expected a whole number, got 'x'"),
    ({"count": 2.5}, "expected a whole number"),
    ({"mode": "medium"}, "choose one of fast, slow"),
])
def test_messages_speak_the_kits_words(lesson, raw, message):
    with pytest.raises(ParamError) as err:
        validate(lesson, raw)
    assert (err.value.field, err.value.message) == (next(iter(raw)), message)


def test_values_are_converted_from_type_and_choices(lesson):
    values = validate(lesson, {"workers": "16", "rate": 2, "count": "-5", "level": "2", "mode": "slow",
                               "name": "--loud", "loud": "on"})
    assert values == {"workers": 16, "rate": 2.0, "count": -5, "mode": "slow", "level": 2,
                      "name": "--loud", "loud": True}
    assert to_argv(lesson, values) == ["--workers=16", "--rate=2.0", "--count=-5", "--mode=slow",
                                       "--level=2", "--name=--loud", "--loud"]


@pytest.mark.parametrize("field", ["workers", "rate", "count", "mode", "level", "name", "loud"])
@pytest.mark.parametrize("text", ["\ud800", "ok\udcff", "\udfff1"])
def test_lone_surrogates_are_refused_naming_the_field(lesson, field, text):
    with pytest.raises(ParamError) as err:
        validate(lesson, {field: text})
    assert err.value.field == field and "surrogate" in err.value.message


def test_an_unknown_field_with_a_surrogate_is_named_in_encodable_text(lesson):
    with pytest.raises(ParamError) as err:
        validate(lesson, {"\udcff": 1})
    assert err.value.field == "\\udcff"
    err.value.field.encode("utf-8")


def test_the_api_answers_400_for_a_lone_surrogate(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path),
                      "LESSONS_DIR": str(ROOT / "tests" / "fixtures" / "teacher_lessons")})
    headers = {"Host": "127.0.0.1:8765", "Content-Type": "application/json", "Accept": "application/json"}
    # json.dumps writes the surrogate as the escape \ud800, which is how a JSON body carries it.
    body = json.dumps({"lesson": "42", "params": {"name": "\ud800"}})
    answer = app.test_client().post("/runs", data=body, headers=headers)
    assert answer.status_code == 400 and answer.get_json()["field"] == "name"
    assert app.test_client().get("/api/runs", headers=headers).get_json() == []
