"""Lesson processes under the server's control: graceful stop that escalates to SIGKILL, children left
behind, the run time limit."""

from __future__ import annotations

import time

import pytest

from app.defaults import INTERRUPT_GRACE, TERMINATE_GRACE
from tests.live_helpers import FINAL, log_event, start_fault_server, wait_gone


def statuses(live, run_id) -> list[str]:
    return [e["status"] for e in live.events(run_id) if e["kind"] == "status"]


def test_a_child_holding_stdout_does_not_keep_the_run_alive_and_is_killed(fault_server):
    run_id = fault_server.start("03")
    child = log_event(fault_server, run_id, "child started")["child_pid"]
    run = fault_server.wait_status(run_id, timeout=5)
    assert (run["status"], run["exit_code"]) == ("exited", 0), run
    assert run["ended"] - run["started"] < 2, "exited comes from wait(), not end-of-file"
    assert not wait_gone([child, run["pid"]], 1), "the child died with the run's process group"
    assert log_event(fault_server, run_id, "leaving the child behind"), "output up to the exit kept"


def test_stop_kills_the_children_of_a_lesson_too(fault_server):
    run_id = fault_server.start("03", linger=60)
    child = log_event(fault_server, run_id, "child started")["child_pid"]
    pid = fault_server.get_json(f"/api/runs/{run_id}")["pid"]
    assert fault_server.post_json(f"/runs/{run_id}/stop", {})[0] == 202
    run = fault_server.wait_status(run_id, timeout=5)
    assert run["status"] == "stopped"
    assert not wait_gone([pid, child], 1)


def test_a_crash_ends_failed_with_the_traceback_in_stderr_events(fault_server):
    run_id = fault_server.start("06")
    run = fault_server.wait_status(run_id, timeout=10)
    assert (run["status"], run["exit_code"]) == ("failed", 1), run
    stderr = [e["text"] for e in fault_server.events(run_id) if e["kind"] == "stderr"]
    assert "Traceback (most recent call last):" in stderr
    assert "RuntimeError: boom: a deliberate crash for the tests" in stderr
    assert any("in explode" in line for line in stderr)
    assert statuses(fault_server, run_id) == ["starting", "running", "failed"]


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    live = start_fault_server(tmp_path_factory.mktemp("limited"), "--time-limit", "1")
    yield live
    live.stop()


def test_a_run_past_its_time_limit_ends_timeout(limited_server):
    long_run = limited_server.start("01", duration=60)
    short_run = limited_server.start("08")
    pid = None
    deadline = time.monotonic() + 5
    while pid is None and time.monotonic() < deadline:
        pid = limited_server.get_json(f"/api/runs/{long_run}")["pid"]
    run = limited_server.wait_status(long_run, timeout=6)
    assert run["status"] == "timeout", run
    assert 1 <= run["ended"] - run["started"] < 2.5, run
    reasons = [e.get("reason") for e in limited_server.events(long_run) if e["kind"] == "status"]
    assert "time limit" in reasons
    assert limited_server.wait_status(short_run)["status"] == "exited", "a short run is not touched"
    assert not wait_gone([pid], 1)


def test_a_lesson_ignoring_sigint_and_sigterm_ends_killed_within_grace(fault_server, limited_server):
    """Stop escalates to SIGKILL; so does the time limit (status timeout). Both at once: 5 s, not 11."""
    on_limit = limited_server.start("02")
    run_id = fault_server.start("02")
    for live, rid in ((fault_server, run_id), (limited_server, on_limit)):
        log_event(live, rid, "ready: ignoring SIGINT and SIGTERM")
    pid = fault_server.get_json(f"/api/runs/{run_id}")["pid"]
    started = time.monotonic()
    assert fault_server.post_json(f"/runs/{run_id}/stop", {})[0] == 202
    run = fault_server.wait_status(run_id, timeout=INTERRUPT_GRACE + TERMINATE_GRACE + 3)
    elapsed = time.monotonic() - started
    assert run["status"] == "killed" and run["exit_code"] == -9, run
    assert INTERRUPT_GRACE + TERMINATE_GRACE - 0.5 < elapsed < INTERRUPT_GRACE + TERMINATE_GRACE + 1
    assert statuses(fault_server, run_id) == ["starting", "running", "stopping", "killed"]
    assert not wait_gone([pid], 1)
    run = limited_server.wait_status(on_limit, FINAL, timeout=INTERRUPT_GRACE + TERMINATE_GRACE + 3)
    assert run["status"] == "timeout" and run["exit_code"] == -9, run
    assert not wait_gone([run["pid"]], 1)
