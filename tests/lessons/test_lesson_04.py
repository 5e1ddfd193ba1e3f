"""Lesson 04: every future is accounted for, and the GIL shows in the speed-ups."""

from __future__ import annotations

import os

import pytest

from .conftest import run_lesson

TOUR_TASKS = 6  # the lesson's tour submits 6 tasks, then 2 gated tasks per worker


@pytest.fixture(scope="module")
def default_run():
    """One run with defaults (workers 4, both workloads, both executors), shared by the tests."""
    run = run_lesson("04")
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def noisy_claim(first_run, key: str, holds, *args: str) -> list[float]:
    """Timings on a shared machine are noisy: the claim holds if one of up to three runs shows it.

    A lesson that never shows it (threads that do speed up CPU work, processes that do not) fails
    all three.
    """
    values = [first_run.result[key]]
    while not holds(values[-1]) and len(values) < 3:
        run = run_lesson("04", *args)
        assert run.returncode == 0, run.stderr[-3000:]
        values.append(run.result[key])
    return values


def test_every_future_is_accounted_for(default_run):
    result = default_run.result
    # The machine, beside the speed-ups: only free cores can speed up CPU work.
    assert result["cores"] == (os.cpu_count() or 1)
    assert ("load_1m" in result) == hasattr(os, "getloadavg")
    assert result.get("load_1m", 0) >= 0
    assert result["failed"] == 1  # task 3 raised
    assert result["cancelled"] == 4  # the 4 gated tasks still queued; the 4 running ones refused
    assert result["completed"] == TOUR_TASKS - 1 + 4
    assert result["submitted"] == TOUR_TASKS + 2 * 4


def test_the_counts_follow_the_options(lesson):
    run = lesson("04", "--workers", "2", "--fail-task", "0", "--workload", "io", "--executor", "thread")
    assert run.returncode == 0, run.stderr[-3000:]
    assert (run.result["failed"], run.result["cancelled"], run.result["completed"]) == (0, 2, 8)
    assert "cpu_serial_ms" not in run.result and "io_process_ms" not in run.result


def test_the_error_and_the_timeout_surface_in_the_caller(default_run):
    logs = default_run.of_kind("log")
    raised = [e for e in logs if "raised" in e["msg"]]
    assert len(raised) == 1 and "ValueError" in raised[0]["msg"]
    assert raised[0]["thread"] == "MainThread"  # the worker's exception, handed over by the future
    timed_out = [e["msg"] for e in logs if e["msg"].startswith("no result after")]
    assert timed_out == ["no result after 50 ms; task still running: True"]


def test_tasks_run_on_named_worker_threads(default_run):
    task_threads = {e["thread"] for e in default_run.of_kind("log") if "task" in e}
    assert task_threads == {f"Worker_{n}" for n in range(4)}


def test_processes_are_separate_and_silent(default_run):
    batches = [e["msg"] for e in default_run.of_kind("log") if " workers in " in e["msg"]]
    assert any("process workers in 4 process(es)" in m for m in batches), batches
    assert any("thread workers in 1 process(es)" in m for m in batches), batches
    # The kit is set up only in the parent: a spawned child must not write to our stdout.
    assert not default_run.of_kind("stdout")


def test_io_work_speeds_up_with_threads(default_run):
    values = noisy_claim(default_run, "io_thread_speedup", lambda v: v > 1.5,
                         "--workload", "io", "--executor", "thread")
    assert any(v > 1.5 for v in values), values


def test_cpu_work_does_not_speed_up_with_threads(default_run):
    values = noisy_claim(default_run, "cpu_thread_speedup", lambda v: v < 1.5,
                         "--workload", "cpu", "--executor", "thread")
    assert any(v < 1.5 for v in values), values


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="a CPU speed-up needs two cores")
def test_cpu_work_speeds_up_with_processes(default_run):
    values = noisy_claim(default_run, "cpu_process_speedup", lambda v: v > 1.2,
                         "--workload", "cpu", "--executor", "process")
    assert any(v > 1.2 for v in values), values
