"""One lesson process and the file descriptors that come with it, as its supervisor handles them.

A :class:`Worker` belongs to one supervisor thread (app/supervisor.py) and is used by it alone, so
it has no lock. It holds the one rule that makes signalling a process group safe: the group id is
the leader's pid, and a pid can be given to a stranger once the leader is reaped. So every signal
goes through :meth:`Worker.signal_group`, which sends nothing once :meth:`Worker.reap` has run, and
``reap`` kills what is left of the group *before* reaping the leader.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from .lesson import Lesson

DUMP_COMMAND = b'{"cmd": "dump"}\n'  # shorter than PIPE_BUF: written whole or not at all
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Worker:
    def __init__(self, argv: list[str], env: dict[str, str], cwd: str) -> None:
        """Start the process in a group of its own; raises OSError if it cannot start."""
        watch_read, self._watch_write = os.pipe()  # the kit reads end-of-file here when we die
        try:
            self.proc = subprocess.Popen(
                argv, cwd=cwd, env={**env, "THREADLAB_PARENT_FD": str(watch_read)},
                pass_fds=(watch_read,), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: signals and kills reach it all
            )
        except OSError:
            os.close(self._watch_write)
            raise
        finally:
            os.close(watch_read)
        self.pid = self.proc.pid
        self.reaped = False
        os.set_blocking(self.proc.stdin.fileno(), False)  # a command never blocks us: full → refused
        self.exit_fd = _exit_notifier(self.pid)

    @property
    def outputs(self) -> dict[int, str]:
        """The lesson's output pipes by file descriptor: ``{fd: "stdout" | "stderr"}``."""
        return {self.proc.stdout.fileno(): "stdout", self.proc.stderr.fileno(): "stderr"}

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def signal_group(self, sig: int) -> None:
        """``sig`` to the lesson's whole process group, while the group is still the lesson's."""
        if not self.reaped:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    def reap(self) -> int:
        """Kill what the lesson left in its group, then reap the leader; its exit code."""
        if not self.reaped:
            self.signal_group(signal.SIGKILL)  # the leader, a zombie at most, still holds the id
            self.proc.wait()
            self.reaped = True
        return self.proc.returncode

    def send_command(self, data: bytes = DUMP_COMMAND) -> tuple[int, str]:
        """Write one command line to the kit's command reader; ``(202, "")`` or ``(409, why)``."""
        try:
            written = os.write(self.proc.stdin.fileno(), data)
        except BlockingIOError:
            return 409, "the lesson is not reading its commands (its input is full)"
        except OSError:
            return 409, "the lesson no longer reads commands"
        return (202, "") if written == len(data) else (409, "the command did not fit")

    def close(self) -> None:
        """Close our ends of everything; the kit's watchdog then sees end-of-file if it still runs."""
        for fd in (self._watch_write, self.exit_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            with contextlib.suppress(OSError):
                stream.close()


def worker_argv(lesson: Lesson, argv: list[str]) -> list[str]:
    """The worker's argv: no shell, the server's own interpreter (a PATH shim costs ~95 ms),
    through the kit's boot module, which ties the worker's life to ours even when the lesson
    never imports the kit.

    A plain program (no parser) runs under ``lessons.kit.run``, which sets the kit up around it
    (print and logging as events, traced primitives named by assignment) and runs it as
    ``__main__``; ``argv`` is then its own free-form arguments, after its path, where the
    runner's options can no longer be read from them."""
    if lesson.plain:
        return [sys.executable, "-m", "lessons.kit.boot", "-m", "lessons.kit.run",
                "--log-format", "json", str(lesson.path.resolve()), *argv]
    if lesson.path.parent.resolve() == (PROJECT_ROOT / "lessons").resolve():
        target = ["-m", f"lessons.{lesson.id}"]
    else:
        target = [str(lesson.path)]  # a lessons folder of its own (a teacher's, or the tests')
    return [sys.executable, "-m", "lessons.kit.boot", *target, "--log-format", "json", *argv]


def worker_env(sample_interval: float) -> dict[str, str]:
    """What the kit reads from its environment: who its parent is, how often to sample."""
    return {
        **os.environ,
        "THREADLAB_PARENT_PID": str(os.getpid()),
        "THREADLAB_SAMPLE_INTERVAL": str(sample_interval),
        "PYTHONIOENCODING": "utf-8",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
    }


def _exit_notifier(pid: int) -> int:
    """A file descriptor that becomes readable when process ``pid`` exits (it is not reaped).

    Linux has pidfds; elsewhere a small thread waits without reaping and closes a pipe.
    """
    with contextlib.suppress(AttributeError, OSError):
        return os.pidfd_open(pid)
    read_end, write_end = os.pipe()

    def wait_then_tell() -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        os.close(write_end)

    threading.Thread(target=wait_then_tell, name=f"threadlab-exit-{pid}", daemon=True).start()
    return read_end
