"""Lesson 01: every started thread is joined and every result arrives; start() is quick, join() waits."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("workers", ["3", "11"])
def test_every_thread_is_started_joined_and_heard_from(lesson, workers):
    run = lesson("01", "--workers", workers, "--work-ms", "200")
    assert run.returncode == 0, run.stderr[-3000:]
    result = run.result
    assert result["threads_started"] == result["threads_joined"] == int(workers)
    assert result["results_collected"] == int(workers)
    assert result["worker_errors"] == 0  # exercise 3 makes worker 2 hand over an exception
    names = {e["thread"] for e in run.of_kind("log")}
    assert {f"Worker-{i}" for i in range(1, int(workers) + 1)} <= names


def test_start_returns_at_once_and_join_waits_for_the_work(lesson):
    run = lesson("01", "--workers", "8", "--work-ms", "400")
    assert run.returncode == 0, run.stderr[-3000:]
    result = run.result
    # Wide margins: start() takes microseconds, far below one worker's 400 ms of work...
    assert result["start_ms"] < 100
    # ...join() waits for the work, but for all 8 workers side by side, not one after another.
    assert 300 <= result["join_ms"] < 8 * 400 / 2


def test_daemon_flag_is_visible_and_changes_nothing_when_joined(lesson):
    plain = lesson("01", "--workers", "2", "--work-ms", "100")
    daemon = lesson("01", "--workers", "2", "--work-ms", "100", "--daemon")
    assert "created 2 threads; daemon=False (main thread daemon=False)" in plain.messages()
    assert "created 2 threads; daemon=True (main thread daemon=False)" in daemon.messages()
    workers = [row for e in daemon.of_kind("threads") for row in e["threads"]
               if row["name"].startswith("Worker-")]
    assert workers and all(row["daemon"] for row in workers)
    assert daemon.result["results_collected"] == plain.result["results_collected"] == 2
