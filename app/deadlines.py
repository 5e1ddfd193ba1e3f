"""A run's time limit, which in step mode counts only running time.

A free run's limit counts from its start. In step mode the learner is the scheduler, and while the
learner thinks nothing moves: the limit counts only the time during which at least one lesson
thread was let go, from a ``step`` (or ``free``) that the kit granted to the next ``paused`` event
in which every thread waits for the learner again. The kit measures that time itself, on its step
clock (``lessons/kit/step_clock.py``: it runs while a lesson thread runs or sleeps), and each
``paused`` event carries its reading as ``clock``; that reading is what is counted, so the server's
own latency in reading the pipe is not. Between a step and the next ``paused`` event the server
cannot know more than that the threads run, so the limit is due then as in a free run.

A ``paused`` event waits for the learner when no thread sleeps (``running`` is empty) and the
next move is the learner's: some held thread can run, or nothing can move at all (``stuck``: a
deadlock that only ``free`` or Stop ends). Otherwise the run moves on by itself and its time
counts: a thread sleeps, or every thread is held or blocked but some traced wait has a timeout,
which the kit's step clock jumps to at once (that jump is running time: the lesson's own timeout
passed, as it would have in a free run, and the next ``paused`` event's ``clock`` includes it).

Left out, as the kit documents under "Limits": a wait on a plain ``threading`` object (or a
``time.sleep``) times out on the real clock, so it can wake its thread while the learner thinks,
without a step. The step clock counts what that thread then runs, and the next ``paused`` event
brings it in; but a thread that then runs on without ever reaching a hold (the main thread, held
at sync points only, in a loop without one) is not stopped by the limit until a step or ``free``
is taken: Stop ends it.
"""

from __future__ import annotations

import math
from typing import Any

STEP_KINDS = ("step", "paused")  # the kit's events that start and stop the running time


class TimeLimit:
    """How much of a run's time limit is used, and when it is due.

    Owned by the run's supervisor thread: only it reads and writes this (no lock). Invariant:
    ``used`` is the running time counted up to ``since``; ``since`` is the ``time.monotonic()``
    from which the run counts as running, or None while every thread waits for the learner —
    then the limit is not due, and ``used`` is below ``seconds`` (a run whose time is used up
    counts as running, so that the limit is due at once).
    """

    def __init__(self, seconds: float, now: float) -> None:
        self.seconds = seconds
        self.used = 0.0
        self.since: float | None = now  # a run starts running: its threads run to their first hold

    def due(self) -> float | None:
        """When the limit is reached (``time.monotonic()``) if the run keeps running; None while
        it waits for the learner."""
        if self.since is None:
            return None
        return self.since + self.seconds - self.used

    def seen(self, event: dict[str, Any], now: float) -> bool:
        """Count a step-mode event of the kit (``step``, ``paused``) read at ``now``; True if
        :meth:`due` may have changed."""
        kind = event.get("kind")
        if kind == "step":
            if self.since is not None:
                return False
            self.since = now
            return True
        if kind != "paused":
            return False
        clock = event.get("clock")
        if _seconds(clock):
            self.used = max(self.used, float(clock))  # the kit's clock never goes back
        elif self.since is not None:  # not the kit's shape: the server's own measure
            self.used += now - self.since
        self.since = None if waits_for_learner(event) and self.used < self.seconds else now
        return True


def waits_for_learner(paused: dict[str, Any]) -> bool:
    """True if nothing moves until the learner steps (or frees) the threads (see above)."""
    if paused.get("running") != []:  # a thread sleeps (or the event is not the kit's shape)
        return False
    if paused.get("stuck") is True:
        return True
    threads = paused.get("threads")
    return isinstance(threads, list) and any(
        isinstance(thread, dict) and thread.get("can_run") is True for thread in threads)


def _seconds(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0)
