"""Issue 15's "done when": every plain fixture program through the two ways in that
test_plain_programs.py tries with one or two of them only, headless ``scripts/cli.py --run`` (JSON)
and ``threadlab watch`` (reusing a running dashboard): each shows its threads by name, its log
lines by thread, its exit code, and for the deadlock the cycle naming both threads and locks."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from tests.conftest import ROOT, LiveServer
from tests.integration.test_plain_programs import FINAL, PLAIN, PROGRAMS


def _check(events: list[dict], lesson_id: str) -> None:
    _, _, _, threads, lines = PROGRAMS[lesson_id]
    seen = {t["name"] for e in events if e["kind"] == "threads" for t in e["threads"]}
    seen |= {e["name"] for e in events if e["kind"] == "thread"}
    assert set(threads) <= seen, seen
    logs = [(e["thread"], e["msg"]) for e in events if e["kind"] == "log"]
    for thread, text in lines:
        assert any(t == thread and text in msg for t, msg in logs), (thread, text, logs)
    if lesson_id == "34_deadlock":
        formed = [e for e in events if e["kind"] == "deadlock" and e.get("op") == "formed"]
        assert formed and {link["thread"] for link in formed[0]["cycle"]} == {"Left", "Right"}
        assert {link["waits_for"] for link in formed[0]["cycle"]} == {"lock_a", "lock_b"}


@pytest.mark.parametrize("lesson_id", sorted(PROGRAMS))
def test_cli_run_json_shows_threads_and_lines_by_thread(lesson_id):
    args, _, exit_code, _, _ = PROGRAMS[lesson_id]
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "cli.py"), "--run",
                           str(PLAIN / f"{lesson_id}.py"), "--log-format", "json", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == exit_code, done.stderr
    _check([json.loads(line) for line in done.stdout.splitlines()], lesson_id)


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("byop_watch"))
    yield live
    live.stop()


@pytest.mark.parametrize("lesson_id", sorted(PROGRAMS))
def test_watch_shows_threads_and_lines_by_thread(dashboard, lesson_id, tmp_path):
    args, status, exit_code, _, _ = PROGRAMS[lesson_id]
    done = subprocess.run([sys.executable, "-m", "app.cli", "watch", "--port", str(dashboard.port),
                           "--data-dir", str(tmp_path / "unused"), str(PLAIN / f"{lesson_id}.py"),
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "started" not in done.stderr, "the running dashboard is reused"
    url = done.stdout.strip()
    assert url.startswith(f"{dashboard.url}/runs/")
    run_id = url.rsplit("/", 1)[-1]
    run = dashboard.wait_status(run_id, FINAL, timeout=60)
    assert (run["status"], run["exit_code"], run["params"]) == (status, exit_code, {"args": args})
    with urllib.request.urlopen(url, timeout=30) as page:  # the address printed is a live page
        assert page.status == 200
    _check(dashboard.events(run_id), lesson_id)
