"""The lesson kit: the small, stdlib-only library every lesson imports.

A lesson does three things with it::

    parser = kit.lesson_parser(__doc__)          # adds --log-format and --verbose
    parser.add_argument("--workers", type=kit.int_range(1, 16), default=4, help="...")
    log = kit.setup(args)                        # logging, sampler, watchdog, commands
    ...
    kit.emit_result(expected=10, actual=10)      # the numbers the lesson proves

Everything the kit starts runs in threads named ``threadlab-…``, which snapshots and lessons ignore.
Settings come from the environment, so the server and the lesson share nothing but the event schema:
``THREADLAB_SAMPLE_INTERVAL`` (seconds between thread samples, default 0.1; 0 turns sampling off),
``THREADLAB_PARENT_FD`` / ``THREADLAB_PARENT_PID`` (the parent watch, see :mod:`.control`).
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from . import control, events
from .args import float_range, int_range, lesson_parser
from .sampler import Sampler

__all__ = [
    "cancel_on_interrupt",
    "emit_result",
    "float_range",
    "int_range",
    "lesson_parser",
    "setup",
]

_log = logging.getLogger("threadlab.kit")
_sampler: Sampler | None = None
_on_interrupt: list[Callable[[], None]] = []  # what SIGINT should do, registered by the lesson


def setup(args: argparse.Namespace, logger_name: str = "lesson") -> logging.Logger:
    """Set up logging for ``args.log_format``, start the kit's helpers, return the lesson's logger.

    Safe to call again (tests run ``main()`` many times in one process): the previous sampler is
    stopped and everything is set up afresh.
    """
    global _sampler
    json_mode = args.log_format == "json"
    if json_mode:
        events.enable()
    from .logsetup import configure

    configure(args.log_format, getattr(args, "verbose", False))
    if _sampler is not None:
        _sampler.stop()
    interval = float(os.environ.get("THREADLAB_SAMPLE_INTERVAL", "0.1"))
    # 0 turns snapshots off; the deadlock watch still wakes every 0.1 s
    # (never wait(0): a busy loop).
    _sampler = Sampler(
        interval=interval if interval > 0 else 0.1, snapshots=json_mode and interval > 0
    )
    _sampler.start()
    global _interrupts, _wake_read, _wake_write
    _on_interrupt.clear()
    _interrupts = 0
    if threading.current_thread() is threading.main_thread():
        if _wake_read < 0:
            _wake_read, _wake_write = os.pipe()
            threading.Thread(
                target=_interrupt_worker, name="threadlab-interrupts", daemon=True
            ).start()
        signal.signal(signal.SIGINT, _handle_sigint)
    control.watch_parent()
    if json_mode and not sys.stdin.isatty():
        control.read_commands()
    return logging.getLogger(logger_name)


def cancel_on_interrupt(token: threading.Event | Any) -> None:
    """On Ctrl-C (SIGINT, or Stop on the dashboard), set ``token`` so the lesson winds down itself.

    Without any token, SIGINT ends the lesson at once (exit code 130). A second SIGINT always does.
    """
    _on_interrupt.append(token.set)


# The SIGINT handler runs in the main thread between two bytecodes, possibly while that thread holds
# a lock (logging's, our event writer's). Taking the same lock in the handler would deadlock, so the
# handler only writes a byte to a pipe (no Python lock involved); ``threadlab-interrupts`` reads it
# and does the work: logging, setting the tokens, or exiting.
_wake_read = _wake_write = -1  # made by setup(): importing the kit (the server does) starts nothing
_interrupts = 0


def _handle_sigint(signum: int, _frame: object) -> None:
    global _interrupts
    _interrupts += 1
    if _interrupts > 1:
        os._exit(130)  # asked twice: leave now, without waiting for anyone
    os.write(_wake_write, bytes([signum]))


def _interrupt_worker() -> None:
    while True:
        signum = os.read(_wake_read, 1)[0]
        name = signal.Signals(signum).name
        if not _on_interrupt:
            _log.warning("got %s: no cancellation token registered, exiting now", name)
            _flush_and_exit(130)
        _log.warning("got %s: asking every thread to stop (press again to exit at once)", name)
        for callback in list(_on_interrupt):
            callback()



def _flush_and_exit(code: int) -> None:
    if _sampler is not None:
        _sampler.stop()
    sys.stdout.flush()
    os._exit(code)


def emit_result(**values: Any) -> dict[str, Any]:
    """Report the numbers the lesson proves: a ``result`` event (JSON mode) or a block of text."""
    if _sampler is not None and _sampler.snapshots:
        _sampler.write_snapshot(force=True)  # the table the learner sees matches the result
    if events.enabled():
        events.emit("result", values=values)
    else:
        width = max((len(k) for k in values), default=0)
        lines = ["", "Result:", *(f"  {key:<{width}} = {value}" for key, value in values.items())]
        try:
            print("\n".join(lines), flush=True)
        except BrokenPipeError:
            from .logsetup import silence_stdout

            silence_stdout()
    return values


def _final_snapshot() -> None:
    if _sampler is not None:
        _sampler.stop()


# atexit runs after the interpreter has joined every non-daemon thread:
# the last snapshot shows them done.
atexit.register(_final_snapshot)
