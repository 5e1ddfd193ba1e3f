"""Step mode: the learner is the scheduler of a real Python program's threads.

Every lesson thread waits ("is held") before each line of the lesson's own code and before each
traced primitive operation that can block or wake another thread, until a step lets it go. A step
for one thread, then one for another, makes any interleaving happen on purpose: a lost update, a
deadlock, a missed notification. The steps taken are the run's *schedule*; replaying it gives the
same interleaving and the same result. This is the contract the server is built against.

Turning it on
    ``THREADLAB_STEP=1`` in the environment when ``kit.setup()`` runs (the server sets it; argv
    stays the lesson's own), or ``THREADLAB_SCHEDULE`` (below). Off, neither this module nor its
    ``step_*`` parts are even imported: no trace function, no patched method, nothing. On, it
    needs a way to be told what to do: stdin commands (JSON mode, stdin not a terminal) or a
    schedule; with neither it logs a warning and stays off.

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
    is a loop on the stepper's one Condition (see :class:`.step_stepper.Stepper`) that retries a
    non-blocking attempt when the wait's ``ready`` check says it could succeed, oldest waiter
    first. A woken thread is held again at its next line. So which thread moves, and what it
    sees, depends only on the schedule. (Left outside this promise: ``time.sleep`` runs on the
    real clock, and waits the kit does not trace are read from frames; see Limits.)

Timeouts and the step clock
    The step clock (:mod:`.step_clock`) advances only while some lesson thread runs (or sleeps),
    so no timeout fires because of a pause. Every traced wait's timeout (``acquire(timeout=)``,
    ``Condition.wait``, ``wait_for``, ``Event.wait``, ``Queue`` get/put, ``Barrier``,
    ``Thread.join``) counts on it.
    When nothing can move except by a timeout running out, the clock jumps to the earliest one
    (logged): that timeout fires as it would have in a free run, and no run hangs on a pause that
    nobody can end. The server counts a step-mode run's time limit on the ``clock`` of
    ``paused`` events (running time, jumps included); the kit's own watchdog only watches for the
    server's death.

Limits
    A lesson's own ``sys.settrace``/``threading.settrace`` replaces ours (and a debugger's is
    replaced by ours). Threads started before ``kit.setup()`` are not line-held. Waits on plain
    ``threading``/``queue`` objects and ``time.sleep`` time out on the real clock, and a thread in
    one is seen only from its frames (two looks 20 ms apart; not at all on a free-threaded build,
    where it counts as running): replaying over them is as exact as their timing. A traced
    ``Condition`` must be built on a traced lock. Lesson code that runs inside a library's lock
    (a ``__str__`` in a log call's arguments, a ``__lt__`` in a ``PriorityQueue``) is held there
    with that lock held.

The parts
    This module is the face the rest of the kit calls (``setup``, the command reader, SIGINT).
    ``step_stepper``: the stepper (holding, waiting, commands and grants, the monitor, replay);
    ``step_survey``: every lesson thread at one instant and the ``paused`` picture of it;
    ``step_deadlock``: the deadlock watch; ``step_clock``: the step clock; ``step_records``: what
    the stepper knows of each thread; ``step_schedule``: schedules read back for replay;
    ``step_wrap`` and ``step_wrap_*``: the traced primitives' step-mode methods.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from . import sampler as sampler_module
from . import (
    step_stepper,
    step_wrap,
    step_wrap_gates,
    step_wrap_locks,
    step_wrap_queues,
    step_wrap_threads,
)
from .step_schedule import parse_schedule
from .step_stepper import Stepper

__all__ = ["command", "on_commands_closed", "on_interrupt", "parse_schedule", "start"]

_log = logging.getLogger("threadlab.kit")


def command(request: dict[str, Any]) -> None:
    """Carry out a ``step`` or ``free`` command from stdin (``threadlab-commands`` calls this)."""
    stepper = step_stepper.current
    if stepper is None:
        _log.error("%s refused: step mode is off (THREADLAB_STEP=1 turns it on)",
                   request.get("cmd"), extra={"refused": request})
        return
    stepper.command(request)


def on_interrupt() -> None:
    """SIGINT (Stop): let every thread go, so the lesson winds down as it would."""
    stepper = step_stepper.current
    if stepper is not None:
        stepper.free("interrupt", "interrupted: every thread runs freely to wind down")


def on_commands_closed() -> None:
    """Stdin ended: nobody can send a step any more, so let every thread go (not while a
    schedule is replayed: that needs no commands)."""
    stepper = step_stepper.current
    if stepper is not None and stepper.replaying() is False:
        stepper.free("stdin", "stdin closed: nobody can send a step any more")


def start(main_file: str | None, commands: bool) -> Stepper | None:
    """Turn step mode on if the environment asks for it (``kit.setup`` calls this; see above)."""
    if step_stepper.current is not None:  # setup() again: one stepper per process; re-wrap
        _install_patches()  # what setup replaced
        return step_stepper.current
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
    step_stepper.current = stepper
    _install_patches()
    sampler_module.stepping = True
    stepper.begin()
    _log.info("step mode: each lesson thread waits for a step (%s)",
              f"replaying {len(plan)} steps" if plan is not None else "step commands on stdin")
    return stepper


def _install_patches() -> None:
    """Put the step-mode methods in place (again, if ``kit.setup`` replaced ``Thread.join``)."""
    step_wrap.install(step_wrap_locks.PATCHES + step_wrap_gates.PATCHES
                      + step_wrap_queues.PATCHES + step_wrap_threads.PATCHES)
    step_wrap_threads.mark_join_wraps()
