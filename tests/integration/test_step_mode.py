"""Step mode through the server (in process, real workers): the learner schedules two real threads.
A serial schedule loses nothing, an alternating one loses an update, and replaying a run's schedule
gives the same interleaving and the same result. The run's time limit counts only running time."""

from __future__ import annotations

import json
import textwrap
import time

import pytest

from app import create_app
from app.deadlines import TimeLimit
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
                                 "the counter ends below 2.", "params": {"times": 1}, "shortest": 5}]
    run_id = start(client, level=1)  # no step switch: a level is always played in step mode
    # A reads, then B runs to its end: A is the one thread left to move, so letting go is no luck.
    a_reads_then_b_runs = [*START_BOTH, *ALTERNATING[0:4:2], {"thread": "B", "until": "sync"}]
    for one in [*a_reads_then_b_runs, {"free": True}]:
        assert step(client, run_id, **one).status_code == 200
    run = finished(client, run_id)
    assert (run["level"], run["exercise"], run["step"]) == (1, None, True)
    assert run["check"] == {"exercise": 1, "level": 1, "passed": True, "steps": 5, "shortest": 5,
                            "evidence": "counter = 1 of 2",
                            "message": "goal reached in 5 steps (the shortest known: 5)"}
    serial = start(client, level=1, schedule=[*START_BOTH, *SERIAL])
    check = finished(client, serial)["check"]
    assert (check["passed"], check["evidence"]) == (False, "counter = 2 of 2")
    assert client.post("/runs", json={"lesson": "01", "params": {}, "level": 2},
                       headers=GOOD).get_json()["field"] == "level"


# --- the time limit counts only running time --------------------------------------------------

LIMIT = 2.0  # seconds: a run's time limit, short, but longer than a worker takes to start
SPIN = '''
"""Spin: a worker that naps, then sleeps long or loops for ever (a fixture for the time limit).

Problem:
    In step mode the run's time limit counts only the time its threads run.
"""

import threading
import time

from lessons import kit


def work(nap: float) -> None:
    time.sleep(nap)
    # One line, one step: a long stretch of running time.
    time.sleep(60)
    while True:  # freed: the run goes on until its time limit
        time.sleep(0.01)


def build_parser():
    parser = kit.lesson_parser(__doc__)
    parser.add_argument("--nap", type=kit.float_range(0, 1), default=0.2, help="seconds")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    kit.setup(args)
    worker = threading.Thread(target=work, name="Worker", args=(args.nap,), daemon=True)
    worker.start()
    worker.join(timeout=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
'''


@pytest.fixture
def limited(tmp_path):
    """A server whose runs have a short time limit, on one lesson that can run for ever."""
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    (lessons / "01_spin.py").write_text(textwrap.dedent(SPIN).lstrip())
    app = create_app({"DATA_DIR": str(tmp_path / "data"), "LESSONS_DIR": str(lessons), "PORT": 8765,
                      "RUN_TIME_LIMIT": LIMIT})
    yield app.test_client()
    app.extensions["threadlab.runs"].shutdown(timeout=5)


def held_again(client, run_id: str) -> dict:
    """The next ``paused`` event in which no thread sleeps: all wait for the learner again."""
    deadline = time.monotonic() + 20
    while True:
        events = client.get(f"/api/runs/{run_id}/events", headers=GOOD).get_data(as_text=True)
        last = [e for e in map(json.loads, events.splitlines()) if e["kind"] == "paused"][-1]
        if not last["running"]:
            return last
        assert time.monotonic() < deadline, last
        time.sleep(0.05)


@pytest.mark.parametrize("run_on", ["free", "step into a long sleep"])
def test_a_paused_run_outlives_its_time_limit_but_a_running_one_does_not(limited, run_on):
    run_id = start(limited, step=True)
    assert step(limited, run_id, thread="MainThread", until="sync").status_code == 200  # starts Worker
    time.sleep(LIMIT * 1.25)  # the learner thinks, longer than the run may run
    answer = step(limited, run_id, thread="Worker")  # the nap: running time, far less than LIMIT
    assert answer.status_code == 200, answer.get_json()
    paused = held_again(limited, run_id)
    assert {t["name"]: t["source"] for t in paused["threads"]} == {
        "MainThread": "worker.join(timeout=120)", "Worker": "time.sleep(60)"}
    assert paused["clock"] < LIMIT
    assert limited.get(f"/api/runs/{run_id}", headers=GOOD).get_json()["status"] == "running"
    if run_on == "free":
        assert step(limited, run_id, free=True).status_code == 200
    else:
        assert step(limited, run_id, thread="Worker").status_code in (200, 202)  # asleep: running
    run = finished(limited, run_id)  # within finished()'s 20 s, not the lesson's 60 s
    assert run["status"] == "timeout"
    events = limited.get(f"/api/runs/{run_id}/events", headers=GOOD).get_data(as_text=True)
    assert '"reason": "time limit"' in events


def test_the_limit_counts_the_kit_s_running_time_not_the_learner_s():
    """The bookkeeping alone, on the kit's events: pauses cost nothing, running does."""
    def paused(clock, **fields):
        return {"kind": "paused", "clock": clock, "running": [], "stuck": False,
                "threads": [{"name": "A", "can_run": True}], **fields}

    limit = TimeLimit(5.0, now=100.0)
    assert limit.due() == 105.0  # the threads run to their first hold
    limit.seen(paused(0.5), now=101.0)
    assert limit.due() is None  # the learner thinks: nothing is due
    limit.seen({"kind": "step", "thread": "A"}, now=700.0)
    assert limit.due() == 704.5  # 0.5 s used before
    limit.seen(paused(1.5, running=["A"]), now=701.0)  # A sleeps: the clock runs on
    assert limit.due() == 704.5
    limit.seen(paused(2.0, threads=[{"name": "A", "can_run": False}],
                      blocked=[{"name": "B", "timeout_at": 3.0}]), now=702.0)
    assert limit.due() == 705.0  # nobody can move but by a timeout: the kit's clock jumps to it
    limit.seen(paused(2.0, stuck=True, threads=[{"name": "A", "can_run": False}]), now=703.0)
    assert limit.due() is None  # a deadlock: only the learner can end it
    limit.seen({"kind": "step", "free": True}, now=900.0)
    limit.seen(paused(6.0), now=901.0)  # the clock passed the limit (a jump): due at once
    assert limit.due() <= 901.0
