"""A level is won by the learner's schedule, not by the operating system's (app/checking.py), through
the server with real workers: lesson 05's level, let go one step before its shortest solution, lets
the two threads race freely and must not pass even when the race happens to lose an update; let go
after the tenth step, only one thread is left to move and the lost update is the schedule's."""

from __future__ import annotations

import time

import pytest

from app import create_app
from app.registry import Registry
from tests.conftest import ROOT

PORT = 8765
GOOD = {"Host": f"127.0.0.1:{PORT}"}
FINAL = ("exited", "failed", "stopped", "killed", "timeout")
LEVEL = Registry(ROOT / "lessons").get("05").levels[0]
STEPS = [one for one in LEVEL.schedule if not one.get("free")]  # the shortest solution: 10 steps
TRIES = 3  # one step short, the race loses an update about half the time: luck should show at least once


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    app = create_app({"DATA_DIR": str(tmp_path_factory.mktemp("levels")), "PORT": PORT})
    yield app
    app.extensions["threadlab.runs"].shutdown(timeout=5)


def finished(client, run_id: str) -> dict:
    deadline = time.monotonic() + 60
    while (run := client.get(f"/api/runs/{run_id}", headers=GOOD).get_json())["status"] not in FINAL:
        assert time.monotonic() < deadline, run
        time.sleep(0.05)
    return run


def played(client, steps: list[dict]) -> dict:
    """Lesson 05's level played through the API, one step at a time, then Run freely; its run."""
    answer = client.post("/runs", json={"lesson": "05", "params": LEVEL.params, "level": LEVEL.n},
                         headers=GOOD)
    assert answer.status_code == 201, answer.get_json()
    run_id = answer.get_json()["id"]
    for one in [*steps, {"free": True}]:
        stepped = client.post(f"/runs/{run_id}/step", json=one, headers=GOOD)
        assert stepped.status_code == 200, stepped.get_json()
    return finished(client, run_id)


def replayed(client, schedule: list[dict]) -> dict:
    answer = client.post("/runs", json={"lesson": "05", "params": LEVEL.params, "level": LEVEL.n,
                                        "schedule": schedule}, headers=GOOD)
    assert answer.status_code == 201, answer.get_json()
    return finished(client, answer.get_json()["id"])


def test_nine_steps_then_free_does_not_pass_and_ten_steps_do(app):
    learner = app.test_client()  # one browser: its progress is kept under its own id
    lucky = 0
    for _ in range(TRIES):
        run = played(learner, STEPS[:9])
        check = run["check"]
        assert check["passed"] is False and check["steps"] == 9, check
        assert ("you let the threads run freely at step 9 while Unlocked-1 and Unlocked-2 had not "
                "finished") in check["message"]
        if check["evidence"] != "lost 0 of 2 updates":  # the race lost one by itself: luck, not a pass
            lucky += 1
            assert check["counted"] is False and "This try does not count" in check["message"], check
    cards = learner.get("/lessons/05/exercises", headers=GOOD).get_data(as_text=True)
    assert f"{TRIES} tries" in cards and "solved in" not in cards  # tries, each unlocking a hint
    run = played(learner, STEPS[:10])
    assert run["check"] == {"exercise": 1, "level": 1, "passed": True, "steps": 10, "shortest": 10,
                            "evidence": "lost 1 of 2 updates",
                            "message": "goal reached in 10 steps (the shortest known: 10)"}
    assert "solved in 10 steps" in learner.get("/lessons/05/exercises", headers=GOOD).get_data(as_text=True)
    print(f"one step short: {lucky} of {TRIES} tries lost an update by luck (none passed)")


def test_a_replayed_schedule_is_judged_by_the_same_rule(app):
    client = app.test_client()
    short = replayed(client, [*STEPS[:9], {"free": True}])["check"]
    assert short["passed"] is False
    assert "the schedule lets the threads run freely after step 9 while Unlocked-1 and Unlocked-2" \
        in short["message"]
    whole = replayed(client, [*STEPS[:10], {"free": True}])["check"]
    assert (whole["passed"], whole["steps"], whole["evidence"]) == (True, 10, "lost 1 of 2 updates")
    ended = replayed(client, STEPS[:10])["check"]  # no free in the list: the kit lets go at its end
    assert ended["passed"] is True, ended
