"""How a lesson stays under the server's control without trusting it to behave.

- **Parent watch.** The server passes the read end of a pipe (``THREADLAB_PARENT_FD``) and keeps the
  write end. When the server dies, for any reason, SIGKILL included, the kernel closes that end and
  ``threadlab-watchdog`` reads end-of-file: it kills the lesson's whole process group, so children
  the lesson started die too. On Linux the kit also asks for SIGHUP at parent death (``prctl``), a
  second path that does not need the watchdog thread to get the GIL.
- **Commands.** One JSON object per line on stdin, read by ``threadlab-commands``:
  ``{"cmd": "dump"}`` writes a ``stacks`` event (every lesson thread's stack, now);
  ``{"cmd": "step", ...}`` and ``{"cmd": "free"}`` drive step mode (see :mod:`.step`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
import threading

from . import events, frames
from .sampler import is_kit_thread

_log = logging.getLogger("threadlab.kit")
_PR_SET_PDEATHSIG = 1


def _kill_my_group(*_: object) -> None:
    """End this process and everything it started (we lead our own group under the server)."""
    try:
        if os.getpgid(0) == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
    finally:
        os._exit(137)


def watch_parent() -> None:
    """Die with the server: pipe watchdog thread plus, on Linux, a parent-death signal."""
    fd = os.environ.get("THREADLAB_PARENT_FD")
    if not fd:
        return  # run standalone: nobody to watch
    # Children the lesson starts must not keep the pipe open, or they would hide the server's death.
    os.set_inheritable(int(fd), False)
    if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, _kill_my_group)
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGHUP)
    if str(os.getppid()) != os.environ.get("THREADLAB_PARENT_PID", str(os.getppid())):
        _kill_my_group()  # the server died before we got here

    def wait_for_eof() -> None:
        try:
            while os.read(int(fd), 4096):
                pass
        except OSError:
            pass
        _kill_my_group()

    threading.Thread(target=wait_for_eof, name="threadlab-watchdog", daemon=True).start()


def stacks_event() -> dict:
    """Every lesson thread's stack at one instant (see :func:`frames.thread_stacks`).

    On a free-threaded build only the caller's own stack can be read safely, and the caller is
    usually ``threadlab-commands``, left out here: the event then lists the lesson's threads by
    name with empty ``frames`` and says why in ``limited``.
    """
    lesson_threads = [t for t in threading.enumerate() if not is_kit_thread(t)]
    limited = frames.limitation()
    return events.make(
        "stacks",
        threads=frames.thread_stacks(lesson_threads),
        **({"limited": limited} if limited else {}),
    )


def read_commands(stream=None) -> None:
    """Start ``threadlab-commands``: answers the server's commands until stdin closes."""
    stream = stream or sys.stdin

    def loop() -> None:
        for line in stream:
            try:
                request = json.loads(line)
                command = request.get("cmd")
            except (ValueError, AttributeError):
                _log.warning("ignored a command that is not a JSON object: %r", line[:80])
                continue
            if command == "dump":
                events.write(stacks_event())
            elif command in ("step", "free"):
                from . import step  # imported by setup() already when step mode is on

                step.command(request)
            else:
                _log.warning("ignored unknown command %r", command)
        step = sys.modules.get(f"{__package__}.step")
        if step is not None:  # nobody can send a step any more: do not hold threads for ever
            step.on_commands_closed()

    threading.Thread(target=loop, name="threadlab-commands", daemon=True).start()
