"""The server going away: stopped (SIGTERM) it stops every run within 5 s; killed (SIGKILL) it leaves
no lesson process behind 2 s later (the kit's watchdog); restarted on the same data dir it lists
every earlier run with its events, the ones that were live marked ``interrupted``."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import psutil
import pytest

from tests.live_helpers import (
    FINAL,
    log_event,
    start_fault_server,
    wait_gone,
    worker,
    ws_json_events,
    ws_page_messages,
)

STOP_WITHIN = 5.0  # DESIGN.md: stopping the server stops every run within 5 s
DEAD_WITHIN = 2.0  # after the server is killed, its lessons are gone within 2 s


def start_live_runs(live) -> dict:
    """A sleeper, a lesson ignoring SIGINT/SIGTERM, and one with a child: run ids and every pid."""
    runs = {"sleeper": live.start("01", duration=120), "stubborn": live.start("02"),
            "parent": live.start("03", linger=120)}
    log_event(live, runs["sleeper"], "ready")
    log_event(live, runs["stubborn"], "ready: ignoring SIGINT and SIGTERM")
    child = log_event(live, runs["parent"], "child started")["child_pid"]
    pids = [live.get_json(f"/api/runs/{run_id}")["pid"] for run_id in runs.values()]
    return {"runs": runs, "pids": [*pids, child]}


def lesson_processes(server_pid: int) -> list[psutil.Process]:
    """Every process started for a run of the server ``server_pid`` (lessons and their children
    inherit THREADLAB_PARENT_PID), wherever it was reparented to."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("THREADLAB_PARENT_PID") == str(server_pid) and \
                    process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def test_stopping_the_server_stops_every_run_within_5_s(tmp_path):
    live = start_fault_server(tmp_path)
    try:
        setup = start_live_runs(live)
        server_pid = worker(live).pid
        assert len(lesson_processes(server_pid)) == 4
        sent = time.time()
        live.proc.send_signal(signal.SIGTERM)
        assert not wait_gone(setup["pids"], STOP_WITHIN), "every lesson process ended within 5 s"
        live.proc.wait(STOP_WITHIN + 3)
        assert not lesson_processes(server_pid)
    finally:
        live.stop()
    for name, run_id in setup["runs"].items():
        run = json.loads((tmp_path / "runs" / run_id / "run.json").read_text())
        assert run["status"] in ("stopped", "killed"), (name, run)
        assert run["ended"] - sent < STOP_WITHIN, (name, run["ended"] - sent)
        last = json.loads((tmp_path / "runs" / run_id / "events.jsonl").read_text().splitlines()[-1])
        assert last["kind"] == "status" and last["status"] == run["status"]
    stubborn = json.loads((tmp_path / "runs" / setup["runs"]["stubborn"] / "run.json").read_text())
    assert stubborn["status"] == "killed"


def test_a_stopping_server_is_not_held_up_by_websockets(tmp_path):
    """Sockets that ended and sockets still open: the server exits as soon as its runs have
    stopped, not when gunicorn's graceful timeout runs out and it SIGKILLs its worker."""
    live = start_fault_server(tmp_path)
    try:
        ended = live.start("08")
        live.wait_status(ended)
        ws_page_messages(live, ended)
        ws_json_events(live, ended)
        run_id = live.start("01", duration=120)
        log_event(live, run_id, "ready")
        # Viewers that behave like a browser: read until the server's close frame, then close.
        viewers = [threading.Thread(target=reader, args=(live, run_id)) for reader in
                   (ws_page_messages, ws_json_events)]
        for viewer in viewers:
            viewer.start()
        time.sleep(0.3)
        server = worker(live)
        sent = time.monotonic()
        live.proc.send_signal(signal.SIGTERM)
        live.proc.wait(10)
        assert time.monotonic() - sent < 2.5
        assert not wait_gone([server.pid], 0)
        for viewer in viewers:
            viewer.join(5)
    finally:
        live.stop()
    assert json.loads((tmp_path / "runs" / run_id / "run.json").read_text())["status"] == "stopped"


@pytest.fixture(scope="module")
def crash(tmp_path_factory):
    """A server with finished and live runs, killed with SIGKILL (the gunicorn master first, so it
    cannot start a new worker, then the worker that held the runs)."""
    data_dir = tmp_path_factory.mktemp("crash")
    live = start_fault_server(data_dir)
    try:
        finished = live.start("08")
        live.wait_status(finished)
        crashed = live.start("06")
        live.wait_status(crashed)
        setup = start_live_runs(live)
        earlier = (finished, crashed, *setup["runs"].values())
        events_before = {run_id: live.events(run_id) for run_id in earlier}
        server = worker(live)
        os.kill(live.proc.pid, signal.SIGKILL)
        server.kill()
        killed = time.monotonic()
        survivors = wait_gone(setup["pids"], DEAD_WITHIN)
        elapsed = time.monotonic() - killed
        stragglers = lesson_processes(server.pid)
        live.proc.wait(5)
    finally:
        live.stop()
        for pid in setup["pids"] if "setup" in locals() else ():
            if pid not in wait_gone([pid], 0):
                os.kill(pid, signal.SIGKILL)  # tidy up after a failure, not part of the test
    return {"data_dir": data_dir, "finished": finished, "crashed": crashed, "live": setup["runs"],
            "survivors": survivors, "stragglers": stragglers, "elapsed": elapsed,
            "events": events_before}


def test_a_killed_server_leaves_no_lesson_process(crash):
    assert not crash["survivors"], f"alive {DEAD_WITHIN}s after SIGKILL: {crash['survivors']}"
    assert not crash["stragglers"], crash["stragglers"]


def test_a_restarted_server_lists_every_earlier_run_with_its_events(crash):
    live = start_fault_server(crash["data_dir"])
    try:
        runs = {run["id"]: run for run in live.get_json("/api/runs")}
        assert set(runs) == set(crash["events"])
        assert runs[crash["finished"]]["status"] == "exited"
        assert runs[crash["crashed"]]["status"] == "failed"
        for name, run_id in crash["live"].items():
            assert runs[run_id]["status"] == "interrupted", (name, runs[run_id])
            assert runs[run_id]["ended"], "an interrupted run has an end time"
        for run_id, before in crash["events"].items():
            after = live.events(run_id)
            assert after[: len(before)] == before, "nothing that was shown before the crash is lost"
            assert [e["seq"] for e in after] == list(range(len(after)))
            assert ws_json_events(live, run_id) == after, "the socket replays it and closes"
        interrupted = crash["live"]["sleeper"]
        assert live.request("GET", f"/runs/{interrupted}")[0] == 200
        assert b"interrupted" in live.request("GET", f"/runs/{interrupted}")[1]
        assert live.post_json(f"/runs/{interrupted}/stop", {})[0] == 409
        assert live.post_json(f"/runs/{interrupted}/signal", {"signal": "SIGUSR1"})[0] == 409
        # And the restarted server runs lessons as before.
        fresh = live.start("08")
        assert live.wait_status(fresh, FINAL)["status"] == "exited"
    finally:
        live.stop()


def test_a_worker_killed_alone_is_replaced_and_the_new_one_lists_every_run(tmp_path):
    """gunicorn starts a new worker when one dies; the runs the dead one held are not lost."""
    live = start_fault_server(tmp_path)
    try:
        run_id = live.start("01", duration=120)
        log_event(live, run_id, "ready")
        pid = live.get_json(f"/api/runs/{run_id}")["pid"]
        dead = worker(live)
        dead.kill()
        assert not wait_gone([pid], DEAD_WITHIN), "the kit's watchdog saw its server die"
        deadline = time.monotonic() + 10
        while True:
            try:
                runs = live.get_json("/api/runs")
                break
            except (OSError, AssertionError):
                assert time.monotonic() < deadline, "no new worker"
                time.sleep(0.1)
        assert worker(live).pid != dead.pid
        assert [(r["id"], r["status"]) for r in runs] == [(run_id, "interrupted")]
        assert log_event(live, run_id, "ready")
        assert live.wait_status(live.start("08"))["status"] == "exited"
    finally:
        live.stop()
