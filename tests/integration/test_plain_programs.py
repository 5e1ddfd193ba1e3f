"""Plain programs (no parser) watched like lessons: listed from their syntax tree, run under
``lessons.kit.run`` with free-form arguments, headless through scripts/cli.py, and by path through
``threadlab watch`` (which starts or reuses a dashboard)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT, LiveServer, free_port

PLAIN = ROOT / "tests" / "fixtures" / "plain_programs"
FINAL = ("exited", "failed", "stopped", "killed", "timeout", "interrupted")

# id: (args, status, exit code, thread names that must appear, (thread, text) pairs of log lines)
PROGRAMS = {
    "30_plain_args": (["one", "two words", "--flag=x"], "exited", 0, ["MainThread"],
                      [("MainThread", "args: ['one', 'two words', '--flag=x']")]),
    "31_no_main_guard": ([], "exited", 0, ["Worker-0", "Worker-1", "Worker-2"],
                         [("Worker-1", "worker 1 step 2"), ("MainThread", "all threads joined")]),
    "32_print_only": ([], "exited", 0, ["Printer-0", "Printer-1", "Printer-2"],
                      [("Printer-0", "P0 says hello 0"), ("Printer-2", "P2 done"),
                       ("MainThread", "main done")]),
    "33_logging_format": ([], "exited", 0, ["Logger-0", "Logger-1"],
                          [("Logger-0", "worker 0 starting"), ("Logger-1", "worker 1 finished"),
                           ("MainThread", "all done")]),
    "34_deadlock": ([], "exited", 0, ["Left", "Right"],
                    [("Left", "Left holds lock_a"), ("Right", "Right holds lock_b"),
                     ("MainThread", "both finished")]),
    "35_condition": ([], "exited", 0, ["Producer", "Consumer"],
                     [("Producer", "produced 4"), ("Consumer", "consumed 4"),
                      ("MainThread", "hand-over complete")]),
    "36_thread_pool": ([], "exited", 0, ["Pool_0"], [("MainThread", "sum of squares: 2870")]),
    "37_exits_3": ([], "failed", 3, ["Finisher"], [("Finisher", "worker finished")]),
}


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("plain"), "--lessons-dir", str(PLAIN))
    yield live
    live.stop()


def test_every_program_is_listed_plain_with_its_title_and_no_params(plain):
    lessons = {lesson["id"]: lesson for lesson in plain.get_json("/api/lessons")}
    assert sorted(lessons) == sorted(PROGRAMS)
    for lesson in lessons.values():
        assert lesson["plain"] is True and lesson["params"] == [] and lesson["available"], lesson
    assert lessons["34_deadlock"]["title"] == "Deadlock: two threads take two plain locks in opposite orders."


@pytest.mark.parametrize("lesson_id", sorted(PROGRAMS))
def test_each_program_runs_watched_like_a_lesson(plain, lesson_id):
    args, status, exit_code, threads, lines = PROGRAMS[lesson_id]
    code, body = plain.post_json("/runs", {"lesson": lesson_id[:2], "args": args})
    assert code == 201, body
    run = plain.wait_status(body["id"], FINAL, timeout=60)
    assert (run["status"], run["exit_code"]) == (status, exit_code), plain.events(body["id"])[-5:]
    assert run["params"] == {"args": args}
    events = plain.events(body["id"])
    seen = {t["name"] for e in events if e["kind"] == "threads" for t in e["threads"]}
    seen |= {e["name"] for e in events if e["kind"] == "thread"}
    assert set(threads) <= seen, seen
    logs = [(e["thread"], e["msg"]) for e in events if e["kind"] == "log"]
    for thread, text in lines:
        assert any(t == thread and text in msg for t, msg in logs), (thread, text, logs)
    # Nothing of the program's output escaped as raw stdout: print and logging became log events.
    assert not [e for e in events if e["kind"] == "stdout"]


def test_the_deadlock_is_caught_naming_threads_and_locks(plain):
    code, body = plain.post_json("/runs", {"lesson": "34", "args": []})
    assert code == 201, body
    formed = plain.wait_for_event(body["id"], lambda e: e["kind"] == "deadlock" and e.get("op") == "formed")
    assert {link["thread"] for link in formed["cycle"]} == {"Left", "Right"}
    named = json.dumps(formed["cycle"])
    assert "lock_a" in named and "lock_b" in named, formed["cycle"]
    plain.wait_status(body["id"], FINAL)


def test_the_run_page_shows_the_arguments(plain):
    code, body = plain.post_json("/runs", {"lesson": "30", "args": ["a b", "c"]})
    assert code == 201
    plain.wait_status(body["id"], FINAL)
    status, page, _ = plain.request("GET", f"/runs/{body['id']}")
    assert status == 200 and b'name="args"' in page and b'value="&#39;a b&#39; c"' in page
    status, index, _ = plain.request("GET", "/")
    assert b"&#39;a b&#39; c" in index or b"'a b' c" in index


@pytest.mark.parametrize("data, field", [
    ({"lesson": "30", "args": ["x"] * 65}, "args"),
    ({"lesson": "30", "args": ["x" * 501]}, "args"),
    ({"lesson": "30", "args": ["nul\u0000"]}, "args"),
    ({"lesson": "30", "args": "one two"}, "args"),
    ({"lesson": "30", "args": [1, 2]}, "args"),
    ({"lesson": "30", "params": {"count": 1}}, "params"),
    ({"lesson": "30", "args": [], "verbose": True}, "verbose"),
    ({"program": "relative/prog.py"}, "program"),
    ({"program": "/etc/passwd"}, "program"),
    ({"program": str(PLAIN / "99_missing.py")}, "program"),
    ({"program": str(PLAIN)}, "program"),
    ({"program": str(PLAIN / "30_plain_args.py"), "lesson": "30"}, "program"),
])
def test_bad_runs_are_400_naming_the_field(plain, data, field):
    before = len(plain.get_json("/api/runs"))
    code, body = plain.post_json("/runs", data)
    assert (code, body.get("field")) == (400, field), body
    assert len(plain.get_json("/api/runs")) == before, "nothing started"


def test_a_lone_surrogate_in_args_is_400(plain):
    raw = b'{"lesson": "30", "args": ["\\ud800"]}'
    status, body, _ = plain.request("POST", "/runs", raw=raw, headers={"Content-Type": "application/json"})
    assert status == 400 and json.loads(body)["field"] == "args"


def test_args_for_a_lesson_with_a_parser_is_400(server):
    code, body = server.post_json("/runs", {"lesson": "01", "args": ["--workers", "2"]})
    assert (code, body["field"]) == (400, "args") and "named parameters" in body["message"]


def test_the_form_splits_args_like_a_shell_and_refuses_what_it_cannot_split(plain):
    from tests.live_helpers import Session

    session = Session(plain, "/lessons/30")
    status, headers, _ = session.post_form("/runs", {"csrf_token": session.token, "lesson": "30",
                                                      "args": "one 'two three' \"$HOME\" ;ls"})
    assert status == 303, headers
    run_id = headers["Location"].rsplit("/", 1)[-1]
    assert plain.wait_status(run_id, FINAL)["params"] == {"args": ["one", "two three", "$HOME", ";ls"]}
    event = plain.wait_for_event(run_id, lambda e: e["kind"] == "log" and "args:" in e["msg"])
    assert event["msg"] == "args: ['one', 'two three', '$HOME', ';ls']", "no shell expanded anything"
    status, _, page = session.post_form("/runs", {"csrf_token": session.token, "lesson": "30",
                                                  "args": "unclosed 'quote"})
    assert status == 400 and b'id="error-args"' in page


# -- a program by path ----------------------------------------------------------------------------

def test_a_program_by_path_runs_and_its_page_shows_its_source(plain, tmp_path):
    program = tmp_path / "my_prog.py"
    program.write_text('"""My own program."""\nimport sys\nprint("mine", *sys.argv[1:])\n')
    code, body = plain.post_json("/runs", {"program": str(program), "args": ["x"]})
    assert code == 201, body
    run = plain.wait_status(body["id"], FINAL)
    assert (run["lesson"], run["status"], run["params"]) == ("program:my_prog.py", "exited", {"args": ["x"]})
    status, page, _ = plain.request("GET", f"/runs/{body['id']}")
    assert status == 200 and b"My own program." in page and b'id="source"' in page
    assert b"mine" in page  # the source, highlighted or not


def test_a_program_with_a_parser_is_refused_by_path(plain):
    code, body = plain.post_json("/runs", {"program": str(ROOT / "lessons" / "01_simple_thread.py")})
    assert (code, body["field"]) == (400, "program")


def test_a_program_by_path_is_refused_in_remote_mode(tmp_path):
    from app import create_app

    token = "x" * 43
    app = create_app({"DATA_DIR": str(tmp_path), "HOST": "0.0.0.0", "PORT": 8765, "ACCESS_TOKEN": token})
    client = app.test_client()
    response = client.post("/runs", json={"program": str(PLAIN / "34_deadlock.py")},
                           headers={"Host": "127.0.0.1:8765", "Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert "refused in remote mode" in response.get_json()["error"]
    assert not list((tmp_path / "runs").iterdir()), "nothing started"


# -- headless ------------------------------------------------------------------------------------

def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "cli.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_runs_a_program_with_its_own_output():
    done = _cli("--run", "tests/fixtures/plain_programs/32_print_only.py")
    assert done.returncode == 0, done.stderr
    # Text mode leaves output alone, so it races as under plain python: print() writes the text
    # and its newline in two steps, and another thread's line can land between them. Every line
    # is there once, whole or not; none is added or lost.
    expected = [f"P{n} says hello {i}" for n in range(3) for i in range(3)]
    expected += [f"P{n} done" for n in range(3)] + ["main done"]
    assert all(done.stdout.count(text) == 1 for text in expected), done.stdout
    assert done.stdout.count("\n") == len(expected)


def test_cli_runs_a_program_with_json_events_and_its_exit_code():
    done = _cli("--run", "tests/fixtures/plain_programs/34_deadlock.py", "--log-format", "json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert any(e["kind"] == "deadlock" and e.get("op") == "formed" for e in events)
    assert any(e["kind"] == "log" and e["thread"] == "Left" for e in events)
    assert _cli("--run", "tests/fixtures/plain_programs/37_exits_3.py").returncode == 3


# -- threadlab watch -----------------------------------------------------------------------------

def _watch(port: int, data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", "watch", "--port", str(port), "--data-dir",
                           str(data_dir), *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def _final(url: str, timeout: float = 60) -> dict:
    import urllib.request

    api = url.replace("/runs/", "/api/runs/")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = json.loads(urllib.request.urlopen(api, timeout=10).read())
        if run["status"] in FINAL:
            return run
        time.sleep(0.1)
    raise AssertionError(f"{url} did not end")


def test_watch_starts_a_dashboard_then_reuses_it(tmp_path):
    port, data_dir = free_port(), tmp_path / "data"
    program = "tests/fixtures/plain_programs/34_deadlock.py"
    try:
        first = _watch(port, data_dir, program)
        assert first.returncode == 0, (first.stderr, (data_dir / "serve.log").read_text(errors="replace"))
        pid = int((data_dir / "serve.pid").read_text())
        assert psutil.pid_exists(pid) and "started a dashboard" in first.stderr
        url = first.stdout.strip()
        assert url.startswith(f"http://127.0.0.1:{port}/runs/")
        second = _watch(port, tmp_path / "unused", program, "extra")
        assert second.returncode == 0, second.stderr
        assert "started" not in second.stderr and not (tmp_path / "unused").exists(), "reused"
        runs = [_final(url), _final(second.stdout.strip())]
        assert [r["status"] for r in runs] == ["exited", "exited"]
        assert [r["lesson"] for r in runs] == ["program:34_deadlock.py"] * 2
        assert runs[1]["params"] == {"args": ["extra"]}
    finally:
        if (data_dir / "serve.pid").exists():
            pid = int((data_dir / "serve.pid").read_text())
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGTERM)
                psutil.Process(pid).wait(15)


def test_watch_refuses_a_missing_program(tmp_path):
    done = _watch(free_port(), tmp_path, str(tmp_path / "nope.py"))
    assert done.returncode == 2 and "no such" in done.stderr and not (tmp_path / "serve.pid").exists()
