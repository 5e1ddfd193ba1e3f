"""Lesson 05: the unlocked counter loses updates on every run; Lock and RLock never do."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import tomllib

import pytest

from .conftest import ROOT, lesson_module


def check(result: dict, expected: int) -> None:
    assert result["expected"] == expected
    assert result["unlocked"] < expected, "the race must show on every run"
    assert result["lost_updates"] == expected - result["unlocked"] > 0
    assert result["locked"] == result["rlocked"] == expected
    assert result["plain_lock_reentered"] == 0, "a plain Lock must refuse its own owner"


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_defaults_lose_updates_on_every_run(lesson, attempt):
    run = lesson("05")
    assert run.returncode == 0, run.stderr[-3000:]
    check(run.result, expected=4 * 1000)


def test_other_sizes(lesson):
    run = lesson("05", "--threads", "3", "--increments", "500")
    assert run.returncode == 0, run.stderr[-3000:]
    check(run.result, expected=3 * 500)


def test_locks_are_traced_and_contended(lesson):
    run = lesson("05", "--threads", "2", "--increments", "200")
    waited_for = {e["obj"] for e in run.of_kind("sync") if e["op"] == "wait"}
    assert {"counter-lock", "counter-rlock"} <= waited_for
    timeouts = [e for e in run.of_kind("sync") if e["op"] == "timeout"]
    assert [(e["obj"], e["thread"]) for e in timeouts] == [("counter-lock", "MainThread")]
    waiters = {e["thread"] for e in run.of_kind("sync") if e["op"] == "acquired"}
    assert waiters & {"Locked-1", "Locked-2"} and waiters & {"RLocked-1", "RLocked-2"}


def test_switch_interval_hides_the_race_without_fixing_the_locks(lesson):
    # A tiny interval forces switches inside the plain-Python gap: updates are lost. A long one
    # (0.5 s, far past a phase's few ms) never switches there: the race hides. Locks hold either way.
    eager = [lesson("05", "--switch-interval", "0.000001", "--increments", "10000").result
             for _ in range(2)]
    assert any(r["lost_updates"] > 0 for r in eager), eager
    patient = lesson("05", "--switch-interval", "0.5").result
    assert patient["lost_updates"] == 0
    for result in (*eager, patient):
        assert result["locked"] == result["rlocked"] == result["expected"]


def test_switch_interval_is_bounded(lesson):
    run = lesson("05", "--switch-interval", "2")
    assert run.returncode == 2 and "switch-interval" in run.stderr


def test_a_deadlocked_phase_is_given_up_and_does_not_keep_the_process_alive():
    # Exercise 2's mistake: a plain Lock where the RLock belongs, so each RLocked thread waits for
    # a lock it holds. The phase must end after STALL seconds without progress (not a 60 s join
    # per thread), and its stuck daemon workers must not stop the process from exiting.
    script = ("import importlib, logging; from lessons.kit import traced; "
              f"m = importlib.import_module({lesson_module('05')!r}); "
              "print(m.race(logging.getLogger(), 'Stuck', m.bump_rlocked, 2, 100, traced.Lock('x')))")
    began = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["0"]
    assert time.monotonic() - began < 10


# -- the step-mode level: the learner schedules two threads into a lost update ------------------

LEVEL = tomllib.loads((ROOT / "lessons" / "exercises" / "05_locks_and_race_conditions.toml")
                      .read_text())["level"][0]
LEVEL_FLAGS = [f"--{name.replace('_', '-')}={value}" for name, value in LEVEL["params"].items()]


def test_the_level_is_small_and_plays_the_unlocked_race_alone():
    assert LEVEL["params"] == {"threads": 2, "increments": 1, "part": "unlocked",
                               "switch_interval": 0.1}
    assert LEVEL["checks"] == [{"value": "lost_updates", "above": 0}]
    schedule = LEVEL["solution"]["schedule"]
    assert schedule[-1] == {"free": True}
    assert len([step for step in schedule if "thread" in step]) == LEVEL["shortest"] == 10


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5])
def test_the_level_solution_loses_an_update_on_every_replay(lesson, attempt):
    schedule = LEVEL["solution"]["schedule"]
    run = lesson("05", *LEVEL_FLAGS, env={"THREADLAB_SCHEDULE": json.dumps(schedule)}, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.result == {"expected": 2, "unlocked": 1, "lost_updates": 1}
    assert not [e for e in run.of_kind("log") if e.get("refused")], "every step must be granted"
    taken = [{"thread": e["thread"], "until": e["until"]} if "thread" in e else {"free": True}
             for e in run.of_kind("step")]
    assert taken == schedule
    # Unlocked-1's last step ran its read; it went free holding 0, after Unlocked-2 had written 1.
    last = [e["at"] for e in run.of_kind("step") if e.get("thread") == "Unlocked-1"][-1]
    assert last == f"05_locks_and_race_conditions.py:{line_of('value = counter.value')}"


def line_of(text: str) -> int:
    lines = (ROOT / "lessons" / "05_locks_and_race_conditions.py").read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.strip().startswith(text))


def test_a_free_run_of_the_level_loses_nothing(lesson):
    # --switch-interval 0.1: each thread does its one increment before a switch is forced. Were a
    # free run to lose the update too, the level would be no puzzle.
    for _ in range(3):
        run = lesson("05", *LEVEL_FLAGS)
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.result == {"expected": 2, "unlocked": 2, "lost_updates": 0}
        assert "no lost updates this time" in " ".join(run.messages())
