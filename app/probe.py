"""Reading a lesson file's metadata in a short-lived subprocess, so the server never runs its code.

``python -m lessons.kit.describe PATH`` imports the file and prints one JSON line: its docstring,
parser, ``SIGNALS`` and ``REQUIRES``. A teacher's file may hang, exit, crash or fork at import; each
becomes an :class:`Unreadable` with the reason the index shows beside the lesson. The probe runs in
a session of its own, and its whole process group is killed when it answers or runs out of time;
what the lesson started outside that group, the describer itself kills (it is a subreaper).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
SWEEP_S = 0.5  # seconds at most to kill what a hung probe's lesson started, a generation a round
ANSWER_LIMIT = 4 * 1024 * 1024  # bytes of JSON a probe may send; a lesson's metadata is a few KB


class Unreadable(Exception):
    """The probe gave no usable answer; the message is the reason shown beside the lesson."""


def _kill_group(proc: subprocess.Popen) -> bool:
    """Kill the probe and all it left behind; whether the lesson had started a process.

    The group holds whatever the lesson forked or spawned, but not a process that left it (a
    ``setsid``, a daemon): the describer is a child subreaper, so those are its children. It kills
    them itself when it answers; one that never answers is stopped first, so it cannot reap a
    child meanwhile and each child's pid stays that child's while we kill it. A killed child's
    own children are the probe's next, so it goes a generation a round. All before the probe is
    reaped, so its pid (the group id) cannot have been reused."""
    started = False
    with contextlib.suppress(psutil.Error, OSError):
        os.kill(proc.pid, signal.SIGSTOP)
        probe_process, give_up = psutil.Process(proc.pid), time.monotonic() + SWEEP_S
        while time.monotonic() < give_up:
            live = [c for c in probe_process.children() if c.status() != psutil.STATUS_ZOMBIE]
            if not live:
                break
            started = True
            for child in live:
                child.kill()
            time.sleep(0.005)  # the kill lands, and the orphans move up to the probe
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return started


def _read_line(proc: subprocess.Popen, deadline: float) -> tuple[bytes, bool]:
    """What the probe wrote up to its first newline, and whether it reached end-of-file first.

    Not ``communicate()``: a child the lesson forked holds the pipe open, so end-of-file may never
    come; the answer is complete at its newline."""
    data, fd = b"", proc.stdout.fileno()
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\n" not in data and len(data) <= ANSWER_LIMIT:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                return data, True
            data += chunk
    return data, False


def probe(path: Path, timeout: float) -> dict[str, Any]:
    """The describer's answer for ``path``; raises :class:`Unreadable` with the reason."""
    deadline = time.monotonic() + timeout
    env = {**os.environ, "THREADLAB_PARENT_PID": str(os.getpid()), "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    proc = subprocess.Popen(
        # Absolute: the probe runs in the project root, whatever the server's working directory.
        [sys.executable, "-m", "lessons.kit.describe", str(path.absolute())], cwd=ROOT, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    returncode, started = None, False
    try:
        data, eof = _read_line(proc, deadline)
        if eof and b"\n" not in data:
            # It closed its stdout: its exit status says why (read before the kill changes it).
            returncode = _exit_status(proc.pid, deadline)
    finally:
        started = _kill_group(proc)
        proc.stdout.close()
        proc.wait()
    if b"\n" in data:
        try:
            answer = json.loads(data.split(b"\n", 1)[0])
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise Unreadable("gave an unreadable answer (not one JSON object)")
        if "error" in answer:
            raise Unreadable(str(answer["error"]))
        return answer
    if len(data) > ANSWER_LIMIT:
        raise Unreadable("gave an answer too large to read")
    if started:
        raise Unreadable(f"started a process at import (and gave no answer in {timeout:g} s)")
    if returncode is None:
        raise Unreadable(f"hung at import (no answer in {timeout:g} s)")
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else -returncode
        raise Unreadable(f"killed by {name} at import")
    raise Unreadable(f"exited at import with code {returncode} and no answer")


def _exit_status(pid: int, deadline: float) -> int | None:
    """The probe's exit status once it has exited (by ``deadline``), *without reaping it*: its pid
    must still name its group when we kill what it left behind. None if it is still running."""
    try:
        pidfd = os.pidfd_open(pid)  # readable once the process has exited
    except (AttributeError, OSError):
        pidfd = None
    try:
        if pidfd is not None:
            with selectors.DefaultSelector() as selector:
                selector.register(pidfd, selectors.EVENT_READ)
                selector.select(max(0.0, deadline - time.monotonic()))
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return None
    finally:
        if pidfd is not None:
            os.close(pidfd)
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
