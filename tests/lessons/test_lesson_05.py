"""Lesson 05: the unlocked counter loses updates on every run; Lock and RLock never do."""

from __future__ import annotations

import subprocess
import sys
import time

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
