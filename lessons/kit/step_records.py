"""What step mode knows of each lesson thread: its record (held, blocked or running), the wait it is
in, and the place in the lesson's source where it stopped.

Every field here is guarded by the stepper's one lock (``Stepper.cv``) unless its comment says
otherwise; see :class:`.step_stepper.Stepper` for the invariant they keep.
"""

from __future__ import annotations

import linecache
import os
import threading
from collections.abc import Callable
from typing import Any

from . import traced

# A thread's status while stepping; BUSY: inside a kit operation that waits only briefly and
# untraced (Thread.start for the new thread's first steps), surely running whatever its frames say.
HELD, BLOCKED, RUNNING, BUSY = "held", "blocked", "running", "busy"
_REC = "_threadlab_step"  # the attribute holding a thread's Rec on its Thread object

# At a sync hold: () -> (can_run, why not, ident of the owner of the lock it waits for)
Check = Callable[[], tuple[bool, str | None, int | None]]


class Wait:
    """One thread's wait while stepping: what for, when it could end. Its turn is its place in
    the stepper's list of waits (oldest first)."""

    __slots__ = ("obj", "state", "ready", "deadline", "lock", "real", "on_deadline", "fired",
                 "attempting")

    def __init__(self, obj: str, state: str, ready: Callable[[], Any], deadline: float | None,
                 lock: traced.Lock | None = None, real: bool = False,
                 on_deadline: Callable[[], Any] | None = None) -> None:
        self.obj, self.state, self.ready, self.deadline = obj, state, ready, deadline
        self.lock = lock  # a traced lock waited for: an edge of the wait-for graph
        # real: the thread waits in the primitive itself (a Barrier), not in our loop; the monitor
        # calls on_deadline (once: fired) when its timeout passes on the step clock.
        self.real, self.on_deadline, self.fired = real, on_deadline, False
        self.attempting = False  # trying its non-blocking attempt right now (outside our lock)


class Rec:
    """What the stepper knows of one lesson thread; kept on its Thread object."""

    __slots__ = ("thread", "status", "mode", "grant", "at", "sync", "check", "wait")

    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread
        self.status = RUNNING
        self.mode = "line"  # where the next hold is: "line" or "sync"; the thread's own field
        self.grant: str | None = None  # set by whoever lets a held thread go: an until or "free"
        self.at: tuple[str, int] | None = None  # (file, line) where it is held or blocked
        self.sync: dict[str, str] | None = None  # the pending operation at a sync hold
        self.check: Check | None = None
        self.wait: Wait | None = None


def rec_of(thread: threading.Thread) -> Rec | None:
    """The thread's record, if step mode has seen it."""
    return vars(thread).get(_REC)


def rec_for(thread: threading.Thread) -> Rec:
    """The thread's record, made on first use (only the stepper's lock holder calls this)."""
    rec = vars(thread).get(_REC)
    if rec is None:
        rec = Rec(thread)
        setattr(thread, _REC, rec)
    return rec


def ready(wait: Wait) -> bool:
    try:
        return bool(wait.ready())
    except Exception:
        return True  # let the waiter find out for itself


def can_run(rec: Rec) -> tuple[bool, str | None, int | None]:
    if rec.check is None:
        return True, None, None
    try:
        return rec.check()
    except Exception:
        return True, None, None


def at(frame: Any) -> tuple[str, int] | None:
    return None if frame is None else (frame.f_code.co_filename, frame.f_lineno)


def place(where: tuple[str, int] | None) -> dict[str, Any]:
    """A hold's place as ``paused`` events give it: ``next`` (file:line), ``line``, ``source``."""
    if where is None:
        return {"next": None, "line": None, "source": ""}
    filename, line = where
    return {"next": f"{os.path.basename(filename)}:{line}", "line": line,
            "source": linecache.getline(filename, line).strip()}


def lookup(who: Any, threads: list[threading.Thread]) -> threading.Thread | None:
    """The thread a step names, by name first, else by ident."""
    for thread in threads:
        if thread.name == str(who):
            return thread
    for thread in threads:
        if str(thread.ident) == str(who):
            return thread
    return None


def name_of(ident: int | None) -> str:
    for thread in threading.enumerate():
        if thread.ident == ident:
            return thread.name
    return str(ident)
