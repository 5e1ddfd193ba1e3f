"""Lesson 06: the semaphore caps concurrency, the buffer loses nothing, the barrier keeps step."""

from __future__ import annotations

import pytest

from .conftest import run_lesson


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
