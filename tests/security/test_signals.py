"""Signals: a run id and a declared signal name, nothing more. 404 for unknown runs, 409 for runs
that ended, 4xx for signals the lesson does not declare; a declared one reaches the lesson."""

from __future__ import annotations

import pytest

from tests.live_helpers import log_event

UNDECLARED_FOR_10 = ["SIGKILL", "SIGSTOP", "SIGHUP", "SIGQUIT", "SIGUSR2", "9", "15", "-9", "sigusr1",
                     "SIGUSR1 ", "USR1", "Signals.SIGUSR1", "SIG_DFL", "", None, ["SIGUSR1"],
                     {"name": "SIGUSR1"}, 10]


def signal(live, run_id, value, **extra):
    body = {"signal": value, **extra} if value is not None else dict(extra)
    return live.post_json(f"/runs/{run_id}/signal", body)


@pytest.fixture(scope="module")
def lesson_10(server):
    """A long run of the project's lesson 10, which declares SIGINT, SIGTERM and SIGUSR1."""
    run_id = server.start("10", duration=60)
    server.wait_for_event(run_id, lambda e: e["kind"] == "threads")
    yield run_id
    server.post_json(f"/runs/{run_id}/stop", {})
    server.wait_status(run_id, timeout=10)


@pytest.mark.parametrize("value", UNDECLARED_FOR_10)
def test_undeclared_signals_are_refused_and_the_run_goes_on(server, lesson_10, value):
    status, body = signal(server, lesson_10, value)
    assert 400 <= status < 500 and status != 404, (status, body)
    assert "error" in body
    assert server.get_json(f"/api/runs/{lesson_10}")["status"] == "running"


def test_nothing_reaches_the_lesson_but_what_was_declared(server, lesson_10):
    """After every refusal above: no signal event was recorded, and the declared one goes through."""
    assert not [e for e in server.events(lesson_10) if e["kind"] == "signal"]
    status, body = signal(server, lesson_10, "SIGUSR1")
    assert status == 202, body
    sent = server.wait_for_event(lesson_10, lambda e: e["kind"] == "signal")
    assert sent["signal"] == "SIGUSR1" and sent["by"] == "dashboard"
    server.wait_for_event(lesson_10, lambda e: e["kind"] == "log" and "SIGUSR1" in e.get("msg", ""))
    assert server.get_json(f"/api/runs/{lesson_10}")["status"] == "running"


def test_no_pid_or_group_can_be_aimed_at(server, lesson_10):
    for extra in ({"pid": 1}, {"pgid": 1}, {"run": "other"}, {"target": "self"}):
        status, body = signal(server, lesson_10, "SIGUSR1", **extra)
        assert status == 400 and body["field"] == next(iter(extra)), body


def test_lesson_03_declares_no_signal(server):
    run_id = server.start("03", duration=30)
    server.wait_for_event(run_id, lambda e: e["kind"] == "log")
    try:
        for name in ("SIGINT", "SIGTERM", "SIGUSR1", "SIGKILL"):
            status, body = signal(server, run_id, name)
            assert status == 400 and "none" in body["error"], body
        assert not [e for e in server.events(run_id) if e["kind"] == "signal"]
        assert server.get_json(f"/api/runs/{run_id}")["status"] == "running"
    finally:
        server.post_json(f"/runs/{run_id}/stop", {})
        server.wait_status(run_id, timeout=10)


def test_unknown_runs_get_404(server):
    for run_id in ("nope", "0" * 24, "..", "%2e%2e"):
        assert signal(server, run_id, "SIGINT")[0] == 404
        assert server.post_json(f"/runs/{run_id}/stop", {})[0] == 404
        assert server.post_json(f"/runs/{run_id}/dump", {})[0] == 404


def test_runs_that_ended_get_409(fault_server):
    run_id = fault_server.start("01", duration=0)
    fault_server.wait_status(run_id)
    for name in ("SIGINT", "SIGUSR1"):
        status, body = signal(fault_server, run_id, name)
        assert status == 409 and "exited" in body["error"], body
    assert fault_server.post_json(f"/runs/{run_id}/stop", {})[0] == 409
    assert fault_server.post_json(f"/runs/{run_id}/dump", {})[0] == 409
    assert signal(fault_server, run_id, "SIGKILL")[0] in (400, 409)


def test_a_declared_signal_reaches_only_its_own_run(fault_server):
    """Two sleepers: SIGUSR1 to one is logged by that one alone."""
    first, second = fault_server.start("01", duration=30), fault_server.start("01", duration=30)
    try:
        for run_id in (first, second):
            log_event(fault_server, run_id, "ready")
        assert signal(fault_server, first, "SIGUSR1")[0] == 202
        log_event(fault_server, first, "got SIGUSR1")
    finally:
        for run_id in (first, second):
            fault_server.post_json(f"/runs/{run_id}/stop", {})
        for run_id in (first, second):
            assert fault_server.wait_status(run_id, timeout=10)["status"] == "stopped"
    # "Nothing happened" read from the second run's whole log, once it has ended: no guess at a wait.
    assert not [e for e in fault_server.events(second) if e.get("msg") == "got SIGUSR1"]
