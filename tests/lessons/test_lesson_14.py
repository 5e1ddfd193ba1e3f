"""Lesson 14: the lesson's own inspection finds the stuck thread and its line, catches the worker's
exception through threading.excepthook, and counts calls per thread with threading.setprofile."""

from __future__ import annotations

import signal

from .conftest import LESSONS


def stuck_line() -> int:
    """The line of ``release.wait(`` inside ``stuck_worker``: where the stuck thread must be found."""
    lines = next(LESSONS.glob("14_*.py")).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("def stuck_worker"))
    return next(i for i, line in enumerate(lines) if i > start and "release.wait(" in line) + 1


def test_finds_the_stuck_thread_and_where_it_waits(lesson):
    run = lesson("14")
    assert run.returncode == 0, run.stderr[-3000:]
    result = run.result
    assert result["stuck_thread"] == "Stuck-Worker"  # and not the Heartbeat decoy, also in a wait
    assert result["stuck_count"] == 1
    assert result["stuck_where"] == f"14_profiling_and_debugging.py:{stuck_line()} in stuck_worker"
    assert result["threads_seen"] == ["Heartbeat", "MainThread", "Stuck-Worker"]
    # The faulthandler dump went through the log (stdout stays JSON) with names added to thread ids.
    dump = [m for m in run.messages() if m.startswith("faulthandler|")]
    assert any("(Stuck-Worker) (most recent call first)" in m for m in dump)
    assert any("in stuck_worker" in m for m in dump)


def test_excepthook_catches_the_crash_and_profile_counts_calls(lesson):
    run = lesson("14", "--calls", "5000")
    assert run.returncode == 0, run.stderr[-3000:]
    result = run.result
    assert result["exceptions_caught"] == 1
    errors = [e for e in run.of_kind("log") if e["level"] == "ERROR"]
    assert len(errors) == 1 and errors[0]["thread"] == "Crashing-Worker"
    assert "ValueError" in errors[0]["msg"] and "Traceback" in errors[0]["exc"]
    assert "Exception in thread" not in run.stderr  # the default hook was replaced, not called
    calls = result["calls_per_thread"]
    # Each busy worker: 5000 checksum calls plus a little logging; the waiting thread: a few dozen.
    for name in ("Busy-Worker-1", "Busy-Worker-2"):
        assert 5000 <= calls[name] < 5000 + 500
    assert 0 < calls["Stuck-Worker"] < 500
    # threading.setprofile reaches only threads started after it: MainThread was already running.
    assert "MainThread" not in calls and result["main_thread_calls"] == 0
    assert not [m for m in run.messages() if m.startswith("SIGUSR1|")]  # no handler, no dump


def test_sigusr1_without_a_handler_ends_the_process(lesson):
    # What the page's SIGUSR1 button does to the lesson as shipped: the signal's default action
    # ends the process before the result (exercise 3 registers faulthandler for it instead).
    run = lesson("14", "--usr1-after", "0.1")
    assert run.returncode == -signal.SIGUSR1
    assert not run.of_kind("result")
    assert any(m.startswith("faulthandler|") for m in run.messages())  # the hunt came first


def test_every_worker_is_in_the_table_and_the_view_model_though_the_lesson_sets_its_own_profile(lesson):
    # Lesson 14's threading.setprofile replaces any hook set before it: the busy and crashing
    # workers live between two samples, and were missing from the table when the kit relied on a
    # profile hook of its own to hear of them.
    from app.viewmodel import ViewModel

    run = lesson("14", "--calls", "5000")
    assert run.returncode == 0, run.stderr[-3000:]
    workers = {e["name"] for e in run.of_kind("thread") if e["op"] == "start"}
    assert workers >= {"Busy-Worker-1", "Busy-Worker-2", "Crashing-Worker", "Stuck-Worker", "Heartbeat"}
    table = {row["name"]: row for row in run.of_kind("threads")[-1]["threads"]}  # the live table
    assert workers <= set(table), workers - set(table)
    assert table["Crashing-Worker"]["state"] == "crashed"
    assert {table[name]["state"] for name in workers - {"Crashing-Worker"}} == {"done"}
    model = ViewModel()
    for event in run.events:
        model.fold(event)
    lanes = {th["lane"]: th for th in model.state_at(model.duration)["threads"]}
    assert set(lanes) == workers | {"MainThread"}  # one lane each: no worker twice, none missing
    assert lanes["Crashing-Worker"]["state"] == "crashed" and model.summary()["crashed"] == 1
