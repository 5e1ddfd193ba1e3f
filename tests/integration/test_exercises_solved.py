"""Every exercise of every lesson, checked the way a learner's try is: through the server.

For each exercise, a browser of its own saves the reference solution's edits as its copy (``PUT
/api/lessons/<id>/scratch``) and starts runs for the exercise with the solution's parameters until
the check has seen as many as the exercise needs: the check must pass. Then the lesson as it is,
with its defaults, must not pass (unless the exercise's point is to observe what the defaults show).
Runs of different exercises go side by side, except the lessons whose goals are timings (a CPU
speed-up, an event loop's lag): those run alone, so other runs cannot steal their cores.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from app import create_app
from app.registry import Registry
from tests.conftest import ROOT

PORT = 8765
GOOD = {"Host": f"127.0.0.1:{PORT}"}
JSON = {**GOOD, "Content-Type": "application/json"}
FINAL = ("exited", "failed", "stopped", "killed", "timeout")
ALONE = ("04", "13", "14")  # goals that are timings: run without company
SIDE_BY_SIDE = 3
RUN_TIMEOUT = 90.0

LESSONS = [lesson for lesson in Registry(ROOT / "lessons").all() if lesson.available]
EXERCISES = [(lesson, exercise) for lesson in LESSONS for exercise in lesson.exercises]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    app = create_app({"DATA_DIR": str(tmp_path_factory.mktemp("exercises")), "PORT": PORT,
                      "MAX_LIVE_RUNS": 8})
    yield app
    app.extensions["threadlab.runs"].shutdown(timeout=5)


def run_for(client, lesson, exercise, params: dict, scratch: bool) -> dict:
    answer = client.post("/runs", json={"lesson": lesson.id, "params": params, "exercise": exercise.n,
                                        "scratch": scratch}, headers=GOOD)
    assert answer.status_code == 201, answer.get_json()
    deadline = time.monotonic() + RUN_TIMEOUT
    url = f"/api/runs/{answer.get_json()['id']}"
    while (run := client.get(url, headers=GOOD).get_json())["status"] not in FINAL:
        assert time.monotonic() < deadline, f"{lesson.number}.{exercise.n} still {run['status']}"
        time.sleep(0.05)
    return run


def attempt(app, lesson, exercise) -> list[str]:
    """What went wrong with one exercise ([] when its solution passes and its defaults do not)."""
    wrong = []
    solver = app.test_client()  # a browser of its own: its own copy, its own progress
    edits = bool(exercise.solution_edits)
    if edits:
        saved = solver.put(f"/api/lessons/{lesson.id}/scratch",
                           json={"source": exercise.solved_source(lesson.source)}, headers=GOOD)
        assert saved.status_code == 200, saved.get_json()
    params = exercise.solution_params if exercise.solution_params is not None else exercise.params
    for _ in range(exercise.runs):
        run = run_for(solver, lesson, exercise, params, edits)
    if not (run["check"] or {}).get("passed"):
        wrong.append(f"{lesson.number}.{exercise.n} solution: {run['status']} {run['check']}")
    learner = app.test_client()
    run = run_for(learner, lesson, exercise, {}, False)
    check = run["check"] or {}
    this_run = check.get("this_run", check.get("passed"))
    if this_run is not exercise.default_passes:
        wrong.append(f"{lesson.number}.{exercise.n} defaults: {run['status']} {check} "
                     f"(expected passed={exercise.default_passes})")
    return wrong


def test_every_lesson_has_three_checked_exercises():
    for lesson in LESSONS:
        assert not lesson.exercises_error, lesson.exercises_error
        assert [e.n for e in lesson.exercises] == [1, 2, 3], lesson.id
        assert all(e.prompt and e.goal and e.hints for e in lesson.exercises), lesson.id


def test_every_exercise_is_solved_by_its_solution_and_not_by_the_defaults(app):
    together = [(lesson, ex) for lesson, ex in EXERCISES if lesson.number not in ALONE]
    alone = [(lesson, ex) for lesson, ex in EXERCISES if lesson.number in ALONE]
    wrong: list[str] = []
    with ThreadPoolExecutor(SIDE_BY_SIDE) as pool:
        for found in pool.map(lambda pair: attempt(app, *pair), together):
            wrong += found
    for lesson, exercise in alone:
        wrong += attempt(app, lesson, exercise)
    assert not wrong, "\n".join(wrong)


LEVELS = [(lesson, level) for lesson in LESSONS for level in lesson.levels]
LEVEL_IDS = [f"{lesson.number}-{level.n}" for lesson, level in LEVELS]


@pytest.mark.parametrize("lesson, level", LEVELS, ids=LEVEL_IDS)
def test_every_level_is_solved_by_its_shortest_known_schedule(app, lesson, level):
    client = app.test_client()
    answer = client.post("/runs", json={"lesson": lesson.id, "params": level.params, "level": level.n,
                                        "schedule": level.schedule}, headers=GOOD)
    assert answer.status_code == 201, answer.get_json()
    deadline = time.monotonic() + RUN_TIMEOUT
    url = f"/api/runs/{answer.get_json()['id']}"
    while (run := client.get(url, headers=GOOD).get_json())["status"] not in FINAL:
        assert time.monotonic() < deadline, run["status"]
        time.sleep(0.05)
    check = run["check"]
    assert check["passed"] and check["steps"] == level.shortest, check
    assert run["schedule"] == [dict(step) for step in level.schedule]


SURPRISING = ("04", "05", "07", "09", "13")  # the lessons with a surprising outcome


def test_the_surprising_lessons_ask_a_question_that_their_run_answers(app):
    """Predict, then run: each of these lessons asks one question, and a run with the defaults
    lands on one of its choices (a check naming a value the lesson never emits would land on none:
    the learner's answer could then never be right)."""
    by_number = {lesson.number: lesson for lesson in LESSONS}
    assert set(SURPRISING) <= set(by_number)
    wrong = []
    for number in SURPRISING:
        lesson = by_number[number]
        assert lesson.prediction and len(lesson.prediction.choices) >= 2, number
        chosen = lesson.prediction.choices[0].label
        client = app.test_client()
        answer = client.post("/runs", json={"lesson": lesson.id, "prediction": chosen}, headers=GOOD)
        assert answer.status_code == 201, answer.get_json()
        deadline = time.monotonic() + RUN_TIMEOUT
        url = f"/api/runs/{answer.get_json()['id']}"
        while (run := client.get(url, headers=GOOD).get_json())["status"] not in FINAL:
            assert time.monotonic() < deadline, f"{number} still {run['status']}"
            time.sleep(0.05)
        reveal = run["prediction"] or {}
        labels = [choice.label for choice in lesson.prediction.choices]
        if reveal.get("chosen") != chosen or reveal.get("actual") not in labels or \
                reveal.get("correct") is not (reveal.get("actual") == chosen):
            wrong.append(f"{number}: {run['status']} {reveal}")
    assert not wrong, "\n".join(wrong)
