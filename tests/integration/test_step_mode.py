"""Step mode through the server (in process, real workers): the learner schedules two real threads.
A serial schedule loses nothing, an alternating one loses an update, and replaying a run's schedule
gives the same interleaving and the same result."""

from __future__ import annotations

import time

import pytest

from app import create_app
from tests.conftest import ROOT

LESSONS = ROOT / "tests" / "fixtures" / "step_lessons"
GOOD = {"Host": "127.0.0.1:8765"}
FINAL = ("exited", "failed", "stopped", "killed", "timeout")
START_BOTH = [{"thread": "MainThread", "until": "sync"}] * 2  # main starts A, then B
ALTERNATING = [{"thread": name, "until": "line"} for name in "ABABAB"]  # read, read, write, write
SERIAL = [{"thread": "A", "until": "sync"}, {"thread": "B", "until": "sync"}]  # each to its end


@pytest.fixture
def client(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path), "LESSONS_DIR": str(LESSONS), "PORT": 8765})
    yield app.test_client()
    app.extensions["threadlab.runs"].shutdown(timeout=5)


def start(client, **body) -> str:
    answer = client.post("/runs", json={"lesson": "01", "params": {}, **body}, headers=GOOD)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["id"]


def step(client, run_id: str, **body):
    return client.post(f"/runs/{run_id}/step", json=body, headers=GOOD)


def finished(client, run_id: str) -> dict:
    deadline = time.monotonic() + 20
    while (run := client.get(f"/api/runs/{run_id}", headers=GOOD).get_json())["status"] not in FINAL:
        assert time.monotonic() < deadline, run
        time.sleep(0.05)
    return run


def result(client, run_id: str) -> dict:
    events = client.get(f"/api/runs/{run_id}/events", headers=GOOD).get_data(as_text=True)
    import json

    return [e for e in map(json.loads, events.splitlines()) if e["kind"] == "result"][-1]["values"]


def played(client, schedule: list[dict]) -> tuple[str, list[dict]]:
    """A step-mode run played step by step through the API; its id and every answer."""
    run_id = start(client, step=True)
    answers = []
    for one in [*schedule, {"free": True}]:
        answer = step(client, run_id, **one)
        assert answer.status_code == 200, answer.get_json()
        answers.append(answer.get_json())
    finished(client, run_id)
    return run_id, answers


def test_the_learner_decides_whether_an_update_is_lost(client):
    serial_id, _ = played(client, START_BOTH + SERIAL)
    assert result(client, serial_id) == {"counter": 2, "expected": 2}
    alternating_id, answers = played(client, START_BOTH + ALTERNATING)
    assert result(client, alternating_id) == {"counter": 1, "expected": 2}
    # Each answer is the held state that follows the step: where each thread goes next.
    held = {t["name"]: t for t in answers[3]["paused"]["threads"]}
    assert held["A"]["source"] == "seen = counter.value" and held["B"]["source"] == "seen = counter.value"
    assert all(t["can_run"] for t in held.values())
    run = finished(client, alternating_id)
    assert run["step"] is True and run["schedule"] == [*START_BOTH, *ALTERNATING, {"free": True}]


def test_replaying_a_schedule_gives_the_same_interleaving_and_result(client):
    original, _ = played(client, START_BOTH + ALTERNATING)
    schedule = finished(client, original)["schedule"]
    for _ in range(3):
        replay = start(client, schedule=schedule)
        run = finished(client, replay)
        assert result(client, replay) == {"counter": 1, "expected": 2}
        assert run["status"] == "exited" and run["step"] is True
        assert run["schedule"] == schedule


def test_steps_that_cannot_be_taken_are_refused_with_a_reason(client):
    free_run = start(client)
    assert step(client, free_run, thread="A").status_code == 409  # not in step mode
    run_id = start(client, step=True)
    refused = step(client, run_id, thread="Nobody")
    assert refused.status_code == 409 and "Nobody" in refused.get_json()["error"]
    for body, field in (({"thread": "A", "until": "soon"}, "until"), ({"thread": True}, "thread"),
                        ({"thread": "A", "pid": 1}, "pid")):
        answer = step(client, run_id, **body)
        assert (answer.status_code, answer.get_json()["field"]) == (400, field)
    assert step(client, run_id, free=True).status_code == 200
    assert finished(client, run_id)["status"] == "exited"


@pytest.mark.parametrize("schedule", [[], "[", [{"thread": "A", "until": "later"}], [{"thread": 3}],
                                      [{"free": False}], [{"thread": "A"}] * 1001, {"thread": "A"}])
def test_a_bad_schedule_gets_400_and_starts_nothing(client, schedule):
    answer = client.post("/runs", json={"lesson": "01", "params": {}, "schedule": schedule},
                         headers=GOOD)
    assert (answer.status_code, answer.get_json()["field"]) == (400, "schedule")
    assert client.get("/api/runs", headers=GOOD).get_json() == []


def test_a_level_is_played_in_step_mode_and_scored_by_its_steps(client):
    lesson = client.get("/api/lessons/01", headers=GOOD).get_json()
    assert lesson["levels"] == [{"n": 1, "title": "Lose an update", "goal": "Schedule A and B so that "
                                 "the counter ends below 2.", "params": {"times": 1}, "shortest": 6}]
    run_id = start(client, level=1)  # no step switch: a level is always played in step mode
    for one in [*START_BOTH, *ALTERNATING[:4], {"free": True}]:  # read, read, write, write
        assert step(client, run_id, **one).status_code == 200
    run = finished(client, run_id)
    assert (run["level"], run["exercise"], run["step"]) == (1, None, True)
    assert run["check"] == {"exercise": 1, "level": 1, "passed": True, "steps": 6, "shortest": 6,
                            "evidence": "counter = 1 of 2",
                            "message": "goal reached in 6 steps (the shortest known: 6)"}
    serial = start(client, level=1, schedule=[*START_BOTH, *SERIAL])
    check = finished(client, serial)["check"]
    assert (check["passed"], check["evidence"]) == (False, "counter = 2 of 2")
    assert client.post("/runs", json={"lesson": "01", "params": {}, "level": 2},
                       headers=GOOD).get_json()["field"] == "level"
