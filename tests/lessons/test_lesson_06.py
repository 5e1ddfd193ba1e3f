"""Lesson 06: the semaphore caps concurrency, the buffer loses nothing, the barrier keeps step."""

from __future__ import annotations

import json
import tomllib

import pytest

from .conftest import ROOT, run_lesson


@pytest.fixture(scope="module")
def default_run():
    """One run with defaults (8 clients, 3 connections, 20 items, 3 slices, 3 phases)."""
    run = run_lesson("06")
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_the_semaphore_is_filled_but_never_exceeded(default_run):
    result = default_run.result
    assert result["limit"] == 3
    assert result["observed_max"] == result["limit"]  # the start line makes the pool fill up
    # Every client logs how many connections were in use as it got one: never above the limit.
    in_use = [e["msg"] for e in default_run.of_kind("log") if "in use)" in e["msg"]]
    assert len(in_use) == 8 * 3
    assert all(m.endswith("/3 in use)") and int(m.split("(")[1].split("/")[0]) <= 3 for m in in_use)
    # 24 queries of 40 ms, 3 at a time: at least 8 rounds (320 ms), far from one at a time (960 ms).
    assert 320 <= result["pool_ms"] < 900


def test_clients_queue_on_the_traced_semaphore(default_run):
    waits = [e for e in default_run.of_kind("sync") if e["op"] == "wait" and e["obj"] == "connections"]
    assert waits and all(e["thread"].startswith("Client-") for e in waits)


def test_consumers_wait_for_items_and_the_producer_for_room(default_run):
    waits = {(e["thread"], e["obj"]) for e in default_run.of_kind("sync") if e["op"] == "wait"}
    assert {("Consumer-1", "not-empty"), ("Consumer-2", "not-empty"), ("Producer", "not-full")} <= waits


def test_every_item_handed_over_exactly_once(default_run):
    result = default_run.result
    assert result["sent"] == result["received"] == 20
    got = sorted(int(e["msg"].split()[-1]) for e in default_run.of_kind("log")
                 if e["msg"].startswith("got item"))
    assert got == list(range(1, 21))


def test_the_barrier_keeps_step_then_breaks(default_run):
    result = default_run.result
    assert result["phases_completed"] == 3
    assert result["barrier_broken"] == 1
    assert result["broken_waits"] == 2  # Slice-3 aborted; the other two slices saw the break
    assert result["broken_wait_ms"] < 500  # at once (~40 ms), not after BARRIER_TIMEOUT (1 s)
    broken = [e["thread"] for e in default_run.of_kind("log") if "barrier broken" in e["msg"]]
    assert sorted(broken) == ["Slice-1", "Slice-2"]


def test_the_numbers_follow_the_options(lesson):
    run = lesson("06", "--clients", "6", "--connections", "5", "--items", "7", "--buffer-size", "1",
                 "--consumers", "3", "--parties", "4", "--phases", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    result = run.result
    assert (result["limit"], result["observed_max"]) == (5, 5)
    assert result["sent"] == result["received"] == 7
    assert (result["phases_completed"], result["broken_waits"]) == (2, 3)


# -- the step-mode level: a consumer under `if` wakes to an item another consumer took ---------

LEVEL = tomllib.loads((ROOT / "lessons" / "exercises" / "06_semaphores_conditions_barrier.toml")
                      .read_text())["level"][0]
LEVEL_FLAGS = [f"--{name.replace('_', '-')}={value}" for name, value in LEVEL["params"].items()]
STALE = {"type": "IndexError", "message": "pop from an empty deque"}


def crashes(run) -> list[tuple[str, dict]]:
    return [(e["name"], e["exc"]) for e in run.of_kind("thread") if e["op"] == "crash"]


def test_the_level_is_small_and_plays_the_buffer_alone():
    assert LEVEL["params"] == {"part": "buffer", "waiter": "if", "consumers": 2, "items": 1,
                               "buffer_size": 3}
    assert LEVEL["checks"] == [{"events": "thread", "where": {"op": "crash", "exc": STALE},
                                "at_least": 1}]
    schedule = LEVEL["solution"]["schedule"]
    assert schedule[-1] == {"free": True}
    assert len([step for step in schedule if "thread" in step]) == LEVEL["shortest"] == 16


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5])
def test_the_level_solution_crashes_the_woken_consumer_on_every_replay(lesson, attempt):
    schedule = LEVEL["solution"]["schedule"]
    run = lesson("06", *LEVEL_FLAGS, env={"THREADLAB_SCHEDULE": json.dumps(schedule)}, timeout=60)
    assert run.returncode == 0, run.stderr[-3000:]
    assert not [e for e in run.of_kind("log") if e.get("refused")], "every step must be granted"
    taken = [{"thread": e["thread"], "until": e["until"]} if "thread" in e else {"free": True}
             for e in run.of_kind("step")]
    assert taken == schedule
    assert crashes(run) == [("Consumer-1", STALE)]  # it waited, was notified, and lost the item
    assert run.result == {"sent": 1, "received": 1}  # to Consumer-2, which never waited
    free = next(i for i, e in enumerate(run.events) if e["kind"] == "step" and e.get("free"))
    waits = [(e["thread"], e["obj"]) for e in run.events[:free]
             if e["kind"] == "sync" and e["op"] == "wait"]
    assert waits == [("Consumer-1", "not-empty")]  # the only wait before the threads went free


def test_a_free_run_of_the_level_never_crashes(lesson):
    # Room for the item and both sentinels: every notify() finds something to take, so only a
    # schedule picked on purpose makes a consumer wake to nothing.
    for _ in range(3):
        run = lesson("06", *LEVEL_FLAGS)
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.result == {"sent": 1, "received": 1}
        assert crashes(run) == []
