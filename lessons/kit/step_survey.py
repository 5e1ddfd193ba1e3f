"""Step mode's survey: every lesson thread at one instant, sorted by what it is doing, and the
``paused`` event's picture of it.

A thread the stepper holds a record of says itself what it does (held, blocked in a wait it
registered, busy); any other is read from its frames (:mod:`.frames`, the one reader of those):
running, or, seen so for ``SETTLE`` seconds, asleep or in a wait the kit does not trace.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from . import frames
from . import sampler as sampler_module
from .step_records import BLOCKED, BUSY, HELD, Rec, at, can_run, place, ready, rec_of

SETTLE = 0.02  # an untraced wait or a sleep must look the same this long to count as one
STILL_NS = 100_000  # ...and use less CPU than this meanwhile (a thread that loops does more)
_KIT_DIR = os.path.dirname(__file__)


class Survey:
    """Every lesson thread at one instant, sorted by what it is doing (built under the lock)."""

    def __init__(self) -> None:
        self.all: list[threading.Thread] = []
        self.held: list[Rec] = []
        self.can: dict[Rec, tuple[bool, str | None, int | None]] = {}
        self.blocked: list[Rec] = []
        self.untraced: list[tuple[threading.Thread, str, str, tuple[str, int] | None]] = []
        self.sleeping: list[threading.Thread] = []
        self.running: list[threading.Thread] = []
        self.deadlines: list[float] = []

    @property
    def quiescent(self) -> bool:
        return not self.running

    @property
    def strict(self) -> bool:
        """Quiescent with no thread asleep: nothing will change until a step."""
        return not self.running and not self.sleeping

    @property
    def stuck(self) -> bool:
        """Nothing can move: no held thread can run, none runs or sleeps, some wait."""
        return (self.strict and bool(self.held or self.blocked or self.untraced)
                and not any(can for can, _, _ in self.can.values()))

    def not_held(self, thread: threading.Thread) -> str:
        """Why a step for ``thread``, which is not held, is refused: what it is doing instead."""
        name, rec = thread.name, rec_of(thread)
        if rec is not None and rec in self.blocked and rec.wait is not None:
            return f"{name} is not held: it waits for {rec.wait.obj}"
        for other, state, detail, _ in self.untraced:
            if other is thread:
                return f"{name} is not held: it waits in {detail or state}"
        if thread in self.sleeping:
            return f"{name} is not held: it is sleeping"
        return f"{name} is not held: it is running"

    def paused(self) -> dict[str, Any]:
        """The ``paused`` event's fields but ``steps`` and ``clock`` (see :mod:`.step`)."""
        threads = []
        for rec in self.held:
            can, why, _ = self.can[rec]
            threads.append({"name": rec.thread.name, "ident": rec.thread.ident, **place(rec.at),
                            "sync": rec.sync, "can_run": can, "why": why})
        blocked = []
        for rec in self.blocked:
            wait = rec.wait
            assert wait is not None
            blocked.append({"name": rec.thread.name, "ident": rec.thread.ident,
                            "waiting_for": wait.obj, "state": wait.state, **place(rec.at),
                            "timeout_at": None if wait.deadline is None
                            else round(wait.deadline, 6), "untraced": False})
        for thread, state, detail, where in self.untraced:
            blocked.append({"name": thread.name, "ident": thread.ident,
                            "waiting_for": detail or None, "state": state, **place(where),
                            "timeout_at": None, "untraced": True})
        return {"threads": threads, "blocked": blocked,
                "running": [thread.name for thread in self.sleeping],
                "stuck": self.stuck and not self.deadlines}


class Looks:
    """The frames reader's memory: what each unrecorded thread looked like when first seen so.

    Used under the stepper's lock only (a survey is taken there).
    """

    def __init__(self, lesson_file: str) -> None:
        self.lesson_file = lesson_file
        # ident → (frame key, first seen, CPU ns then) of a thread that looks asleep or waiting
        self._seen: dict[int, tuple[Any, float, int | None]] = {}

    def classify(self, candidates: list[threading.Thread], survey: Survey) -> None:
        """Threads we hold no record of: running, or (seen so for SETTLE s) asleep or in a wait
        the kit does not trace, read from their frames."""
        current = frames.current_frames()
        now = time.monotonic()
        seen = {}
        for thread in candidates:
            frame = current.get(thread.ident)
            state, detail = "running", ""
            if frame is not None and not _ours(frame.f_code.co_filename):  # ours: on its way in
                state, detail = frames.classify(frame)
            if state in ("running", "done"):
                survey.running.append(thread)
                continue
            # The same place is no proof of a wait: a loop around time.sleep(0) is found there
            # on every look (it lets go of the GIL right there). The kernel's count of the
            # thread's CPU time is: it stays put only for a thread that really waits.
            key = (*frames.position(frame), state)
            cpu = _cpu_ns(thread)
            first = self._seen.get(thread.ident)
            if first is None or first[0] != key or (
                    cpu is not None and first[2] is not None and cpu - first[2] > STILL_NS):
                first = (key, now, cpu)
            seen[thread.ident] = first
            if now - first[1] < SETTLE or _runnable(thread):
                survey.running.append(thread)
            elif state == "sleeping":
                survey.sleeping.append(thread)
            else:
                survey.untraced.append((thread, state, detail,
                                        at(frames.lesson_frame(frame, self.lesson_file))))
        self._seen = seen


def take(now: float, started: Iterable[threading.Thread], looks: Looks) -> Survey:
    """Survey every lesson thread (caller holds the stepper's lock); ``now``: the step clock."""
    survey = Survey()
    candidates = []
    listed = threading.enumerate()
    # A thread leaves threading.enumerate() before it is done (is_alive() stays True until its
    # C-level end): counted as running in between, or its joiner would look blocked with nobody
    # left to run.
    ending = set(started).difference(listed)
    survey.running.extend(thread for thread in ending if thread.is_alive())
    for thread in listed:
        if not thread.is_alive():
            # Listed but not alive: started, not yet running (threading's "limbo"). Whoever
            # called its start() waits for it in an Event, which would look like a wait nobody
            # can end; counted as running, as it soon is. Kit threads too: a slow start of the
            # sampler once made kit.setup() look stuck, a false deadlock at the first hold.
            if not thread._started.is_set():  # noqa: SLF001 - no public "starting" state
                survey.running.append(thread)
            continue
        if sampler_module.is_kit_thread(thread):
            continue
        survey.all.append(thread)
        rec = rec_of(thread)
        if rec is not None and rec.status == BUSY:
            survey.running.append(thread)
            continue
        if rec is not None and rec.status == HELD:
            if rec.grant is None:
                survey.held.append(rec)
                survey.can[rec] = can_run(rec)
            else:
                survey.running.append(thread)  # let go, not awake yet
            continue
        wait = rec.wait if rec is not None and rec.status == BLOCKED else None
        if wait is not None:
            due = wait.deadline is not None and now >= wait.deadline
            if due or wait.attempting or ready(wait):
                survey.running.append(thread)  # about to wake
            else:
                survey.blocked.append(rec)
                if wait.deadline is not None:
                    survey.deadlines.append(wait.deadline)
            continue
        candidates.append(thread)
    if candidates:
        looks.classify(candidates, survey)
    return survey


def _ours(filename: str) -> bool:
    """A frame of step mode's own code: a thread there is on its way into a hold or a wait."""
    return (os.path.dirname(filename) == _KIT_DIR
            and os.path.basename(filename).startswith("step"))


def _cpu_ns(thread: threading.Thread) -> int | None:
    """Nanoseconds of CPU the thread has had (Linux ``schedstat``), or None."""
    try:
        with open(f"/proc/self/task/{thread.native_id}/schedstat", "rb") as stat:
            return int(stat.read().split()[0])
    except (OSError, IndexError, ValueError):
        return None


def _runnable(thread: threading.Thread) -> bool:
    """True if the kernel says the thread runs or waits only for a CPU (Linux; else False).

    Its frames look the same then as in a wait: woken, but not scheduled yet."""
    try:
        with open(f"/proc/self/task/{thread.native_id}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] == b"R"
    except (OSError, IndexError):
        return False
