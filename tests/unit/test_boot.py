"""The worker launcher (lessons/kit/boot.py): runs any program as python would, and dies with its parent."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOT = [sys.executable, "-m", "lessons.kit.boot"]

PROGRAM = textwrap.dedent(
    """\
    import sys

    print("name", __name__, "argv", sys.argv[1:], "argv0", sys.argv[0], "path0", sys.path[0])

    def fail():
        raise ValueError("boom")

    if sys.argv[1:2] == ["raise"]:
        fail()
    if sys.argv[1:2] == ["exit"]:
        raise SystemExit(int(sys.argv[2]))
    """
)


def boot(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*BOOT, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=30)


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "prog.py"
    path.write_text(PROGRAM)
    return path


def test_a_plain_program_gets_main_argv_and_its_own_folder_on_the_path(program):
    done = boot(str(program), "a", "--flag")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["name", "__main__", "argv", "['a',", "'--flag']",
                                   "argv0", str(program), "path0", str(program.parent)]


def test_exit_codes_and_tracebacks_are_pythons(program):
    assert boot(str(program), "exit", "7").returncode == 7
    failed = boot(str(program), "raise")
    plain = subprocess.run([sys.executable, str(program), "raise"], capture_output=True, text=True,
                           timeout=30)
    assert failed.returncode == plain.returncode == 1
    # The same traceback as plain python: the launcher's and runpy's frames are left out.
    assert failed.stderr == plain.stderr
    assert "ValueError: boom" in failed.stderr and "boot.py" not in failed.stderr


def test_module_form(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "mod.py").write_text(PROGRAM)
    done = boot("-m", "pkg.mod", "exit", "3", cwd=tmp_path)  # -m finds modules in the cwd
    assert done.returncode == 3, done.stderr
    assert done.stdout.split()[:3] == ["name", "__main__", "argv"]
    assert f"argv0 {package / 'mod.py'}" in done.stdout
    missing = boot("-m", "pkg.nosuch", cwd=tmp_path)
    assert missing.returncode == 1 and "No module named" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_a_worker_whose_server_is_already_gone_exits_at_once(program):
    # THREADLAB_PARENT_PID names a parent we do not have: as if the server died before we armed
    # the parent-death signal. Nothing of the program may run.
    env = {**os.environ, "THREADLAB_PARENT_PID": str(os.getpid() + 100000)}
    done = boot(str(program), env=env)
    assert (done.returncode, done.stdout) == (137, "")
    env["THREADLAB_PARENT_PID"] = str(os.getpid())  # our child's parent is us: runs normally
    assert boot(str(program), env=env).returncode == 0


def _read_line(stream, deadline: float) -> str:
    """One line from a pipe, failing (not hanging) once ``deadline`` has passed."""
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([stream], [], [], left)[0]:
            pytest.fail(f"no line within the time allowed (got {line!r})")
        chunk = os.read(stream.fileno(), 1)
        if not chunk:
            pytest.fail(f"pipe closed (got {line!r})")
        line += chunk
    return line.decode().strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal: Linux only")
def test_a_program_without_the_kit_dies_with_its_parent(tmp_path):
    sleeper = tmp_path / "sleeper.py"
    sleeper.write_text("import os, time\nprint('ready', os.getpid(), flush=True)\ntime.sleep(60)\n")
    # The "server": starts the worker through boot from its main thread (the kernel's parent-death
    # rule follows the thread that forked), tells us nothing, then waits.
    parent_code = (
        "import subprocess, sys\n"
        f"subprocess.Popen({[*BOOT, str(sleeper)]!r}, cwd={str(ROOT)!r}).wait()\n"
    )
    env = {**os.environ, "THREADLAB_PARENT_PID": ""}  # the parent watch is not what is tested
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, env=env)
    worker = None
    try:
        # The worker inherits the parent's stdout: its line says it is running, after boot armed
        # the signal, so killing the parent now tests the signal, not a race with start-up.
        word, pid = _read_line(parent.stdout, time.monotonic() + 30).split()
        assert word == "ready"
        worker = psutil.Process(int(pid))
        assert worker.ppid() == parent.pid
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 5
        while _alive(worker):
            assert time.monotonic() < deadline, "the worker outlived its parent by 5 s"
            time.sleep(0.02)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        parent.stdout.close()
        if worker is not None and _alive(worker):
            worker.kill()  # only if the test failed; psutil checks it is still our process


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE  # dead, waiting for init to reap it
    except psutil.NoSuchProcess:
        return False
