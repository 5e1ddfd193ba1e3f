"""POSIX signals from the dashboard to lesson 10: declared ones only, to the run's own group."""

from __future__ import annotations

import time


def _running_workers(server, run_id):
    server.wait_for_event(run_id, lambda e: e["kind"] == "threads" and
                          sum(t["name"].startswith("Worker") and t["alive"] for t in e["threads"]) >= 2)


def test_sigint_from_the_api_ends_lesson_10_gracefully(server):
    run_id = server.start("10", duration=60)
    _running_workers(server, run_id)
    sent = time.monotonic()
    status, _ = server.post_json(f"/runs/{run_id}/signal", {"signal": "SIGINT"})
    assert status == 202
    run = server.wait_status(run_id, timeout=10)
    assert (run["status"], run["exit_code"]) == ("exited", 0)
    assert time.monotonic() - sent < 2.0, "a graceful end within about a second"
    events = server.events(run_id)
    assert any(e["kind"] == "log" and "SIGINT" in e["msg"] for e in events), "the handler names the signal"
    assert any(e["kind"] == "signal" and e["signal"] == "SIGINT" for e in events)
    assert [e for e in events if e["kind"] == "result"][-1]["values"]["ended_by"] == "SIGINT"
    assert server.post_json(f"/runs/{run_id}/signal", {"signal": "SIGINT"})[0] == 409


def test_sigusr1_asks_for_a_report_and_the_run_goes_on(server):
    run_id = server.start("10", duration=60, usr1_after=0)
    _running_workers(server, run_id)
    assert server.post_json(f"/runs/{run_id}/signal", {"signal": "SIGUSR1"})[0] == 202
    server.wait_for_event(run_id, lambda e: e["kind"] == "log" and "progress" in e["msg"].lower()
                          and e["thread"].startswith("Worker"))
    assert server.get_json(f"/api/runs/{run_id}")["status"] == "running"
    server.post_json(f"/runs/{run_id}/signal", {"signal": "SIGTERM"})
    assert server.wait_status(run_id, timeout=10)["status"] == "exited"


def test_undeclared_signals_are_refused(server):
    run_id = server.start("10", duration=60)
    for name in ("SIGKILL", "SIGSTOP", "", "9", "SIGINT; rm -rf /"):
        status, body = server.post_json(f"/runs/{run_id}/signal", {"signal": name})
        assert 400 <= status < 500, (name, status, body)
    assert server.get_json(f"/api/runs/{run_id}")["status"] == "running"
    server.post_json(f"/runs/{run_id}/stop", {})
    server.wait_status(run_id, timeout=10)
    other = server.start("03", duration=5)
    assert server.post_json(f"/runs/{other}/signal", {"signal": "SIGINT"})[0] == 400
    assert server.post_json("/runs/nope/signal", {"signal": "SIGINT"})[0] == 404
    server.post_json(f"/runs/{other}/stop", {})
