"""Issue 15: a plain program keeps every protection a lesson has. It runs in its own process group
(so Stop and the time limit end the children it started too), Stop ends it, the time limit ends it,
the server's death ends it, and nothing of it runs in the server: a program whose top-level code
never ends is still listed at once (its metadata comes from its syntax tree)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.conftest import LiveServer
from tests.live_helpers import FINAL, wait_gone, worker

# Top-level code only, as in a tutorial: a child process, a thread holding a lock, the main thread
# waiting for it. Every wait is bounded (60 s), far beyond what any test here lets it run.
HANGS = '''\
"""Hangs: a child, a holder and a waiter, all at top level."""
import subprocess, sys, threading, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print("child", child.pid)
lock = threading.Lock()
def hold():
    with lock:
        time.sleep(60)
threading.Thread(target=hold, name="Holder", daemon=True).start()
time.sleep(0.2)
lock.acquire(timeout=60)
'''


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("byop_programs")
    (folder / "50_hangs.py").write_text(HANGS)
    return folder


def _start(live: LiveServer) -> tuple[str, int, int]:
    """Start 50_hangs; (run id, its pid, its child's pid) once the child is up."""
    code, body = live.post_json("/runs", {"lesson": "50", "args": []})
    assert code == 201, body
    said = live.wait_for_event(body["id"], lambda e: e["kind"] == "log" and e["msg"].startswith("child "))
    pid = live.get_json(f"/api/runs/{body['id']}")["pid"]
    return body["id"], pid, int(said["msg"].split()[1])


def test_a_plain_program_is_in_its_own_group_listed_without_running_and_stopped_with_its_child(
        programs, tmp_path):
    live = LiveServer(tmp_path, "--lessons-dir", str(programs))
    try:
        started = time.monotonic()
        lessons = live.get_json("/api/lessons")
        assert [(x["id"], x["title"], x["plain"]) for x in lessons] == [
            ("50_hangs", "Hangs: a child, a holder and a waiter, all at top level.", True)]
        assert time.monotonic() - started < 10, "listing did not run the program"
        run_id, pid, child = _start(live)
        assert os.getpgid(pid) == pid and os.getpgid(child) == pid, "its own process group"
        assert os.getpgid(pid) != os.getpgid(worker(live).pid)
        holder = live.wait_for_event(run_id, lambda e: e["kind"] == "threads" and any(
            t["name"] == "Holder" and t.get("holds") for t in e["threads"]))
        assert [t["holds"] for t in holder["threads"] if t["name"] == "Holder"] == [["lock"]]
        code, _ = live.post_json(f"/runs/{run_id}/stop", {})
        assert code in (200, 202, 204)
        assert live.wait_status(run_id, FINAL, timeout=15)["status"] == "stopped"
        assert not wait_gone([pid, child], 5), "Stop ended the program and its child"
    finally:
        live.stop()


def test_a_plain_program_past_the_time_limit_ends_timeout_with_its_child(programs, tmp_path):
    live = LiveServer(tmp_path, "--lessons-dir", str(programs), "--time-limit", "2")
    try:
        run_id, pid, child = _start(live)
        run = live.wait_status(run_id, FINAL, timeout=15)
        assert run["status"] == "timeout", run
        assert not wait_gone([pid, child], 5)
    finally:
        live.stop()


def test_a_plain_program_dies_with_its_server(programs, tmp_path):
    live = LiveServer(tmp_path, "--lessons-dir", str(programs))
    try:
        run_id, pid, child = _start(live)
        server = worker(live)
        # The master first, so it cannot start a new worker; then the worker that holds the run.
        os.kill(live.proc.pid, signal.SIGKILL)
        server.kill()
        assert not wait_gone([pid, child], 2), "the kit's watchdog ended the program's group"
    finally:
        live.stop()
