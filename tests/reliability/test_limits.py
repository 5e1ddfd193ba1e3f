"""Limits: a cap on concurrent runs (429, nothing started) and on open websockets (503 before any
upgrade); many runs in a row leave no zombie, file descriptor or thread behind in the server."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import websocket

from tests.live_helpers import FINAL, Session, close, log_event, raw_upgrade, stop_all, worker

MAX_LIVE_RUNS = 8  # app/__init__.py
MAX_SOCKETS = 48


def live_runs(live) -> list[str]:
    return [r["id"] for r in live.get_json("/api/runs") if r["status"] not in FINAL]


def test_runs_past_the_cap_get_429_and_start_nothing(fault_server):
    assert not live_runs(fault_server)
    runs = [fault_server.start("01", duration=60) for _ in range(MAX_LIVE_RUNS)]
    try:
        before = len(fault_server.get_json("/api/runs"))
        status, body = fault_server.post_json("/runs", {"lesson": "08", "params": {}})
        assert status == 429 and "at most 8" in body["error"], body
        session = Session(fault_server, "/lessons/08")
        status, _, page = session.post_form("/runs", {"lesson": "08", "csrf_token": session.token},
                                            {"HX-Request": "true"})
        assert status == 429 and b"at most 8" in page and b'id="run-form"' in page
        assert len(fault_server.get_json("/api/runs")) == before
        assert sorted(live_runs(fault_server)) == sorted(runs)
        # One ends: there is room for one more.
        assert fault_server.post_json(f"/runs/{runs[0]}/stop", {})[0] == 202
        fault_server.wait_status(runs[0], timeout=5)
        runs.append(fault_server.start("01", duration=60))
        assert fault_server.post_json("/runs", {"lesson": "08", "params": {}})[0] == 429
    finally:
        stop_all(fault_server)


def snapshot(process: psutil.Process) -> dict:
    return {"fds": process.num_fds(), "threads": process.num_threads(),
            "children": process.children(recursive=True)}


def settled(process: psutil.Process, before: dict, timeout: float = 5) -> dict:
    """The process's counts once they are back at ``before`` (threads end a moment after a run)."""
    deadline = time.monotonic() + timeout
    while True:
        now = snapshot(process)
        back = (now["fds"] <= before["fds"] + 2 and now["threads"] <= before["threads"] + 2
                and not now["children"])
        if back or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def test_many_runs_in_a_row_leak_nothing(fault_server):
    server = worker(fault_server)

    def one_run(_):
        run_id = fault_server.start("08")
        return fault_server.wait_status(run_id, timeout=30)["status"]

    with ThreadPoolExecutor(MAX_LIVE_RUNS) as pool:
        assert set(pool.map(one_run, range(MAX_LIVE_RUNS))) == {"exited"}  # warm up every pool
        before = settled(server, snapshot(server))
        statuses = list(pool.map(one_run, range(50)))
    assert statuses == ["exited"] * 50
    after = settled(server, before)
    assert not after["children"], f"zombies or leftovers: {after['children']}"
    assert after["fds"] <= before["fds"] + 2, (before["fds"], after["fds"])
    assert after["threads"] <= before["threads"] + 2, (before["threads"], after["threads"])
    # Nothing of ours is left in the process table either: no zombie lesson, no orphan.
    orphans = [p for p in psutil.process_iter(["environ"])
               if (p.info["environ"] or {}).get("THREADLAB_PARENT_PID") == str(server.pid)]
    assert not orphans, orphans


def test_websockets_past_the_cap_get_503_before_any_upgrade(fault_server):
    run_id = fault_server.start("01", duration=60)
    log_event(fault_server, run_id, "ready")
    port = fault_server.port
    sockets = []
    try:
        for i in range(MAX_SOCKETS):
            path = f"/runs/{run_id}/ws" if i % 2 else f"/api/runs/{run_id}/ws"
            sockets.append(websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=10))
        for path in (f"/runs/{run_id}/ws", f"/api/runs/{run_id}/ws"):
            status, head = raw_upgrade(port, path, {"Host": f"127.0.0.1:{port}"})
            assert status == 503, head
        # Plain requests are still answered while every socket slot is taken.
        assert fault_server.get_json(f"/api/runs/{run_id}")["status"] == "running"
        close(sockets.pop())
        deadline = time.monotonic() + 5
        while raw_upgrade(port, f"/api/runs/{run_id}/ws", {"Host": f"127.0.0.1:{port}"})[0] != 101:
            assert time.monotonic() < deadline, "a freed slot is usable again"
            time.sleep(0.1)
    finally:
        for ws in sockets:
            close(ws)
        stop_all(fault_server)
