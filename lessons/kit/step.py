"""Step mode: the learner is the scheduler of a real Python program's threads.

Every lesson thread waits ("is held") before each line of the lesson's own code and before each
traced primitive operation that can block or wake another thread, until a step lets it go. A step
for one thread, then one for another, makes any interleaving happen on purpose: a lost update, a
deadlock, a missed notification. The steps taken are the run's *schedule*; replaying it gives the
same interleaving and the same result. This is the contract the server is built against.

Turning it on
    ``THREADLAB_STEP=1`` in the environment when ``kit.setup()`` runs (the server sets it; argv
    stays the lesson's own), or ``THREADLAB_SCHEDULE`` (below). Off, this module is not even
    imported: no trace function, no patched method, nothing. On, it needs a way to be told what
    to do: stdin commands (JSON mode, stdin not a terminal) or a schedule; with neither it logs a
    warning and stays off.

Where threads are held
    - *Lines*: every thread but the main one, before each line of the lesson file (the ``__main__``
      module's file, or the program ``python -m lessons.kit.run`` runs), through a trace function
      (``threading.settrace``) that asks for line events in lesson-file frames only. The main
      thread gets no trace function and is held at sync points only, so the learner does not step
      through argument parsing; a step of the main thread runs it to its next sync point whatever
      ``until`` says.
    - *Sync points*, every lesson thread (not the kit's ``threadlab-…`` threads): before a traced
      ``Lock``/``RLock`` acquire (also ``with``, and a ``Condition``'s re-acquire after its wait),
      ``Condition.wait``/``wait_for``/``notify``/``notify_all``, ``Semaphore`` acquire and
      release, ``Event.set``/``wait``, ``Barrier.wait``, ``Queue.put``/``get``/``join``, and
      ``Thread.start``/``join`` of lesson threads. A ``Lock`` release is no sync point: in step
      mode nobody waits inside an acquire of a lock that is held (see ``can_run``).

Commands (stdin, one JSON object a line, read by ``threadlab-commands``)
    - ``{"cmd": "step", "thread": "Worker-1" | 1403..., "until": "line" | "sync"}`` (``until``
      defaults to ``line``): that held thread runs to its next hold: ``line``, the next line or
      sync point; ``sync``, through lines until its next sync point. Granted only when the run is
      quiescent (below). Refused, changing nothing, with an ``error`` ``log`` event saying why
      (its ``refused`` field is the command) when the thread is unknown, not held, cannot run, or
      other threads are still running.
    - ``{"cmd": "free"}``: every thread is let go and nothing is held for the rest of the run.
      SIGINT (Stop) frees the threads too, so the lesson can wind down as it would, and so does
      the end of stdin (nobody can send a step any more) unless a schedule is being replayed.

Events
    - ``paused``: written each time the run is quiescent (no lesson thread runs Python code: each
      is held, blocked in a wait, or sleeping) and what is held or blocked differs from the last
      ``paused``, or a step was taken since. ``steps`` (how many steps so far), ``clock`` (the step
      clock, below), ``stuck`` (no thread can ever move without ``free``), ``threads``: the held
      threads, each ``{name, ident, next: "file.py:LINE", line, source: the line's text stripped,
      sync: {"op", "obj", "kind"} of the pending operation or null, can_run, why}`` (``why``: text
      when it cannot run, e.g. ``"waits for counter-lock, held by Worker-2"``), ``blocked``:
      threads inside a wait, each ``{name, ident, waiting_for, state, next, line, source,
      timeout_at, untraced}`` (``timeout_at``: the step clock's reading at which the wait times
      out, or null; ``untraced``: a wait the kit only read from the thread's frames, such as a
      plain ``threading`` lock or a thread pool's queue), and ``running``: names of lesson threads
      neither held nor blocked (in ``time.sleep``). ``sync`` ``op`` is one of acquire, wait,
      wait_for, notify, notify_all, release, set, put, get, join, start; ``kind`` one of lock,
      rlock, condition, semaphore, event, barrier, queue, thread.
    - ``step``: every step granted: ``{n, thread, ident, until, at: "file.py:LINE", source}``
      (``source``: ``command`` or ``schedule``), and one for ``free`` as ``{n, free: true,
      source}``. The list of these (``{"thread", "until"}`` or ``{"free": true}``) is the run's
      schedule; it is written before any event the step causes.
    - ``deadlock``: at the first quiescent moment when held or blocked threads wait for each
      other's traced locks in a cycle (a held thread waits for the lock its pending acquire
      wants), or when nothing can move at all and no timeout is pending: at once, not after the
      sampler's 300 ms. The sampler's shape: ``op`` (``formed``, then ``broken`` when it ends, also
      by ``free``), ``since``, ``cycle`` (``{thread, holds, waits_for}``: the cycle, or every stuck
      thread when there is no cycle), with ``step: true``, ``stall`` (no cycle: nothing can move)
      and ``steps``. While step mode lasts the sampler's own watch stands aside; after ``free`` it
      reports a deadlock that is still there in its usual way.
    - In ``threads`` snapshots a held thread's ``state`` is ``held`` (``waiting_for``: the pending
      operation's object, or ``step`` at a line).

can_run
    A thread held before a blocking acquire without a timeout of a traced ``Lock``/``RLock`` that
    another thread holds (or that it holds itself, for a ``Lock``), or of a ``Semaphore`` with no
    room, cannot run: stepping it would only block it. Everything else can: a wait that blocks
    (``Condition``, ``Event``, an empty ``Queue``, a ``join``) is a move the learner may make, and a
    timed or non-blocking acquire gives up by itself.

Replay
    ``THREADLAB_SCHEDULE``: a JSON list of ``{"thread": name, "until": "line" | "sync"}`` or
    ``{"free": true}``. The stepper grants them itself, in order, each when the run is quiescent
    and no thread sleeps, matching threads by name; after the list (at the next quiescent moment)
    the threads run freely. A step that cannot be granted is logged as an error and frees the
    run. Commands other than ``free`` are refused while replaying.

Why the interleaving is the same every time
    A step is granted only when no lesson thread runs, and only the stepped thread runs then, to
    its next hold. A blocked thread is woken by the stepper, not by the operating system: its wait
    is a loop on this module's one Condition (see :class:`Stepper`) that retries a non-blocking
    attempt when the wait's ``ready`` check says it could succeed, oldest waiter first. A woken
    thread is held again at its next line. So which thread moves, and what it sees, depends only
    on the schedule. (Left outside this promise: ``time.sleep`` runs on the real clock, and waits
    the kit does not trace are read from frames; see Limits.)

Timeouts and the step clock
    :func:`clock` advances only while some lesson thread runs (or sleeps), so no timeout fires
    because of a pause. Every traced wait's timeout (``acquire(timeout=)``, ``Condition.wait``,
    ``wait_for``, ``Event.wait``, ``Queue`` get/put, ``Barrier``, ``Thread.join``) counts on it.
    When nothing can move except by a timeout running out, the clock jumps to the earliest one
    (logged): that timeout fires as it would have in a free run, and no run hangs on a pause that
    nobody can end. The server's run time limit should count the ``clock`` of ``paused`` events
    (running time) in step mode; the kit's own watchdog only watches for the server's death.

Limits
    A lesson's own ``sys.settrace``/``threading.settrace`` replaces ours (and a debugger's is
    replaced by ours). Threads started before ``kit.setup()`` are not line-held. Waits on plain
    ``threading``/``queue`` objects and ``time.sleep`` time out on the real clock, and a thread in
    one is seen only from its frames (two looks 20 ms apart; not at all on a free-threaded build,
    where it counts as running): replaying over them is as exact as their timing. A traced
    ``Condition`` must be built on a traced lock. Lesson code that runs inside a library's lock
    (a ``__str__`` in a log call's arguments, a ``__lt__`` in a ``PriorityQueue``) is held there
    with that lock held.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import linecache
import logging
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from . import events, frames, traced
from . import sampler as sampler_module

_log = logging.getLogger("threadlab.kit")

SLICE = 0.01  # real seconds a blocked thread sleeps between looks at its wait while stepping
FREE_SLICE = 0.05  # the same after free, for waits that began while stepping
POLL = 0.005  # the monitor's look interval while some lesson thread runs
SETTLE = 0.02  # an untraced wait or a sleep must look the same this long to count as one
STILL_NS = 100_000  # ...and use less CPU than this meanwhile (a thread that loops does more)
BIG_TIMEOUT = 1e6  # a "forever" real timeout for a barrier whose timeout the step clock enforces
UNTILS = ("line", "sync")

# A thread's status while stepping; BUSY: inside a kit operation that waits only briefly and
# untraced (Thread.start for the new thread's first steps), surely running whatever its frames say.
HELD, BLOCKED, RUNNING, BUSY = "held", "blocked", "running", "busy"
_REC = "_threadlab_step"  # the attribute holding a thread's _Rec on its Thread object
_WAITERS = "_threadlab_waiters"  # a traced Condition's stepper waiters (a deque), oldest first
_ARRIVALS = "_threadlab_arrivals"  # a traced Barrier's [arrived, generation] while stepping
_WRAPS = "__threadlab_wraps__"  # as sampler/traced: the original a wrapper wraps

_stepper: Stepper | None = None  # set once by start(); never set back (free() ends the holding)


def clock() -> float:
    """The step clock's reading: seconds that lesson threads have run (only differences count).

    Without step mode: ``time.monotonic()``.
    """
    stepper = _stepper
    return stepper.clock() if stepper is not None else time.monotonic()


def active() -> bool:
    """True while step mode holds threads (before ``free``)."""
    stepper = _stepper
    return stepper is not None and stepper.active


def command(request: dict[str, Any]) -> None:
    """Carry out a ``step`` or ``free`` command from stdin (``threadlab-commands`` calls this)."""
    stepper = _stepper
    if stepper is None:
        _log.error("%s refused: step mode is off (THREADLAB_STEP=1 turns it on)",
                   request.get("cmd"), extra={"refused": request})
        return
    stepper.command(request)


def on_interrupt() -> None:
    """SIGINT (Stop): let every thread go, so the lesson winds down as it would."""
    stepper = _stepper
    if stepper is not None:
        stepper.free("interrupt", "interrupted: every thread runs freely to wind down")


def on_commands_closed() -> None:
    """Stdin ended: nobody can send a step any more, so let every thread go (not while a
    schedule is replayed: that needs no commands)."""
    stepper = _stepper
    if stepper is not None and stepper.replaying() is False:
        stepper.free("stdin", "stdin closed: nobody can send a step any more")


def schedule() -> list[dict[str, Any]]:
    """The steps taken so far (``{"thread", "until"}`` or ``{"free": true}``)."""
    stepper = _stepper
    return stepper.steps() if stepper is not None else []


def start(main_file: str | None, commands: bool) -> Stepper | None:
    """Turn step mode on if the environment asks for it (``kit.setup`` calls this; see above)."""
    global _stepper
    if _stepper is not None:  # setup() again: one stepper per process; re-wrap what setup replaced
        _install_patches()
        return _stepper
    plan = None
    raw = os.environ.get("THREADLAB_SCHEDULE")
    if raw:
        try:
            plan = parse_schedule(raw)
        except ValueError as exc:
            _log.error("THREADLAB_SCHEDULE ignored: %s", exc)
    if plan is None and not commands:
        _log.warning("step mode needs step commands on stdin (JSON mode) or THREADLAB_SCHEDULE:"
                     " the threads run freely")
        return None
    lesson_file = main_file or getattr(sys.modules.get("__main__"), "__file__", None)
    if not lesson_file:
        _log.warning("step mode: no lesson file to step through: the threads run freely")
        return None
    stepper = Stepper(lesson_file, plan)
    _stepper = stepper
    _install_patches()
    sampler_module.stepping = True
    stepper.begin()
    _log.info("step mode: each lesson thread waits for a step (%s)",
              f"replaying {len(plan)} steps" if plan is not None else "step commands on stdin")
    return stepper


def parse_schedule(raw: str) -> list[dict[str, Any]]:
    """A schedule from JSON, checked: ``{"thread": name, "until": ...}`` or ``{"free": true}``."""
    try:
        steps = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(steps, list):
        raise ValueError("not a JSON list")
    plan = []
    for n, entry in enumerate(steps, 1):
        if isinstance(entry, dict) and entry.get("free") is True:
            plan.append({"free": True})
        elif isinstance(entry, dict) and isinstance(entry.get("thread"), str):
            until = entry.get("until", "line")
            if until not in UNTILS:
                raise ValueError(f"step {n}: until must be 'line' or 'sync', not {until!r}")
            plan.append({"thread": entry["thread"], "until": until})
        else:
            raise ValueError(f"step {n} is neither {{'thread': ...}} nor {{'free': true}}")
    return plan


# --- the stepper ------------------------------------------------------------------------------


class _Wait:
    """One thread's wait while stepping: what for, when it could end, and its turn."""

    __slots__ = ("obj", "state", "ready", "deadline", "seq", "lock", "real", "on_deadline",
                 "fired", "attempting")

    def __init__(self, obj: str, state: str, ready: Callable[[], Any], deadline: float | None,
                 seq: int, lock: traced.Lock | None = None, real: bool = False,
                 on_deadline: Callable[[], Any] | None = None) -> None:
        self.obj, self.state, self.ready, self.deadline, self.seq = obj, state, ready, deadline, seq
        self.lock = lock  # a traced lock waited for: an edge of the wait-for graph
        # real: the thread waits in the primitive itself (a Barrier), not in our loop; the monitor
        # calls on_deadline (once: fired) when its timeout passes on the step clock.
        self.real, self.on_deadline, self.fired = real, on_deadline, False
        self.attempting = False  # trying its non-blocking attempt right now (outside our lock)


class _Rec:
    """What the stepper knows of one lesson thread; kept on its Thread object (``_REC``)."""

    __slots__ = ("thread", "status", "mode", "grant", "at", "sync", "check", "wait")

    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread
        self.status = RUNNING
        self.mode = "line"  # where the next hold is: "line" or "sync"; the thread's own field
        self.grant: str | None = None  # set by whoever lets a held thread go: an until or "free"
        self.at: tuple[str, int] | None = None  # (file, line) where it is held or blocked
        self.sync: dict[str, str] | None = None  # the pending operation at a sync hold
        # At a sync hold: () -> (can_run, why, ident of the owner of the lock it waits for)
        self.check: Callable[[], tuple[bool, str | None, int | None]] | None = None
        self.wait: _Wait | None = None


class _Survey:
    """Every lesson thread at one instant, sorted by what it is doing (built under the lock)."""

    def __init__(self) -> None:
        self.all: list[threading.Thread] = []
        self.held: list[_Rec] = []
        self.can: dict[_Rec, tuple[bool, str | None, int | None]] = {}
        self.blocked: list[_Rec] = []
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


class _Deadlock:
    __slots__ = ("key", "cycle", "idents", "since", "epoch", "stall")

    def __init__(self, key: Any, cycle: list[dict[str, Any]], idents: list[int],
                 stall: bool) -> None:
        self.key, self.cycle, self.idents, self.stall = key, cycle, idents, stall
        self.since, self.epoch = time.monotonic(), time.time()


class Stepper:
    """Holds lesson threads and lets them go one step at a time (see the module docstring).

    ``_cv`` is the one Condition guarding the stepper's state: ``active``, ``_steps``,
    ``_schedule``, the clock, ``_waits``, the deadlock and ``paused`` bookkeeping, every
    ``_Rec``'s ``status``/``grant``/``at``/``sync``/``check``/``wait``, every ``_Wait``, and the
    stepper's waiter lists on Conditions and arrival counts on Barriers. Invariant: a lesson
    thread's ``_Rec.status`` says what it is doing — ``held`` (inside :meth:`_hold`, waiting for
    its ``grant``), ``blocked`` (inside a wait registered in ``_waits``) or ``running`` — and it
    changes only under ``_cv``, so one look under ``_cv`` (:meth:`_survey`) sees a consistent
    picture: a thread that a step or a wake lets go counts as running from that moment, before it
    has even woken. Every change is followed by ``notify_all``: the held, the blocked and the
    monitor wait on ``_cv`` alone. ``_Rec.mode`` is the thread's own (written only by it, read by
    it without the lock).

    Lock order: ``_cv`` first, then the event writer's lock (events are written under ``_cv``, so
    ``step`` comes before what it causes); nothing that waits for ``_cv`` holds that one. Nobody
    logs, calls a lesson's code or takes a primitive's own lock under ``_cv`` (a non-blocking
    attempt runs outside it, marked ``attempting``), since lesson code may be held while it holds
    such a lock.
    """

    def __init__(self, lesson_file: str, plan: list[dict[str, Any]] | None) -> None:
        self.lesson_file = lesson_file
        self._lesson_files = {lesson_file, os.path.abspath(lesson_file),
                              os.path.realpath(lesson_file)}
        self._is_lesson: dict[str, bool] = {}  # code file name → is the lesson file (trace cache)
        self._cv = threading.Condition(threading.Lock())
        self.active = True  # read without the lock as a hint; decided under it
        self._steps: list[dict[str, Any]] = []
        self._schedule = collections.deque(plan) if plan is not None else None
        self._clock_base = 0.0
        self._clock_since: float | None = None  # monotonic() when the clock last started
        self._seq = itertools.count()
        self._waits: list[_Wait] = []  # every wait in progress, oldest first
        # Every lesson thread started while stepping. A thread leaves threading.enumerate()
        # before it is done (is_alive() stays True until its C-level end): counted as running
        # in between, or its joiner would look blocked with nobody left to run.
        self._started: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
        # ident → (frame key, first seen, CPU ns then) of a thread that looks asleep or waiting
        self._seen: dict[int, tuple[Any, float, int | None]] = {}
        self._last_paused: dict[str, Any] | None = None
        self._last_steps = -1
        self._deadlock: _Deadlock | None = None
        self._local = self._local_trace  # one bound method, returned for every lesson frame
        self._monitor = threading.Thread(target=self._run, name="threadlab-stepper", daemon=True)

    def begin(self) -> None:
        self._monitor.start()  # before settrace: the monitor runs untraced
        threading.settrace(self._global_trace)

    # --- the clock ---

    def clock(self) -> float:
        with self._cv:
            return self._clock()

    def _clock(self) -> float:
        if self._clock_since is None:
            return self._clock_base
        return self._clock_base + time.monotonic() - self._clock_since

    def _run_clock(self, running: bool) -> None:
        if running and self._clock_since is None:
            self._clock_since = time.monotonic()
        elif not running and self._clock_since is not None:
            self._clock_base += time.monotonic() - self._clock_since
            self._clock_since = None

    def replaying(self) -> bool:
        with self._cv:
            return self._schedule is not None

    def steps(self) -> list[dict[str, Any]]:
        with self._cv:
            return [dict(step) for step in self._steps]

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
        rec = vars(thread).get(_REC)
        if rec is not None and rec.mode == "sync":
            return  # running to its next sync point
        if not self.active:
            sys.settrace(None)  # free: this thread runs untraced from now on
            return
        if sampler_module.is_kit_thread(thread) or thread is threading.main_thread():
            return
        with self._cv:
            if self.active:
                self._hold(self._rec(thread), (frame.f_code.co_filename, frame.f_lineno))

    def sync(self, op: str, obj: str, kind: str,
             check: Callable[[], tuple[bool, str | None, int | None]] | None = None) -> None:
        """Hold the calling lesson thread before ``op`` on ``obj`` (a sync point)."""
        thread = threading.current_thread()
        if not self.active or sampler_module.is_kit_thread(thread):
            return
        at = _at(frames.lesson_frame(sys._getframe(1), self.lesson_file))
        with self._cv:
            if self.active:
                self._hold(self._rec(thread), at, {"op": op, "obj": obj, "kind": kind}, check)

    def _rec(self, thread: threading.Thread) -> _Rec:
        rec = vars(thread).get(_REC)
        if rec is None:
            rec = _Rec(thread)
            setattr(thread, _REC, rec)
        return rec

    def _hold(self, rec: _Rec, at: tuple[str, int] | None, sync: dict[str, str] | None = None,
              check: Callable[[], tuple[bool, str | None, int | None]] | None = None) -> None:
        # Caller holds _cv. The thread's row in snapshots says "held" meanwhile (traced._waiting is
        # what the sampler reads; an entry of a wait around this hold is put back afterwards).
        ident = threading.get_ident()
        before = traced._waiting.get(ident)
        traced._waiting[ident] = (sync["obj"] if sync else "step", "held", time.monotonic())
        rec.status, rec.grant, rec.at, rec.sync, rec.check = HELD, None, at, sync, check
        self._cv.notify_all()
        try:
            while rec.grant is None:
                self._cv.wait()
        finally:
            if before is None:
                traced._waiting.pop(ident, None)
            else:
                traced._waiting[ident] = before
            rec.mode = rec.grant if rec.grant in UNTILS else "line"
            rec.status, rec.sync, rec.check = RUNNING, None, None
            self._cv.notify_all()

    # --- waiting ---

    def block(self, obj: str, state: str, ready: Callable[[], Any],
              attempt: Callable[[], bool] | None = None, timeout: float | None = None,
              lock: traced.Lock | None = None) -> bool:
        """Wait until ``ready()`` and then ``attempt()`` succeed (True), or ``timeout`` seconds of
        the step clock pass (False).

        ``ready`` is a cheap check that takes no lock (the survey asks it too: a blocked thread
        whose wait is ready counts as running); ``attempt`` is the non-blocking try (None: ready
        is enough). Waiters try in the order they began, so who gets a freed lock does not
        depend on the operating system. Works after ``free`` too, on the real clock.
        """
        thread = threading.current_thread()
        at = _at(frames.lesson_frame(sys._getframe(1), self.lesson_file))
        with self._cv:
            rec = self._rec(thread)
            deadline = None if timeout is None else self._clock() + max(0.0, timeout)
            wait = _Wait(obj, state, ready, deadline, next(self._seq), lock)
            rec.status, rec.wait, rec.at = BLOCKED, wait, at
            self._waits.append(wait)
            self._cv.notify_all()
            try:
                while True:
                    if self._may_try(wait):
                        if attempt is None:
                            return True
                        wait.attempting = True
                        self._cv.release()  # a primitive's own lock is never taken under _cv
                        try:
                            ok = attempt()
                        finally:
                            self._cv.acquire()
                            wait.attempting = False
                        if ok:
                            return True
                    if deadline is not None and self._clock() >= deadline:
                        return False
                    self._cv.wait(self._slice(deadline))
            finally:
                self._waits.remove(wait)
                rec.status, rec.wait = RUNNING, None
                rec.mode = "line"  # woken: held again at its next line
                self._cv.notify_all()

    def _may_try(self, wait: _Wait) -> bool:
        if not _ready(wait):
            return False
        if not self.active:
            return True
        for other in self._waits:  # oldest first
            if other is wait:
                return True
            if other.attempting or (not other.real and _ready(other)):
                return False  # an older waiter that could go goes first
        return True

    def _slice(self, deadline: float | None) -> float:
        base = SLICE if self.active else FREE_SLICE
        if deadline is None:
            return base
        return max(0.0005, min(base, deadline - self._clock()))

    def begin_real(self, obj: str, state: str, ready: Callable[[], Any], timeout: float | None,
                   on_deadline: Callable[[], Any]) -> _Wait:
        """Register a wait the thread makes in the primitive itself (see :func:`_barrier_wait`)."""
        thread = threading.current_thread()
        at = _at(frames.lesson_frame(sys._getframe(1), self.lesson_file))
        with self._cv:
            rec = self._rec(thread)
            deadline = None if timeout is None else self._clock() + max(0.0, timeout)
            wait = _Wait(obj, state, ready, deadline, next(self._seq), real=True,
                         on_deadline=on_deadline)
            rec.status, rec.wait, rec.at = BLOCKED, wait, at
            self._waits.append(wait)
            self._cv.notify_all()
        return wait

    def end_real(self, wait: _Wait) -> None:
        with self._cv:
            rec = self._rec(threading.current_thread())
            self._waits.remove(wait)
            rec.status, rec.wait, rec.mode = RUNNING, None, "line"
            self._cv.notify_all()

    def add_waiter(self, cond: traced.Condition) -> list[bool]:
        """A place in ``cond``'s queue of stepper waiters; ``[True]`` once notified."""
        waiter = [False]
        with self._cv:
            vars(cond).setdefault(_WAITERS, collections.deque()).append(waiter)
        return waiter

    def drop_waiter(self, cond: traced.Condition, waiter: list[bool]) -> None:
        with self._cv:
            waiters = vars(cond).get(_WAITERS)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)

    def wake_waiters(self, cond: traced.Condition, n: int | None) -> int | None:
        """Notify up to ``n`` (None: all) stepper waiters of ``cond``, oldest first, as
        ``threading.Condition`` does; returns how many notifications are left for its own."""
        with self._cv:
            waiters = vars(cond).get(_WAITERS)
            woken = 0
            while waiters and (n is None or woken < n):
                waiters.popleft()[0] = True
                woken += 1
            if woken:
                self._cv.notify_all()
        return None if n is None else n - woken

    # --- commands and grants ---

    def command(self, request: dict[str, Any]) -> None:
        after: list[Callable[[], Any]] = []
        reason = None
        with self._cv:
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
        with self._cv:
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
            rec = vars(thread).get(_REC)
            if rec is not None and rec.status == HELD and rec.grant is None:
                rec.grant = "free"
        self._run_clock(True)  # from here on the step clock is the real one
        if self._deadlock is not None:
            self._broken(self._deadlock, "free: the threads run on their own now", after)
        self._cv.notify_all()
        after.append(lambda: _log.info("free: %s", why))

    def _try_grant(self, who: Any, until: Any, survey: _Survey, source: str) -> str | None:
        """Grant a step (under ``_cv``), or say why not."""
        if until not in UNTILS:
            return f"until must be 'line' or 'sync', not {until!r}"
        thread = _lookup(who, survey.all)
        if thread is None:
            names = ", ".join(t.name for t in survey.all) or "none"
            return f"no lesson thread {who!r} (threads: {names})"
        name = thread.name
        rec = vars(thread).get(_REC)
        if rec is None or rec not in survey.can:
            if rec is not None and rec in survey.blocked and rec.wait is not None:
                return f"{name} is not held: it waits for {rec.wait.obj}"
            for other, state, detail, _ in survey.untraced:
                if other is thread:
                    return f"{name} is not held: it waits in {detail or state}"
            if thread in survey.sleeping:
                return f"{name} is not held: it is sleeping"
            return f"{name} is not held: it is running"
        if not survey.quiescent:
            busy = ", ".join(t.name for t in survey.running)
            return f"{name} is held, but {busy} still running: step after the next paused event"
        can, why, _ = survey.can[rec]
        if not can:
            return f"{name} cannot run: {why}"
        self._steps.append({"thread": name, "until": until})
        rec.grant = until
        self._run_clock(True)
        events.emit("step", n=len(self._steps), thread=name, ident=thread.ident, until=until,
                    at=_place(rec.at)["next"], source=source)
        self._cv.notify_all()
        return None

    # --- the monitor: quiescence, paused, deadlock, replay ---

    def _run(self) -> None:
        sys.settrace(None)
        after: list[Callable[[], Any]] = []
        while True:
            _run_all(after)
            with self._cv:
                after = []
                again, timeout = self._tick(after)
                if again is None:
                    return
                if not again and not after:
                    self._cv.wait(timeout)

    def _tick(self, after: list[Callable[[], Any]]) -> tuple[bool | None, float | None]:
        """One look (under ``_cv``): (look again at once?, else how long to wait; None: stop)."""
        if not self.active:  # after free: only barrier timeouts are left to watch
            self._fire_real_deadlines(after)
            pending = any(w.real and w.deadline is not None and not w.fired for w in self._waits)
            return (False, POLL) if pending else (None, None)
        survey = self._survey(after)
        self._run_clock(bool(survey.running or survey.sleeping))
        if not survey.quiescent:
            self._watch_break(survey, after)
            return False, POLL
        self._publish(survey)
        self._watch_deadlock(survey, after)
        if survey.stuck and survey.deadlines:
            jump = max(0.0, min(survey.deadlines) - self._clock())
            self._clock_base += jump
            after.append(lambda: _log.info(
                "nothing can move until a timeout: the step clock jumps %.3f s", jump))
            self._cv.notify_all()
            return True, None
        if self._schedule is not None and survey.strict:
            self._replay(survey, after)
            return True, None
        return False, (POLL if survey.sleeping or survey.untraced else None)

    def _fire_real_deadlines(self, after: list[Callable[[], Any]]) -> None:
        now = self._clock()
        for wait in self._waits:
            if wait.real and not wait.fired and wait.deadline is not None and now >= wait.deadline:
                wait.fired = True
                if wait.on_deadline is not None:
                    after.append(wait.on_deadline)  # outside _cv: it takes the primitive's lock

    def _survey(self, after: list[Callable[[], Any]]) -> _Survey:
        survey = _Survey()
        self._fire_real_deadlines(after)
        now = self._clock()
        candidates = []
        listed = threading.enumerate()
        ending = set(self._started).difference(listed)
        survey.running.extend(thread for thread in ending if thread.is_alive())
        for thread in listed:
            if sampler_module.is_kit_thread(thread) or not thread.is_alive():
                continue
            survey.all.append(thread)
            rec = vars(thread).get(_REC)
            if rec is not None and rec.status == BUSY:
                survey.running.append(thread)
                continue
            if rec is not None and rec.status == HELD:
                if rec.grant is None:
                    survey.held.append(rec)
                    survey.can[rec] = _can_run(rec)
                else:
                    survey.running.append(thread)  # let go, not awake yet
                continue
            wait = rec.wait if rec is not None and rec.status == BLOCKED else None
            if wait is not None:
                due = wait.deadline is not None and now >= wait.deadline
                if due or wait.attempting or _ready(wait):
                    survey.running.append(thread)  # about to wake
                else:
                    survey.blocked.append(rec)
                    if wait.deadline is not None:
                        survey.deadlines.append(wait.deadline)
                continue
            candidates.append(thread)
        if candidates:
            self._classify(candidates, survey)
        return survey

    def _classify(self, candidates: list[threading.Thread], survey: _Survey) -> None:
        """Threads we hold no record of: running, or (seen so for SETTLE s) asleep or in a wait
        the kit does not trace, read from their frames (frames.py: the one reader of those)."""
        current = frames.current_frames()
        now = time.monotonic()
        seen = {}
        for thread in candidates:
            frame = current.get(thread.ident)
            state, detail = "running", ""
            if frame is not None and frame.f_code.co_filename != __file__:  # ours: on its way in
                state, detail = frames.classify(frame)
            if state in ("running", "done"):
                survey.running.append(thread)
                continue
            # The same place is no proof of a wait: a loop around time.sleep(0) is found there
            # on every look (it lets go of the GIL right there). The kernel's count of the
            # thread's CPU time is: it stays put only for a thread that really waits.
            key = (frame.f_code, frame.f_lasti, state)
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
                at = _at(frames.lesson_frame(frame, self.lesson_file))
                survey.untraced.append((thread, state, detail, at))
        self._seen = seen

    def _publish(self, survey: _Survey) -> None:
        threads = []
        for rec in survey.held:
            can, why, _ = survey.can[rec]
            threads.append({"name": rec.thread.name, "ident": rec.thread.ident, **_place(rec.at),
                            "sync": rec.sync, "can_run": can, "why": why})
        blocked = []
        for rec in survey.blocked:
            wait = rec.wait
            assert wait is not None
            blocked.append({"name": rec.thread.name, "ident": rec.thread.ident,
                            "waiting_for": wait.obj, "state": wait.state, **_place(rec.at),
                            "timeout_at": None if wait.deadline is None
                            else round(wait.deadline, 6), "untraced": False})
        for thread, state, detail, at in survey.untraced:
            blocked.append({"name": thread.name, "ident": thread.ident,
                            "waiting_for": detail or None, "state": state, **_place(at),
                            "timeout_at": None, "untraced": True})
        payload = {"threads": threads, "blocked": blocked,
                   "running": [thread.name for thread in survey.sleeping],
                   "stuck": survey.stuck and not survey.deadlines}
        if payload == self._last_paused and len(self._steps) == self._last_steps:
            return
        self._last_paused, self._last_steps = payload, len(self._steps)
        events.emit("paused", steps=len(self._steps), clock=round(self._clock(), 6), **payload)

    def _watch_deadlock(self, survey: _Survey, after: list[Callable[[], Any]]) -> None:
        edges: dict[int, tuple[int, str]] = {}
        for rec in survey.held:
            can, _, owner = survey.can[rec]
            if not can and owner is not None and rec.sync is not None and rec.thread.ident:
                edges[rec.thread.ident] = (owner, rec.sync["obj"])
        for rec in survey.blocked:
            wait = rec.wait
            owner = wait.lock._owner if wait is not None and wait.lock is not None else None
            if wait is not None and owner is not None and rec.thread.ident:
                edges[rec.thread.ident] = (owner, wait.obj)
        names = {thread.ident: thread.name for thread in threading.enumerate()}
        found = None
        cycle = _find_cycle(edges)
        if cycle:
            entries = [_entry(ident, edges[ident][1], names) for ident in cycle]
            key = ("cycle", frozenset((ident, edges[ident][1]) for ident in cycle))
            found = _Deadlock(key, entries, cycle, stall=False)
        elif survey.stuck and not survey.deadlines:
            stuck = [(rec.thread.ident, rec.sync["obj"] if rec.sync else "a step")
                     for rec in survey.held]
            stuck += [(rec.thread.ident, rec.wait.obj) for rec in survey.blocked if rec.wait]
            stuck += [(thread.ident, detail or state) for thread, state, detail, _ in
                      survey.untraced]
            entries = [_entry(ident, waits_for, names) for ident, waits_for in stuck]
            key = ("stall", frozenset(stuck))
            found = _Deadlock(key, entries, [ident for ident, _ in stuck], stall=True)
        old = self._deadlock
        if old is not None and (found is None or found.key != old.key):
            self._broken(old, self._how(old), after)
        if found is not None and (old is None or found.key != old.key):
            self._deadlock = found
            events.emit("deadlock", op="formed", since=found.epoch, cycle=found.cycle, step=True,
                        stall=found.stall, steps=len(self._steps))
            story = sampler_module.cycle_story(found.cycle)
            after.append(lambda: _log.error("DEADLOCK detected%s: %s",
                                            " (nothing can move)" if found.stall else "", story))

    def _watch_break(self, survey: _Survey, after: list[Callable[[], Any]]) -> None:
        """While threads run: a reported deadlock is over once one of its threads moves (the
        run may end before it is quiescent again)."""
        old = self._deadlock
        if old is None:
            return
        stuck = {rec.thread.ident for rec in survey.blocked}
        stuck.update(rec.thread.ident for rec in survey.held if not survey.can[rec][0])
        stuck.update(thread.ident for thread, *_ in survey.untraced)
        if not stuck.issuperset(old.idents):
            self._broken(old, self._how(old), after)

    def _how(self, old: _Deadlock) -> str:
        how = sampler_module.explain_break(old.cycle, old.idents, old.since)
        if how == "the wait-for cycle is gone" and old.stall:
            how = "a thread can move again"
        return how

    def _broken(self, old: _Deadlock, how: str, after: list[Callable[[], Any]]) -> None:
        self._deadlock = None
        events.emit("deadlock", op="broken", since=old.epoch, cycle=old.cycle, how=how, step=True,
                    stall=old.stall, steps=len(self._steps))
        after.append(lambda: _log.info("deadlock over: %s", how))

    def _replay(self, survey: _Survey, after: list[Callable[[], Any]]) -> None:
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


# --- helpers ------------------------------------------------------------------------------------


def _run_all(actions: list[Callable[[], Any]]) -> None:
    for action in actions:
        try:
            action()
        except Exception:  # the stepper must never take a lesson down
            _log.exception("step mode: a deferred action failed")


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


@contextlib.contextmanager
def _busy(stepper: Stepper):
    """Mark the calling thread surely running (``BUSY``) for the ``with`` body."""
    with stepper._cv:
        rec = stepper._rec(threading.current_thread())
        rec.status = BUSY
    try:
        yield
    finally:
        with stepper._cv:
            rec.status = RUNNING
            stepper._cv.notify_all()


def _ready(wait: _Wait) -> bool:
    try:
        return bool(wait.ready())
    except Exception:
        return True  # let the waiter find out for itself


def _can_run(rec: _Rec) -> tuple[bool, str | None, int | None]:
    if rec.check is None:
        return True, None, None
    try:
        return rec.check()
    except Exception:
        return True, None, None


def _at(frame: Any) -> tuple[str, int] | None:
    return None if frame is None else (frame.f_code.co_filename, frame.f_lineno)


def _place(at: tuple[str, int] | None) -> dict[str, Any]:
    if at is None:
        return {"next": None, "line": None, "source": ""}
    filename, line = at
    return {"next": f"{os.path.basename(filename)}:{line}", "line": line,
            "source": linecache.getline(filename, line).strip()}


def _lookup(who: Any, threads: list[threading.Thread]) -> threading.Thread | None:
    for thread in threads:
        if thread.name == str(who):
            return thread
    for thread in threads:
        if str(thread.ident) == str(who):
            return thread
    return None


def _find_cycle(edges: dict[int, tuple[int, str]]) -> list[int] | None:
    for start in edges:
        path, seen, node = [start], {start}, start
        while node in edges:
            node = edges[node][0]
            if node == start:
                return path
            if node in seen:
                break
            seen.add(node)
            path.append(node)
    return None


def _entry(ident: int, waits_for: str, names: dict[int | None, str]) -> dict[str, Any]:
    return {"thread": names.get(ident, str(ident)), "holds": traced.holds(ident),
            "waits_for": waits_for}


def _name_of(ident: int | None) -> str:
    for thread in threading.enumerate():
        if thread.ident == ident:
            return thread.name
    return str(ident)


def _stepping_here() -> Stepper | None:
    """The stepper, if it holds the calling thread (a lesson thread while stepping), else None."""
    stepper = _stepper
    if stepper is None or not stepper.active:
        return None
    if sampler_module.is_kit_thread(threading.current_thread()):
        return None
    return stepper


# --- the traced primitives in step mode ---------------------------------------------------------
# Installed over traced's methods (and Thread.start/join) by start(), so that without step mode
# nothing of this costs anything. Each runs the original when the calling thread is not stepped
# (a kit thread, or after free). _ORIGINAL holds what each replaced.

_ORIGINAL: dict[tuple[type, str], Any] = {}


def _original(owner: type, name: str) -> Any:
    return _ORIGINAL[(owner, name)]


def _lock_check(lock: traced.Lock, me: int, forever: bool):
    def check() -> tuple[bool, str | None, int | None]:
        owner = lock._owner
        if isinstance(lock, traced.RLock) and owner == me:
            return True, None, None
        if not forever or not lock._inner.locked():
            return True, None, None
        if owner == me:
            return False, f"waits for {lock.name}, which it holds itself (a Lock is not " \
                          "re-entrant)", me
        if owner is None:
            return False, f"waits for {lock.name}, which is taken", None
        return False, f"waits for {lock.name}, held by {_name_of(owner)}", owner

    return check


def _acquire_lock(stepper: Stepper, lock: traced.Lock, blocking: bool, timeout: float) -> bool:
    if not blocking and timeout != -1:
        raise ValueError("can't specify a timeout for a non-blocking call")
    if timeout < 0 and timeout != -1:
        raise ValueError("timeout value must be a non-negative number")
    me = threading.get_ident()
    forever = blocking and timeout == -1
    stepper.sync("acquire", lock.name, lock._kind, _lock_check(lock, me, forever))
    if lock._try(False):
        lock._owner = me
        return True
    if not blocking:
        return False
    traced._waiting_on[me] = lock  # an edge of the wait-for graph, as in Lock._wait
    try:
        with traced._Blocking(lock.name, "waiting-lock") as wait:
            ok = stepper.block(lock.name, "waiting-lock", lambda: not lock._inner.locked(),
                               lambda: lock._try(False), None if forever else timeout, lock)
            wait.outcome = "acquired" if ok else "timeout"
    finally:
        traced._waiting_on.pop(me, None)
    if ok:
        lock._owner = me
        traced._sync("acquired", lock.name)
    else:
        traced._sync("timeout", lock.name, timeout=timeout)
    return ok


def _lock_acquire(self: traced.Lock, blocking: bool = True, timeout: float = -1) -> bool:
    stepper = _stepping_here()
    if stepper is None:
        return _original(traced.Lock, "acquire")(self, blocking, timeout)
    return _acquire_lock(stepper, self, blocking, timeout)


def _lock_enter(self: traced.Lock) -> bool:
    stepper = _stepping_here()
    if stepper is None:
        return _original(traced.Lock, "__enter__")(self)
    return _acquire_lock(stepper, self, True, -1)


def _rlock_acquire(self: traced.RLock, blocking: bool = True, timeout: float = -1) -> bool:
    stepper = _stepping_here()
    if stepper is None:
        return _original(traced.RLock, "acquire")(self, blocking, timeout)
    if self._owner == threading.get_ident():  # again: cannot block, still a move to show
        stepper.sync("acquire", self.name, self._kind)
        self._depth += 1
        return True
    ok = _acquire_lock(stepper, self, blocking, timeout)
    if ok:
        self._depth = 1
    return ok


def _cond_wait_here(stepper: Stepper, cond: traced.Condition, timeout: float | None) -> bool:
    """Condition.wait after its hold: on the stepper's queue of waiters, timed on the step clock,
    then the lock taken back (a sync point of its own)."""
    if not cond._is_owned():
        raise RuntimeError("cannot wait on un-acquired lock")
    waiter = stepper.add_waiter(cond)
    lock = cond.lock
    saved = lock._release_save() if hasattr(lock, "_release_save") else lock.release()
    try:
        with traced._Blocking(cond.name, "waiting-condition") as wait:
            notified = stepper.block(cond.name, "waiting-condition", lambda: waiter[0],
                                     timeout=timeout)
            wait.outcome = "notified" if notified else "timeout"
    finally:
        stepper.drop_waiter(cond, waiter)
        if hasattr(lock, "_acquire_restore"):
            lock._acquire_restore(saved)
        else:
            lock.acquire()
    return notified


def _cond_wait(self: traced.Condition, timeout: float | None = None) -> bool:
    stepper = _stepping_here()
    if stepper is None:
        return _original(traced.Condition, "wait")(self, timeout)
    stepper.sync("wait", self.name, "condition")
    return _cond_wait_here(stepper, self, timeout)


def _cond_wait_for(self: traced.Condition, predicate: Callable[[], Any],
                   timeout: float | None = None) -> Any:
    stepper = _stepping_here()
    if stepper is None:
        return _original(traced.Condition, "wait_for")(self, predicate, timeout)
    stepper.sync("wait_for", self.name, "condition")
    deadline = None if timeout is None else stepper.clock() + timeout
    result = predicate()
    while not result:
        remaining = None if deadline is None else deadline - stepper.clock()
        if remaining is not None and remaining <= 0:
            break
        _cond_wait_here(stepper, self, remaining)
        result = predicate()
    return result


def _cond_notify(self: traced.Condition, n: int = 1) -> None:
    stepper = _stepping_here()
    if stepper is not None:
        stepper.sync("notify", self.name, "condition")
    if not self._is_owned():
        raise RuntimeError("cannot notify on un-acquired lock")
    traced._sync("notify", self.name, n=n)
    assert _stepper is not None
    left = _stepper.wake_waiters(self, n)  # waits begun while stepping, even after free
    if left:
        self._inner.notify(left)


def _cond_notify_all(self: traced.Condition) -> None:
    stepper = _stepping_here()
    if stepper is not None:
        stepper.sync("notify_all", self.name, "condition")
    if not self._is_owned():
        raise RuntimeError("cannot notify on un-acquired lock")
    traced._sync("notify", self.name, n="all")
    assert _stepper is not None
    _stepper.wake_waiters(self, None)
    self._inner.notify_all()


def _semaphore_check(sem: traced.Semaphore, forever: bool):
    def check() -> tuple[bool, str | None, int | None]:
        if not forever or sem._inner._value > 0:
            return True, None, None
        holders = [_name_of(ident) for ident, names in list(traced._holds.items())
                   if sem.name in names]
        by = f" (taken by {', '.join(holders)})" if holders else ""
        return False, f"waits for {sem.name}: no room{by}", None

    return check


def _semaphore_acquire(self: traced.Semaphore, blocking: bool = True,
                       timeout: float | None = None) -> bool:
    stepper = _stepping_here()
    if stepper is None:
        return _original(traced.Semaphore, "acquire")(self, blocking, timeout)
    if not blocking and timeout is not None:
        raise ValueError("can't specify timeout for non-blocking acquire")
    me = threading.get_ident()
    inner = self._inner
    stepper.sync("acquire", self.name, self._kind,
                 _semaphore_check(self, blocking and timeout is None))
    if inner.acquire(False):
        traced._took(me, self.name)
        return True
    if not blocking:
        return False
    with traced._Blocking(self.name, "waiting-lock") as wait:
        ok = stepper.block(self.name, "waiting-lock", lambda: inner._value > 0,
                           lambda: inner.acquire(False), timeout)
        wait.outcome = "acquired" if ok else "timeout"
    if ok:
        traced._took(me, self.name)
        traced._sync("acquired", self.name)
    else:
        traced._sync("timeout", self.name, timeout=timeout)
    return ok


def _semaphore_release(self: traced.Semaphore, n: int = 1) -> None:
    stepper = _stepping_here()
    if stepper is not None:
        stepper.sync("release", self.name, self._kind)
    _original(traced.Semaphore, "release")(self, n)


def _event_set(self: traced.Event) -> None:
    stepper = _stepping_here()
    if stepper is not None:
        stepper.sync("set", self.name, "event")
    _original(traced.Event, "set")(self)


def _event_wait(self: traced.Event, timeout: float | None = None) -> bool:
    stepper = _stepping_here()
    if stepper is None:
        return _original(traced.Event, "wait")(self, timeout)
    stepper.sync("wait", self.name, "event")
    inner = self._inner
    if inner.is_set():
        return True
    with traced._Blocking(self.name, "waiting-event") as wait:
        is_set = stepper.block(self.name, "waiting-event", inner.is_set, timeout=timeout)
        wait.outcome = "set" if is_set else "timeout"
    return is_set


def _barrier_wait(self: traced.Barrier, timeout: float | None = None) -> int:
    """Barrier.wait while stepping: the threads wait in the real barrier (its last arrival must
    release them), the stepper counts arrivals itself (the barrier's own count lags behind a
    thread on its way in) so it knows when they can wake, and ends a wait whose timeout passed on
    the step clock by breaking the barrier, as a timeout does."""
    stepper = _stepping_here()
    if stepper is None:
        return _original(traced.Barrier, "wait")(self, timeout)
    stepper.sync("wait", self.name, "barrier")
    inner = self._inner
    if timeout is None:
        timeout = inner._timeout
    with stepper._cv:
        arrivals = vars(self).setdefault(_ARRIVALS, [0, 0])
        last = False
        if not inner.broken:
            arrivals[0] += 1
            if arrivals[0] >= inner.parties:
                arrivals[0], last = 0, True
        generation = arrivals[1]
    if last or inner.broken:
        try:
            with _busy(stepper):  # may wait a moment for a thread still on its way in
                return inner.wait(BIG_TIMEOUT)  # releases the others (or BrokenBarrierError)
        finally:
            # Only now may the others count as waking: the barrier's action ran inside the
            # wait above, held at its lines while they still waited.
            if last:
                with stepper._cv:
                    arrivals[1] += 1
                    stepper._cv.notify_all()
    wait = stepper.begin_real(self.name, "waiting-condition",
                              lambda: arrivals[1] != generation or inner.broken, timeout,
                              inner.abort)
    try:
        with traced._Blocking(self.name, "waiting-condition") as blocking:
            index = inner.wait(BIG_TIMEOUT)
            blocking.outcome = "notified"
        return index
    finally:
        stepper.end_real(wait)


def _barrier_reset(self: traced.Barrier) -> None:
    stepper = _stepper
    if stepper is not None:
        with stepper._cv:
            arrivals = vars(self).get(_ARRIVALS)
            if arrivals is not None:
                arrivals[0], arrivals[1] = 0, arrivals[1] + 1
    _original(traced.Barrier, "reset")(self)


def _queue_get(self: traced.Queue, block: bool = True, timeout: float | None = None) -> Any:
    stepper = _stepping_here()
    original = _original(traced._TracedQueue, "get")
    if stepper is None:
        return original(self, block, timeout)
    stepper.sync("get", self.name, "queue")
    if not block:
        return original(self, False)
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    try:
        return original(self, False)
    except queue.Empty:
        pass
    got: list[Any] = []

    def attempt() -> bool:
        try:
            got.append(original(self, False))
            return True
        except queue.Empty:
            return False

    with traced._Blocking(self.name, "waiting-queue") as wait:
        if not stepper.block(self.name, "waiting-queue", lambda: self._qsize() > 0, attempt,
                             timeout):
            wait.outcome = "timeout"
            raise queue.Empty
        wait.outcome = "got"
    return got[0]


def _queue_put(self: traced.Queue, item: Any, block: bool = True,
               timeout: float | None = None) -> None:
    stepper = _stepping_here()
    original = _original(traced._TracedQueue, "put")
    if stepper is None:
        return original(self, item, block, timeout)
    stepper.sync("put", self.name, "queue")
    if not block:
        return original(self, item, False)
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    try:
        return original(self, item, False)
    except queue.Full:
        pass

    def attempt() -> bool:
        try:
            original(self, item, False)
            return True
        except queue.Full:
            return False

    with traced._Blocking(self.name, "waiting-queue") as wait:
        if not stepper.block(self.name, "waiting-queue",
                             lambda: not 0 < self.maxsize <= self._qsize(), attempt, timeout):
            wait.outcome = "timeout"
            raise queue.Full
        wait.outcome = "put"
    return None


def _queue_join(self: traced.Queue) -> None:
    stepper = _stepping_here()
    if stepper is None:
        return _original(traced._TracedQueue, "join")(self)
    stepper.sync("join", self.name, "queue")
    if not self.unfinished_tasks:
        return None
    with traced._Blocking(self.name, "waiting-queue") as wait:
        stepper.block(self.name, "waiting-queue", lambda: not self.unfinished_tasks)
        wait.outcome = "joined"
    return None


def _thread_start(self: threading.Thread) -> None:
    stepper = _stepper
    original = _original(threading.Thread, "start")
    if stepper is None or not stepper.active or sampler_module.is_kit_thread(self):
        return original(self)
    with stepper._cv:
        stepper._started.add(self)
    if _stepping_here() is None:  # started by a kit thread
        return original(self)
    stepper.sync("start", self.name, "thread")
    with _busy(stepper):  # start() waits, untraced, for the new thread's first steps
        return original(self)


def _thread_join(self: threading.Thread, timeout: float | None = None) -> None:
    stepper = _stepping_here()
    inner = _original(threading.Thread, "join")  # maybe traced.install_join's wrapper
    if stepper is None or sampler_module.is_kit_thread(self):
        return inner(self, timeout)
    stepper.sync("join", self.name, "thread")
    base = getattr(inner, _WRAPS, inner)
    base(self, 0)  # raises what a join raises (not started, joining oneself); never blocks
    if not self.is_alive() or (timeout is not None and timeout <= 0):
        return None
    with traced._Blocking(self.name, "waiting-join", sync=False) as wait:
        joined = stepper.block(self.name, "waiting-join", lambda: not self.is_alive(),
                               timeout=timeout)
        wait.outcome = "joined" if joined else "timeout"
    return None


_thread_join.__doc__ = threading.Thread.join.__doc__


def _patches() -> list[tuple[type, str, Callable[..., Any]]]:
    return [
        (traced.Lock, "acquire", _lock_acquire),
        (traced.Lock, "__enter__", _lock_enter),
        (traced.RLock, "acquire", _rlock_acquire),
        (traced.RLock, "__enter__", _rlock_acquire),
        (traced.Condition, "wait", _cond_wait),
        (traced.Condition, "wait_for", _cond_wait_for),
        (traced.Condition, "notify", _cond_notify),
        (traced.Condition, "notify_all", _cond_notify_all),
        (traced.Condition, "notifyAll", _cond_notify_all),
        (traced.Semaphore, "acquire", _semaphore_acquire),
        (traced.Semaphore, "__enter__", _semaphore_acquire),
        (traced.Semaphore, "release", _semaphore_release),
        (traced.Event, "set", _event_set),
        (traced.Event, "wait", _event_wait),
        (traced.Barrier, "wait", _barrier_wait),
        (traced.Barrier, "reset", _barrier_reset),
        (traced._TracedQueue, "get", _queue_get),
        (traced._TracedQueue, "put", _queue_put),
        (traced._TracedQueue, "join", _queue_join),
        (threading.Thread, "start", _thread_start),
        (threading.Thread, "join", _thread_join),
    ]


def _install_patches() -> None:
    """Put the step-mode methods in place (again, if ``kit.setup`` replaced ``Thread.join``)."""
    for owner, name, function in _patches():
        current = owner.__dict__[name]
        if current is function:
            continue
        _ORIGINAL[(owner, name)] = current
        setattr(owner, name, function)
    # traced.install_join (setup again) wraps what _WRAPS names: threading's own join, not ours.
    _thread_join.__dict__[_WRAPS] = getattr(_ORIGINAL[(threading.Thread, "join")], _WRAPS,
                                            _ORIGINAL[(threading.Thread, "join")])
