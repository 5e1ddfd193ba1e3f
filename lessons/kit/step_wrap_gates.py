"""Step mode's ``Semaphore``, ``Event`` and ``Barrier``: a sync point before each acquire, release,
set and wait, and waits that the stepper wakes and times on the step clock."""

from __future__ import annotations

import threading

from . import step_stepper, traced
from .step_records import Check, name_of
from .step_wrap import BIG_TIMEOUT, Patch, busy, original, stepping_here

_ARRIVALS = "_threadlab_arrivals"  # a traced Barrier's [arrived, generation] while stepping


def _semaphore_check(sem: traced.Semaphore, forever: bool) -> Check:
    def check() -> tuple[bool, str | None, int | None]:
        if not forever or sem._inner._value > 0:
            return True, None, None
        holders = [name_of(ident) for ident, names in list(traced._holds.items())
                   if sem.name in names]
        by = f" (taken by {', '.join(holders)})" if holders else ""
        return False, f"waits for {sem.name}: no room{by}", None

    return check


def _semaphore_acquire(self: traced.Semaphore, blocking: bool = True,
                       timeout: float | None = None) -> bool:
    stepper = stepping_here()
    if stepper is None:
        return original(traced.Semaphore, "acquire")(self, blocking, timeout)
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
    stepper = stepping_here()
    if stepper is not None:
        stepper.sync("release", self.name, self._kind)
    original(traced.Semaphore, "release")(self, n)


def _event_set(self: traced.Event) -> None:
    stepper = stepping_here()
    if stepper is not None:
        stepper.sync("set", self.name, "event")
    original(traced.Event, "set")(self)


def _event_wait(self: traced.Event, timeout: float | None = None) -> bool:
    stepper = stepping_here()
    if stepper is None:
        return original(traced.Event, "wait")(self, timeout)
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
    stepper = stepping_here()
    if stepper is None:
        return original(traced.Barrier, "wait")(self, timeout)
    stepper.sync("wait", self.name, "barrier")
    inner = self._inner
    if timeout is None:
        timeout = inner._timeout
    with stepper.cv:
        arrivals = vars(self).setdefault(_ARRIVALS, [0, 0])
        last = False
        if not inner.broken:
            arrivals[0] += 1
            if arrivals[0] >= inner.parties:
                arrivals[0], last = 0, True
        generation = arrivals[1]
    if last or inner.broken:
        try:
            with busy(stepper):  # may wait a moment for a thread still on its way in
                return inner.wait(BIG_TIMEOUT)  # releases the others (or BrokenBarrierError)
        finally:
            # Only now may the others count as waking: the barrier's action ran inside the
            # wait above, held at its lines while they still waited.
            if last:
                with stepper.cv:
                    arrivals[1] += 1
                    stepper.cv.notify_all()
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
    stepper = step_stepper.current
    if stepper is not None:
        with stepper.cv:
            arrivals = vars(self).get(_ARRIVALS)
            if arrivals is not None:
                arrivals[0], arrivals[1] = 0, arrivals[1] + 1
    original(traced.Barrier, "reset")(self)


PATCHES: list[Patch] = [
    (traced.Semaphore, "acquire", _semaphore_acquire),
    (traced.Semaphore, "__enter__", _semaphore_acquire),
    (traced.Semaphore, "release", _semaphore_release),
    (traced.Event, "set", _event_set),
    (traced.Event, "wait", _event_wait),
    (traced.Barrier, "wait", _barrier_wait),
    (traced.Barrier, "reset", _barrier_reset),
]
