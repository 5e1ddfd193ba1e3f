"""Issue 15's runner promises that tests/unit/test_kit_run.py does not pin down: the program runs as
``__main__``, a thread's crash is an event naming it, ``{"cmd": "dump"}`` on stdin answers with the
program's stacks, and the watchdog ends the program's whole process group when its server's pipe
closes (the server died)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
RUN = [sys.executable, "-m", "lessons.kit.run", "--log-format", "json"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLAB_")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def _program(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "prog.py"
    path.write_text(textwrap.dedent(source))
    return path


def _events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def _read_until(proc: subprocess.Popen, predicate, timeout: float = 20) -> dict:
    """The first event of ``proc``'s stdout that ``predicate`` accepts (os.read: never blocks past
    the deadline for a line that does not come)."""
    deadline, buffer = time.monotonic() + timeout, b""
    os.set_blocking(proc.stdout.fileno(), False)
    while time.monotonic() < deadline:
        chunk = proc.stdout.read()
        if chunk:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                event = json.loads(line)
                if predicate(event):
                    return event
        elif proc.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError("event not seen in time")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_the_program_runs_as_main_with_its_own_argv(tmp_path):
    program = _program(tmp_path, """\
        import sys
        if __name__ == "__main__":
            print("main", sys.argv[1:], sys.argv[0].endswith("prog.py"))
    """)
    done = subprocess.run([*RUN, str(program), "a"], cwd=tmp_path, env=_env(), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert [e["msg"] for e in _events(done.stdout) if e["kind"] == "log"] == ["main ['a'] True"]


def test_a_thread_that_crashes_is_an_event_naming_it_and_the_program_goes_on(tmp_path):
    program = _program(tmp_path, """\
        import threading
        def broken():
            raise KeyError("missing")
        t = threading.Thread(target=broken, name="Breaker")
        t.start(); t.join(10)
        print("main still here")
    """)
    done = subprocess.run([*RUN, str(program)], cwd=tmp_path, env=_env(), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    events = _events(done.stdout)
    ops = [(e["op"], e["name"]) for e in events if e["kind"] == "thread" and e["name"] == "Breaker"]
    assert ops == [("start", "Breaker"), ("crash", "Breaker")], ops
    crash = next(e for e in events if e["kind"] == "thread" and e["op"] == "crash")
    assert crash["exc"] == {"type": "KeyError", "message": "'missing'"}
    assert any(e["kind"] == "log" and e["msg"] == "main still here" for e in events)
    assert "KeyError: 'missing'" in done.stderr, "the traceback python prints is still printed"


def test_dump_on_stdin_writes_the_programs_stacks(tmp_path):
    program = _program(tmp_path, """\
        import threading
        release = threading.Event()
        def napper():
            release.wait(30)
        t = threading.Thread(target=napper, name="Napper")
        t.start()
        print("ready")
        t.join(30)
    """)
    proc = subprocess.Popen([*RUN, str(program)], cwd=tmp_path, env=_env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _read_until(proc, lambda e: e["kind"] == "log" and e["msg"] == "ready")
        proc.stdin.write(b'{"cmd": "dump"}\n')
        proc.stdin.flush()
        stacks = _read_until(proc, lambda e: e["kind"] == "stacks")
        napper = next(t for t in stacks["threads"] if t["name"] == "Napper")
        assert any(frame.get("function") == "napper" or "napper" in json.dumps(frame)
                   for frame in napper["frames"]), napper
        assert not any(t["name"].startswith("threadlab-") for t in stacks["threads"])
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(10)


def test_the_watchdog_ends_the_programs_group_when_the_server_pipe_closes(tmp_path):
    program = _program(tmp_path, """\
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print("child", child.pid)
        time.sleep(60)
    """)
    read_end, write_end = os.pipe()
    env = _env(THREADLAB_PARENT_FD=str(read_end), THREADLAB_PARENT_PID=str(os.getpid()))
    proc = subprocess.Popen([*RUN, str(program)], cwd=tmp_path, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, pass_fds=(read_end,),
                            start_new_session=True)
    os.close(read_end)
    try:
        child = int(_read_until(proc, lambda e: e["kind"] == "log" and e["msg"].startswith("child"))
                    ["msg"].split()[1])
        os.close(write_end)  # what the kernel does when the server dies, SIGKILL included
        assert proc.wait(5) != 0
        deadline = time.monotonic() + 5
        while not _gone(child):
            assert time.monotonic() < deadline, "the program's child outlived the server"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait(10)
