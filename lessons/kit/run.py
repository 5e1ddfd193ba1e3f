"""Run any plain Python program under the kit, watched like a lesson.

    python -m lessons.kit.run [--log-format text|json] [--no-trace] PROGRAM [ARGS...]

PROGRAM runs as ``python PROGRAM ARGS`` would run it (through :func:`.boot.main`: as ``__main__``,
``sys.argv`` = its absolute path and ARGS, ``sys.path[0]`` its folder, the same exit code and
traceback), with the kit around it: thread events, the sampler (``where`` points into PROGRAM), the
watchdog, stdin commands and the deadlock watch. The program needs no kit import and no argparse.

In JSON mode (how the dashboard runs it) the program's output becomes ``log`` events of the thread
that wrote it, while the kit's own events keep the real binary stdout (:func:`.events.write`):

- ``print``: ``sys.stdout`` is a :class:`PrintStream`; each whole line is one event (``logger``
  "print", ``level`` INFO). A thread's unfinished line waits for its newline, or for the exit.
- ``logging``: ``logging.StreamHandler.emit`` is wrapped. A handler writing to the console
  (stdout, stderr, or our print stream) formats the record with its own formatter, so ``msg`` is
  exactly the line the program chose to print, and the event is written instead of the line. Any
  logger, any format, any handler the program set up; nothing added to the root logger, so
  nothing is doubled or lost (a ``FileHandler`` still writes its file).

In text mode the output is left alone: the same lines as plain python.

Unless ``--no-trace``, the program's own ``threading.Lock``, ``RLock``, ``Condition``,
``Semaphore``, ``BoundedSemaphore``, ``Event``, ``Barrier`` and ``queue.Queue`` (``LifoQueue``,
``PriorityQueue``) are the kit's traced versions, named by what the program assigned them to (see
:mod:`.naming`). Only calls from the program's own files are traced; the standard library (a
``Queue``'s own lock, a thread pool's), site-packages and the kit get the plain originals.

The kit's helper threads (``threadlab-…``, daemons that block for the whole run) are hidden from
``threading.enumerate()`` and ``threading.active_count()``: the program sees the threads it would
see under plain python. The classic ending "join every thread but the main one" (or "wait until
``active_count() == 1``") would otherwise wait forever for the sampler or the command reader.
Hiding them, rather than making ``join`` on them return at once, keeps ``active_count`` true too,
and lets the kit itself still join its sampler at exit.
"""

from __future__ import annotations

import argparse
import atexit
import functools
import io
import logging
import os
import queue
import sys
import threading
from typing import Any

from . import boot, events, naming, traced
from .logsetup import log_event
from .sampler import is_kit_thread

USAGE = "usage: python -m lessons.kit.run [--log-format text|json] [--no-trace] PROGRAM [ARGS...]"
PRINT_LOGGER = "print"


# --- print ------------------------------------------------------------------------------------


class PrintStream(io.TextIOBase):
    """``sys.stdout`` in JSON mode: every line printed becomes a ``log`` event of its thread.

    ``print("a", "b")`` writes "a", " ", "b" and "\\n" in four calls, between which other threads
    print too; so text is collected per thread and a line goes out when its newline comes.
    ``_lock`` guards ``_partial`` (a thread's text after its last newline, by thread). Invariant:
    a thread's text is in ``_partial`` or already written as events, never both, never lost. The
    events are written after the lock is released: the event writer's lock is never taken under it.
    """

    def __init__(self, real: io.TextIOBase) -> None:
        super().__init__()
        self._real = real  # the original sys.stdout: for fileno() and encoding only
        self._lock = threading.Lock()
        self._partial: dict[threading.Thread, str] = {}

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._real, "encoding", "utf-8")

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        # A program writing to the descriptor itself bypasses us; its lines still reach the
        # server, which keeps lines that are not JSON as stdout events.
        return self._real.fileno()

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        thread = threading.current_thread()
        with self._lock:
            *lines, rest = (self._partial.pop(thread, "") + text).split("\n")
            if rest:
                self._partial[thread] = rest
        for line in lines:
            _print_event(thread, line)
        return len(text)

    def flush(self) -> None:
        """Nothing to do: whole lines are written at once, and a part line waits for its end."""

    def flush_partial(self) -> None:
        """Write every thread's unfinished line (at exit: nobody will finish them now)."""
        with self._lock:
            partial, self._partial = self._partial, {}
        for thread, line in partial.items():
            _print_event(thread, line)


def _print_event(thread: threading.Thread, line: str) -> None:
    events.emit(
        "log",
        level="INFO",
        logger=PRINT_LOGGER,
        thread=thread.name,
        thread_id=thread.ident,
        msg=line,
    )


# --- logging ----------------------------------------------------------------------------------


def _install_console_logging(console: tuple[Any, ...]) -> None:
    """Make console ``StreamHandler``s write ``log`` events (see the module docstring)."""
    original = logging.StreamHandler.emit

    @functools.wraps(original)
    def emit(self: logging.StreamHandler, record: logging.LogRecord) -> None:
        # Read once: for logging's last-resort handler, .stream is sys.stderr as it is now.
        stream = self.stream
        if not (stream is sys.stdout or stream is sys.stderr or stream in console):
            return original(self, record)  # a file, a socket, a StringIO: the program's own
        try:
            # The program's own format, traceback included, as the event's text.
            event = log_event(record, self.format(record))
            events.write(event)
        except RecursionError:  # as StreamHandler.emit: never swallowed
            raise
        except Exception:
            self.handleError(record)

    logging.StreamHandler.emit = emit  # type: ignore[method-assign]


# --- kit threads out of sight -------------------------------------------------------------------


def _hide_kit_threads() -> None:
    """``threading.enumerate``/``active_count`` without the kit's threads (module docstring)."""
    enumerate_all = threading.enumerate

    @functools.wraps(enumerate_all)
    def enumerate_program() -> list[threading.Thread]:
        return [t for t in enumerate_all() if not is_kit_thread(t)]

    def active_count() -> int:
        return len(enumerate_program())

    threading.enumerate = enumerate_program
    threading.active_count = active_count
    threading.activeCount = active_count  # type: ignore[attr-defined]


# --- traced primitives --------------------------------------------------------------------------


def _make_traced(traced_factory: Any, frame: Any, args: tuple, kwargs: dict) -> Any:
    name = naming.unique(naming.assigned_name(frame))
    return traced_factory(*args, name=name, **kwargs)


class _Swap(type):
    """The metaclass of a stand-in for a threading/queue class (``threading.Event`` → ``Event``).

    The stand-in subclasses the original. Called by the program's own code, it makes the traced
    version; called by anyone else, the plain original, as before. A class the program derives
    from it is the original with the program's additions, made as usual (untraced). ``isinstance``
    with the stand-in accepts originals and traced ones alike, as it would have.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        spec = cls.__dict__.get("_swap")
        if spec is None:  # a program's subclass of the stand-in
            return super().__call__(*args, **kwargs)
        original, traced_class = spec
        frame = sys._getframe(1)
        if naming.from_program(frame.f_code.co_filename):
            return _make_traced(traced_class, frame, args, kwargs)
        return original(*args, **kwargs)

    def __instancecheck__(cls, obj: Any) -> bool:
        spec = cls.__dict__.get("_swap")
        if spec is None:
            return super().__instancecheck__(obj)
        return isinstance(obj, spec)

    def __subclasscheck__(cls, sub: type) -> bool:
        spec = cls.__dict__.get("_swap")
        if spec is None:
            return super().__subclasscheck__(sub)
        return issubclass(sub, spec)


def _stand_in(original: type, traced_class: type) -> type:
    return _Swap(
        original.__name__,
        (original,),
        {"_swap": (original, traced_class), "__module__": original.__module__,
         "__qualname__": original.__qualname__, "__doc__": original.__doc__},
    )


def _function_stand_in(original: Any, traced_class: type) -> Any:
    """``threading.Lock``/``RLock`` are factory functions (3.11): so are their stand-ins."""

    @functools.wraps(original)
    def make(*args: Any, **kwargs: Any) -> Any:
        frame = sys._getframe(1)
        if naming.from_program(frame.f_code.co_filename):
            return _make_traced(traced_class, frame, args, kwargs)
        return original(*args, **kwargs)

    return make


def install_tracing() -> None:
    """Replace the program's primitives with traced ones (see the module docstring).

    Done once, by the main thread, before the program's first line: one writer, no lock needed.
    Module attributes are replaced, so ``from threading import Lock`` in the program (run later)
    gets the stand-in, and threading's and queue's own ``Lock()`` calls go through it too (and get
    the original back, being stdlib code).
    """
    for module, name, traced_class in (
        (threading, "Lock", traced.Lock),
        (threading, "RLock", traced.RLock),
    ):
        original = getattr(module, name)
        if isinstance(original, type):  # a class on a newer Python
            setattr(module, name, _stand_in(original, traced_class))
        else:
            setattr(module, name, _function_stand_in(original, traced_class))
    for module, name, traced_class in (
        (threading, "Condition", traced.Condition),
        (threading, "Semaphore", traced.Semaphore),
        (threading, "BoundedSemaphore", traced.BoundedSemaphore),
        (threading, "Event", traced.Event),
        (threading, "Barrier", traced.Barrier),
        (queue, "Queue", traced.Queue),
        (queue, "LifoQueue", traced.LifoQueue),
        (queue, "PriorityQueue", traced.PriorityQueue),
    ):
        setattr(module, name, _stand_in(getattr(module, name), traced_class))


# --- main -------------------------------------------------------------------------------------


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Our options come before PROGRAM; everything from PROGRAM on is the program's."""
    options = argparse.Namespace(log_format="text", trace=True, verbose=False)
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            print(USAGE, file=sys.stderr)
            raise SystemExit(0)
        if arg == "--no-trace":
            options.trace = False
        elif arg == "--log-format" and i + 1 < len(argv):
            i += 1
            options.log_format = argv[i]
        elif arg.startswith("--log-format="):
            options.log_format = arg.partition("=")[2]
        elif arg == "--":
            i += 1
            break
        else:
            break
        i += 1
    if options.log_format not in ("text", "json") or i >= len(argv):
        print(USAGE, file=sys.stderr)
        raise SystemExit(2)
    return options, argv[i:]


def main(argv: list[str]) -> None:
    options, target = _parse(argv)
    program = os.path.abspath(target[0])
    if not os.path.exists(program):
        boot.main(target)  # python's own message and exit code (2), from the one place
    import lessons.kit as kit

    # In JSON mode this points the event writer at the real binary stdout, before it is replaced
    # below: the kit's own lines never pass through the print stream.
    kit.setup(options, main_file=program, own_logging=False)
    if options.log_format == "json":
        real_stdout = sys.stdout
        printed = PrintStream(real_stdout)
        sys.stdout = printed
        _install_console_logging((real_stdout, sys.__stdout__, sys.__stderr__, printed))
        # Registered after the kit's final snapshot (atexit runs last-registered first): the
        # unfinished lines go out before the last table.
        atexit.register(printed.flush_partial)
    _hide_kit_threads()
    if options.trace:
        install_tracing()
    # kit.setup asked Linux for SIGHUP at the server's death, with a handler that kills our whole
    # process group (see .control). boot.main's step 1 would ask for SIGKILL again, which ends this
    # process only: the program's children would outlive the server. So it is skipped here.
    boot.main(target, watched=bool(os.environ.get("THREADLAB_PARENT_FD")))


if __name__ == "__main__":
    main(sys.argv[1:])
