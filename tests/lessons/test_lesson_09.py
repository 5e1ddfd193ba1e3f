"""Lesson 09: opposite lock orders deadlock and the kit sees it; the fixes finish; lockstep livelocks."""

from __future__ import annotations

import json
import tomllib

import pytest

from .conftest import ROOT

FIXES = ("ordered", "backoff", "random_backoff")


def test_deadlock_is_detected_and_every_fix_finishes(lesson):
    run = lesson("09")
    assert run.returncode == 0, run.stderr[-3000:]

    deadlocks = run.of_kind("deadlock")
    assert deadlocks, "the kit must see the wait-for cycle before the 1.5 s timeout ends it"
    # Only the deadlock round: the back-off rounds' cycles (a 10 ms try-lock) end long before 0.3 s.
    assert [d["op"] for d in deadlocks] == ["formed", "broken"]
    cycle = deadlocks[0]["cycle"]
    assert len(cycle) == 2
    assert {entry["thread"] for entry in cycle} == {"Transfer-AB", "Transfer-BA"}
    for entry in cycle:
        assert set(entry) >= {"thread", "holds", "waits_for"}
        assert entry["holds"] and entry["waits_for"] not in entry["holds"]

    rows = [row for event in run.of_kind("threads") for row in event["threads"]]
    stuck = [row for row in rows if row["state"] == "waiting-lock" and row["holds"]]
    assert stuck, "a snapshot must show a transfer waiting for a lock while holding another"

    result = run.result
    assert result["deadlock_deadlocked"] == 1
    assert result["deadlock_finished"] == 0
    assert result["deadlock_ms"] >= 1400, "the naive transfer waits out its 1.5 s timeout"
    for fix in FIXES:
        assert result[f"{fix}_deadlocked"] == 0, fix
        assert result[f"{fix}_finished"] == 1, fix
    assert result["livelock_deadlocked"] == 0
    assert result["livelock_finished"] == 0, "lockstep back-off makes no progress"
    assert result["livelock_attempts"] == 15
    assert any("DEADLOCK:" in msg for msg in run.messages()), "the lesson reports it in its own words"


def test_a_global_lock_order_never_forms_a_cycle(lesson):
    run = lesson("09", "--strategy", "ordered")
    assert run.returncode == 0, run.stderr[-3000:]
    assert not run.of_kind("deadlock")
    result = run.result
    assert set(result) == {"ordered_deadlocked", "ordered_finished", "ordered_ms", "ordered_attempts"}
    assert (result["ordered_deadlocked"], result["ordered_finished"], result["ordered_attempts"]) == (0, 1, 1)
    assert result["ordered_ms"] < 1000


def test_livelock_stops_at_the_attempt_cap(lesson):
    result = lesson("09", "--strategy", "livelock", "--max-attempts", "5").result
    assert result["livelock_finished"] == 0
    assert result["livelock_attempts"] == 5


# -- the step-mode level: the learner schedules the back-off transfers into a deadlock ----------

LEVEL = tomllib.loads((ROOT / "lessons" / "exercises" / "09_deadlock_demo_and_avoidance.toml")
                      .read_text())["level"][0]
LEVEL_FLAGS = [f"--{name.replace('_', '-')}={value}" for name, value in LEVEL["params"].items()]


def test_the_level_plays_the_back_off_round_alone():
    assert LEVEL["params"] == {"strategy": "backoff"}
    assert LEVEL["checks"][0] == {"events": "deadlock", "where": {"op": "formed"}, "at_least": 1}
    schedule = LEVEL["solution"]["schedule"]
    assert schedule[-1] == {"free": True}
    assert len([step for step in schedule if "thread" in step]) == LEVEL["shortest"] == 11


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_the_level_solution_deadlocks_the_transfers_on_every_replay(lesson, attempt):
    # Each transfer holds its first account and is stepped into its 10 ms try for the second: a
    # cycle the step-mode kit reports at once. The tries time out, back off, and get through.
    schedule = LEVEL["solution"]["schedule"]
    run = lesson("09", *LEVEL_FLAGS, env={"THREADLAB_SCHEDULE": json.dumps(schedule)}, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    assert not [e for e in run.of_kind("log") if e.get("refused")], "every step must be granted"
    taken = [{"thread": e["thread"], "until": e["until"]} if "thread" in e else {"free": True}
             for e in run.of_kind("step")]
    assert taken == schedule
    formed = [d for d in run.of_kind("deadlock") if d["op"] == "formed"]
    assert len(formed) == 1 and formed[0]["step"] is True and formed[0]["steps"] == 11
    assert {(c["thread"], tuple(c["holds"]), c["waits_for"]) for c in formed[0]["cycle"]} == {
        ("Transfer-AB", ("account-A",), "account-B"), ("Transfer-BA", ("account-B",), "account-A")}
    result = run.result
    assert (result["backoff_deadlocked"], result["backoff_finished"]) == (0, 1)
    assert result["backoff_attempts"] >= 2, "the cycle cost each transfer an attempt"


def test_a_free_run_of_the_level_reports_no_deadlock(lesson):
    # The back-off round's cycle lasts one 10 ms try, far below the detector's 0.3 s. Were a free
    # run to report it too, the level would be no puzzle.
    for _ in range(3):
        run = lesson("09", *LEVEL_FLAGS)
        assert run.returncode == 0, run.stderr[-3000:]
        assert not run.of_kind("deadlock")
        assert run.result["backoff_finished"] == 1
