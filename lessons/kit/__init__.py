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
``THREADLAB_PARENT_FD`` / ``THREADLAB_PARENT_PID`` (the parent watch, see :mod:`.control`),
``THREADLAB_STEP`` / ``THREADLAB_SCHEDULE`` (step mode, see :mod:`.step`; without them it is not
even imported).

Importing this package is kept light (no logging, json, ctypes or sampler until :func:`setup` or
an attribute asks for them): ``python -m lessons.kit.boot``, the launcher of every worker, imports
it first, also for programs that never use the kit.
"""

from __future__ import annotations

import atexit
import importlib
import os
import signal
import sys
import threading

# typing costs 3 ms to import, more than the rest of this file: the annotations are strings anyway.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    import logging
    from collections.abc import Callable
    from typing import Any

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

_ARG_HELPERS = ("float_range", "int_range", "lesson_parser")
_SUBMODULES = (
    "args", "control", "events", "frames", "logsetup", "sampler", "signals", "step", "traced",
)


def __getattr__(name: str) -> Any:
    """``kit.lesson_parser`` and ``kit.traced`` without importing them all up front (see above)."""
    if name in _ARG_HELPERS:
        from . import args

        return getattr(args, name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The current sampler. Replaced only by setup() under _sampler_lock (two setups at once would
# otherwise both stop the old one and leave one of the new ones running unseen), never set back
# to None. Readers do not lock: each takes the reference into a local once (one atomic read), so
# a setup() in another thread cannot swap it between their check and their use.
_sampler_lock = threading.Lock()
_sampler: Sampler | None = None
# What SIGINT should do, registered by the lesson from any thread, cleared by setup() and run by
# threadlab-interrupts: _on_interrupt_lock guards the list, and nobody calls a callback under it.
_on_interrupt_lock = threading.Lock()
_on_interrupt: list[Callable[[], None]] = []


def setup(
    args: argparse.Namespace,
    logger_name: str = "lesson",
    *,
    main_file: str | None = None,
    own_logging: bool = True,
) -> logging.Logger:
    """Set up logging for ``args.log_format``, start the kit's helpers, return the lesson's logger.

    Safe to call again (tests run ``main()`` many times in one process): the previous sampler is
    stopped and everything is set up afresh.

    For a plain program (``python -m lessons.kit.run``): ``main_file`` is the program's file (the
    sampler's ``where`` points into it), and ``own_logging=False`` leaves the root logger to the
    program, whose ``basicConfig`` must still take effect; only the kit's own logger gets a handler.
    """
    global _sampler
    import logging

    from . import control, events
    from . import sampler as sampler_module
    from .logsetup import configure, configure_kit_only
    from .sampler import Sampler

    json_mode = args.log_format == "json"
    if json_mode:
        events.enable()

    if own_logging:
        configure(args.log_format, getattr(args, "verbose", False))
    else:
        configure_kit_only(args.log_format)
    interval = float(os.environ.get("THREADLAB_SAMPLE_INTERVAL", "0.1"))
    # 0 turns snapshots off; the deadlock watch still wakes every 0.1 s
    # (never wait(0): a busy loop).
    sampler = Sampler(
        interval=interval if interval > 0 else 0.1,
        snapshots=json_mode and interval > 0,
        main_file=main_file,
    )
    with _sampler_lock:  # stop the old one and publish the new one as one step (see _sampler)
        if _sampler is not None:
            _sampler.stop()
        # thread events and traced joins (JSON mode only). Installed under the same lock: one
        # setup at a time changes threading's methods, and installing again replaces our
        # wrappers instead of stacking them (setup() twice must not write every event twice).
        if json_mode:
            sampler_module.install_thread_hooks()
        else:
            sampler_module.uninstall_thread_hooks()
        sampler.start()
        _sampler = sampler
    global _interrupts, _wake_read, _wake_write
    with _on_interrupt_lock:
        _on_interrupt.clear()
    # The SIGINT state below (_interrupts, the wake pipe, the handler) is owned by the main thread:
    # only it runs signal handlers, and only it gets here, so "no pipe yet? make one" is no race.
    if threading.current_thread() is threading.main_thread():
        _interrupts = 0
        if _wake_read < 0:
            _wake_read, _wake_write = os.pipe()
            threading.Thread(
                target=_interrupt_worker, name="threadlab-interrupts", daemon=True
            ).start()
        signal.signal(signal.SIGINT, _handle_sigint)
    control.watch_parent()
    commands = json_mode and not sys.stdin.isatty()
    if os.environ.get("THREADLAB_STEP") == "1" or os.environ.get("THREADLAB_SCHEDULE"):
        from . import step  # before the command reader, which may pass it a step at once

        step.start(sampler.main_file, commands)
    if commands:
        control.read_commands()
    return logging.getLogger(logger_name)


def cancel_on_interrupt(token: threading.Event | Any) -> None:
    """On Ctrl-C (SIGINT, or Stop on the dashboard), set ``token`` so the lesson winds down itself.

    Without any token, SIGINT ends the lesson at once (exit code 130). A second SIGINT always does.
    """
    with _on_interrupt_lock:
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
    import logging

    log = logging.getLogger("threadlab.kit")
    while True:
        signum = os.read(_wake_read, 1)[0]
        name = signal.Signals(signum).name
        step = sys.modules.get(f"{__name__}.step")
        if step is not None:  # step mode: let every thread go first, or none could wind down
            step.on_interrupt()
        # One copy under the lock, then decide and act on that copy: checking the list, then
        # reading it again, would let a token registered in between be both absent and called.
        with _on_interrupt_lock:
            callbacks = list(_on_interrupt)
        if not callbacks:
            log.warning("got %s: no cancellation token registered, exiting now", name)
            _flush_and_exit(130)
        log.warning("got %s: asking every thread to stop (press again to exit at once)", name)
        for callback in callbacks:  # outside the lock: a token's set() may log, or register more
            callback()


def _flush_and_exit(code: int) -> None:
    sampler = _sampler
    if sampler is not None:
        sampler.stop()
    sys.stdout.flush()
    os._exit(code)


def emit_result(**values: Any) -> dict[str, Any]:
    """Report the numbers the lesson proves: a ``result`` event (JSON mode) or a block of text."""
    from . import events

    sampler = _sampler
    if sampler is not None and sampler.snapshots:
        sampler.write_snapshot(force=True)  # the table the learner sees matches the result
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
    sampler = _sampler
    if sampler is not None:
        sampler.stop()


# atexit runs after the interpreter has joined every non-daemon thread:
# the last snapshot shows them done.
atexit.register(_final_snapshot)
