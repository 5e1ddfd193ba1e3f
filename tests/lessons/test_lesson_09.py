"""Lesson 09: opposite lock orders deadlock and the kit sees it; the fixes finish; lockstep livelocks."""

from __future__ import annotations

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
