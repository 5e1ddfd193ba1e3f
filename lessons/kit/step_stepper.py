"""The stepper: holds lesson threads at lines and sync points, lets them go one step at a time,
and watches, from its own thread, for the moments when nothing runs (see :mod:`.step`).
"""

from __future__ import annotations

import collections
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from . import events, frames, traced
from . import sampler as sampler_module
from . import step_survey as surveys
from .step_clock import StepClock
from .step_deadlock import DeadlockWatch
from .step_records import (
    BLOCKED,
    HELD,
    RUNNING,
    Check,
    Rec,
    Wait,
    at,
    lookup,
    place,
    ready,
    rec_for,
    rec_of,
)
from .step_schedule import UNTILS

_log = logging.getLogger("threadlab.kit")

SLICE = 0.01  # real seconds a blocked thread sleeps between looks at its wait while stepping
FREE_SLICE = 0.05  # the same after free, for waits that began while stepping
POLL = 0.005  # the monitor's look interval while some lesson thread runs

current: Stepper | None = None  # the process's one stepper, set once by step.start(), never unset


class Stepper:
    """Holds lesson threads and lets them go one step at a time (see :mod:`.step`).

    ``cv`` is the one Condition guarding the stepper's state: ``active``, ``_steps``,
    ``_schedule``, the clock, ``_waits``, ``started``, the frames reader's memory (``_looks``),
    the deadlock watch, the ``paused`` bookkeeping, every
    ``Rec``'s ``status``/``grant``/``at``/``sync``/``check``/``wait``, every ``Wait``, and the
    stepper's waiter lists on Conditions and arrival counts on Barriers (the wrappers'). Invariant:
    a lesson thread's ``Rec.status`` says what it is doing — ``held`` (inside :meth:`_hold`,
    waiting for its ``grant``), ``blocked`` (inside a wait registered in ``_waits``) or
    ``running`` — and it changes only under ``cv``, so one look under ``cv`` (a survey) sees a
    consistent picture: a thread that a step or a wake lets go counts as running from that moment,
    before it has even woken. Every change is followed by ``notify_all``: the held, the blocked and
    the monitor wait on ``cv`` alone. ``Rec.mode`` is the thread's own (written only by it, read by
    it without the lock).

    Lock order: ``cv`` first, then the event writer's lock (events are written under ``cv``, so
    ``step`` comes before what it causes); nothing that waits for ``cv`` holds that one. Nobody
    logs, calls a lesson's code or takes a primitive's own lock under ``cv`` (a non-blocking
    attempt runs outside it, marked ``attempting``), since lesson code may be held while it holds
    such a lock.
    """

    def __init__(self, lesson_file: str, plan: list[dict[str, Any]] | None) -> None:
        self.lesson_file = lesson_file
        self._lesson_files = {lesson_file, os.path.abspath(lesson_file),
                              os.path.realpath(lesson_file)}
        self._is_lesson: dict[str, bool] = {}  # code file name → is the lesson file (trace cache)
        self.cv = threading.Condition(threading.Lock())
        self.active = True  # read without the lock as a hint; decided under it
        self._steps: list[dict[str, Any]] = []
        self._schedule = collections.deque(plan) if plan is not None else None
        self._clock = StepClock()
        self._waits: list[Wait] = []  # every wait in progress, oldest first
        # Every lesson thread started while stepping (see step_survey.take: one on its way out)
        self.started: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
        self._looks = surveys.Looks(lesson_file)
        self._last_paused: dict[str, Any] | None = None
        self._last_steps = -1
        self._deadlocks = DeadlockWatch()
        self._local = self._local_trace  # one bound method, returned for every lesson frame
        self._monitor = threading.Thread(target=self._run, name="threadlab-stepper", daemon=True)

    def begin(self) -> None:
        self._monitor.start()  # before settrace: the monitor runs untraced
        threading.settrace(self._global_trace)

    def clock(self) -> float:
        with self.cv:
            return self._clock.read()

    def replaying(self) -> bool:
        with self.cv:
            return self._schedule is not None

    # --- holding ---

    def _global_trace(self, frame: Any, event: str, arg: Any) -> Any:
        """Every new frame of a traced thread: a local trace for lesson-file frames only."""
        name = frame.f_code.co_filename
        lesson = self._is_lesson.get(name)
        if lesson is None:
            lesson = self._is_lesson[name] = name in self._lesson_files or (
                os.path.realpath(name) in self._lesson_files)
        return self._local if lesson else None

    def _local_trace(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            self.line(frame)
        return self._local

    def line(self, frame: Any) -> None:
        """A lesson thread is about to run a line of the lesson: hold it if its step is over."""
        thread = threading.current_thread()
        rec = rec_of(thread)
        if rec is not None and rec.mode == "sync":
            return  # running to its next sync point
        if not self.active:
            sys.settrace(None)  # free: this thread runs untraced from now on
            return
        if sampler_module.is_kit_thread(thread) or thread is threading.main_thread():
            return
        with self.cv:
            if self.active:
                self._hold(rec_for(thread), (frame.f_code.co_filename, frame.f_lineno))

    def sync(self, op: str, obj: str, kind: str, check: Check | None = None) -> None:
        """Hold the calling lesson thread before ``op`` on ``obj`` (a sync point)."""
        thread = threading.current_thread()
        if not self.active or sampler_module.is_kit_thread(thread):
            return
        where = at(frames.lesson_frame(sys._getframe(1), self.lesson_file))
        with self.cv:
            if self.active:
                self._hold(rec_for(thread), where, {"op": op, "obj": obj, "kind": kind}, check)

    def _hold(self, rec: Rec, where: tuple[str, int] | None, sync: dict[str, str] | None = None,
              check: Check | None = None) -> None:
        # Caller holds cv. The thread's row in snapshots says "held" meanwhile (traced._waiting is
        # what the sampler reads; an entry of a wait around this hold is put back afterwards).
        ident = threading.get_ident()
        before = traced._waiting.get(ident)
        traced._waiting[ident] = (sync["obj"] if sync else "step", "held", time.monotonic())
        rec.status, rec.grant, rec.at, rec.sync, rec.check = HELD, None, where, sync, check
        self.cv.notify_all()
        try:
            while rec.grant is None:
                self.cv.wait()
        finally:
            if before is None:
                traced._waiting.pop(ident, None)
            else:
                traced._waiting[ident] = before
            rec.mode = rec.grant if rec.grant in UNTILS else "line"
            rec.status, rec.sync, rec.check = RUNNING, None, None
            self.cv.notify_all()

    # --- waiting ---

    def block(self, obj: str, state: str, ready_check: Callable[[], Any],
              attempt: Callable[[], bool] | None = None, timeout: float | None = None,
              lock: traced.Lock | None = None) -> bool:
        """Wait until ``ready_check()`` and then ``attempt()`` succeed (True), or ``timeout``
        seconds of the step clock pass (False).

        ``ready_check`` is a cheap check that takes no lock (the survey asks it too: a blocked
        thread whose wait is ready counts as running); ``attempt`` is the non-blocking try (None:
        ready is enough). Waiters try in the order they began, so who gets a freed lock does not
        depend on the operating system. Works after ``free`` too, on the real clock.
        """
        where = at(frames.lesson_frame(sys._getframe(1), self.lesson_file))
        with self.cv:
            wait = self._register(Wait(obj, state, ready_check, self._deadline(timeout), lock),
                                  where)
            try:
                while True:
                    if self._may_try(wait):
                        if attempt is None:
                            return True
                        wait.attempting = True
                        self.cv.release()  # a primitive's own lock is never taken under cv
                        try:
                            ok = attempt()
                        finally:
                            self.cv.acquire()
                            wait.attempting = False
                        if ok:
                            return True
                    if wait.deadline is not None and self._clock.read() >= wait.deadline:
                        return False
                    self.cv.wait(self._slice(wait.deadline))
            finally:
                self._unregister(wait)

    def begin_real(self, obj: str, state: str, ready_check: Callable[[], Any],
                   timeout: float | None, on_deadline: Callable[[], Any]) -> Wait:
        """Register a wait the thread makes in the primitive itself (a Barrier's); the monitor
        calls ``on_deadline`` when its timeout passes on the step clock."""
        where = at(frames.lesson_frame(sys._getframe(1), self.lesson_file))
        with self.cv:
            return self._register(Wait(obj, state, ready_check, self._deadline(timeout),
                                       real=True, on_deadline=on_deadline), where)

    def end_real(self, wait: Wait) -> None:
        with self.cv:
            self._unregister(wait)

    def _deadline(self, timeout: float | None) -> float | None:
        return None if timeout is None else self._clock.read() + max(0.0, timeout)

    def _register(self, wait: Wait, where: tuple[str, int] | None) -> Wait:
        rec = rec_for(threading.current_thread())
        rec.status, rec.wait, rec.at = BLOCKED, wait, where
        self._waits.append(wait)
        self.cv.notify_all()
        return wait

    def _unregister(self, wait: Wait) -> None:
        rec = rec_for(threading.current_thread())
        self._waits.remove(wait)
        rec.status, rec.wait = RUNNING, None
        rec.mode = "line"  # woken: held again at its next line
        self.cv.notify_all()

    def _may_try(self, wait: Wait) -> bool:
        if not ready(wait):
            return False
        if not self.active:
            return True
        for other in self._waits:  # oldest first
            if other is wait:
                return True
            if other.attempting or (not other.real and ready(other)):
                return False  # an older waiter that could go goes first
        return True

    def _slice(self, deadline: float | None) -> float:
        base = SLICE if self.active else FREE_SLICE
        if deadline is None:
            return base
        return max(0.0005, min(base, deadline - self._clock.read()))

    # --- commands and grants ---

    def command(self, request: dict[str, Any]) -> None:
        after: list[Callable[[], Any]] = []
        reason = None
        with self.cv:
            if request.get("cmd") == "free":
                if self.active:
                    self._free("command", after, "every thread runs freely from here")
                else:
                    reason = "the threads run freely already"
            elif not self.active:
                reason = "step mode is over: the threads run freely"
            elif self._schedule is not None:
                reason = "a schedule is being replayed"
            else:
                survey = self._survey(after)
                reason = self._try_grant(request.get("thread"), request.get("until", "line"),
                                         survey, "command")
        _run_all(after)
        if reason is not None:
            _log.error("%s refused: %s", request.get("cmd"), reason, extra={"refused": request})

    def free(self, source: str, why: str) -> None:
        after: list[Callable[[], Any]] = []
        with self.cv:
            if self.active:
                self._free(source, after, why)
        _run_all(after)

    def _free(self, source: str, after: list[Callable[[], Any]], why: str) -> None:
        self.active = False
        self._schedule = None
        self._steps.append({"free": True})
        events.emit("step", n=len(self._steps), free=True, source=source)
        threading.settrace(None)
        sampler_module.stepping = False
        for thread in threading.enumerate():
            rec = rec_of(thread)
            if rec is not None and rec.status == HELD and rec.grant is None:
                rec.grant = "free"
        self._clock.run(True)  # from here on the step clock is the real one
        self._deadlocks.end("free: the threads run on their own now", len(self._steps), after)
        self.cv.notify_all()
        after.append(lambda: _log.info("free: %s", why))

    def _try_grant(self, who: Any, until: Any, survey: surveys.Survey, source: str) -> str | None:
        """Grant a step (under ``cv``), or say why not."""
        if until not in UNTILS:
            return f"until must be 'line' or 'sync', not {until!r}"
        thread = lookup(who, survey.all)
        if thread is None:
            names = ", ".join(t.name for t in survey.all) or "none"
            return f"no lesson thread {who!r} (threads: {names})"
        name = thread.name
        rec = rec_of(thread)
        if rec is None or rec not in survey.can:
            return survey.not_held(thread)
        if not survey.quiescent:
            busy = ", ".join(t.name for t in survey.running)
            return f"{name} is held, but {busy} still running: step after the next paused event"
        can, why, _ = survey.can[rec]
        if not can:
            return f"{name} cannot run: {why}"
        self._steps.append({"thread": name, "until": until})
        rec.grant = until
        self._clock.run(True)
        events.emit("step", n=len(self._steps), thread=name, ident=thread.ident, until=until,
                    at=place(rec.at)["next"], source=source)
        self.cv.notify_all()
        return None

    # --- the monitor: quiescence, paused, deadlock, replay ---

    def _run(self) -> None:
        sys.settrace(None)
        after: list[Callable[[], Any]] = []
        while True:
            _run_all(after)
            with self.cv:
                after = []
                again, timeout = self._tick(after)
                if again is None:
                    return
                if not again and not after:
                    self.cv.wait(timeout)

    def _tick(self, after: list[Callable[[], Any]]) -> tuple[bool | None, float | None]:
        """One look (under ``cv``): (look again at once?, else how long to wait; None: stop)."""
        if not self.active:  # after free: only barrier timeouts are left to watch
            self._fire_real_deadlines(after)
            pending = any(w.real and w.deadline is not None and not w.fired for w in self._waits)
            return (False, POLL) if pending else (None, None)
        survey = self._survey(after)
        self._clock.run(bool(survey.running or survey.sleeping))
        if not survey.quiescent:
            self._deadlocks.watch_break(survey, len(self._steps), after)
            return False, POLL
        self._publish(survey)
        self._deadlocks.watch(survey, len(self._steps), after)
        if survey.stuck and survey.deadlines:
            jump = max(0.0, min(survey.deadlines) - self._clock.read())
            self._clock.jump(jump)
            after.append(lambda: _log.info(
                "nothing can move until a timeout: the step clock jumps %.3f s", jump))
            self.cv.notify_all()
            return True, None
        if self._schedule is not None and survey.strict:
            self._replay(survey, after)
            return True, None
        return False, (POLL if survey.sleeping or survey.untraced else None)

    def _fire_real_deadlines(self, after: list[Callable[[], Any]]) -> None:
        now = self._clock.read()
        for wait in self._waits:
            if wait.real and not wait.fired and wait.deadline is not None and now >= wait.deadline:
                wait.fired = True
                if wait.on_deadline is not None:
                    after.append(wait.on_deadline)  # outside cv: it takes the primitive's lock

    def _survey(self, after: list[Callable[[], Any]]) -> surveys.Survey:
        self._fire_real_deadlines(after)
        return surveys.take(self._clock.read(), self.started, self._looks)

    def _publish(self, survey: surveys.Survey) -> None:
        payload = survey.paused()
        if payload == self._last_paused and len(self._steps) == self._last_steps:
            return
        self._last_paused, self._last_steps = payload, len(self._steps)
        events.emit("paused", steps=len(self._steps), clock=round(self._clock.read(), 6),
                    **payload)

    def _replay(self, survey: surveys.Survey, after: list[Callable[[], Any]]) -> None:
        plan = self._schedule
        assert plan is not None
        if not plan:
            self._free("schedule", after, "the schedule is over: the threads run freely")
            return
        n = len(self._steps) + 1
        entry = plan.popleft()
        if entry.get("free"):
            self._free("schedule", after, "as the schedule says")
            return
        reason = self._try_grant(entry["thread"], entry["until"], survey, "schedule")
        if reason is not None:
            after.append(lambda: _log.error("schedule step %d refused: %s", n, reason,
                                            extra={"refused": entry}))
            self._free("schedule", after, "the schedule no longer fits this run")


def _run_all(actions: list[Callable[[], Any]]) -> None:
    for action in actions:
        try:
            action()
        except Exception:  # the stepper must never take a lesson down
            _log.exception("step mode: a deferred action failed")
