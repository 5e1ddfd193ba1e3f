"""Step mode's ``Lock``, ``RLock`` and ``Condition``: a sync point before each acquire, wait and
notify, and waits that the stepper wakes (oldest first) and times on the step clock.

A ``Lock`` release is no sync point: in step mode nobody waits inside an acquire of a lock that is
held (see ``can_run`` in :mod:`.step`).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any

from . import step_stepper, traced
from .step_records import Check, name_of
from .step_stepper import Stepper
from .step_wrap import Patch, original, stepping_here

_WAITERS = "_threadlab_waiters"  # a traced Condition's stepper waiters (a deque), oldest first


def _lock_check(lock: traced.Lock, me: int, forever: bool) -> Check:
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
        return False, f"waits for {lock.name}, held by {name_of(owner)}", owner

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
    stepper = stepping_here()
    if stepper is None:
        return original(traced.Lock, "acquire")(self, blocking, timeout)
    return _acquire_lock(stepper, self, blocking, timeout)


def _lock_enter(self: traced.Lock) -> bool:
    stepper = stepping_here()
    if stepper is None:
        return original(traced.Lock, "__enter__")(self)
    return _acquire_lock(stepper, self, True, -1)


def _rlock_acquire(self: traced.RLock, blocking: bool = True, timeout: float = -1) -> bool:
    stepper = stepping_here()
    if stepper is None:
        return original(traced.RLock, "acquire")(self, blocking, timeout)
    if self._owner == threading.get_ident():  # again: cannot block, still a move to show
        stepper.sync("acquire", self.name, self._kind)
        self._depth += 1
        return True
    ok = _acquire_lock(stepper, self, blocking, timeout)
    if ok:
        self._depth = 1
    return ok


# --- Condition: its waiters queue on the stepper (guarded by its cv), so the stepper decides ---


def _add_waiter(stepper: Stepper, cond: traced.Condition) -> list[bool]:
    """A place in ``cond``'s queue of stepper waiters; ``[True]`` once notified."""
    waiter = [False]
    with stepper.cv:
        vars(cond).setdefault(_WAITERS, collections.deque()).append(waiter)
    return waiter


def _drop_waiter(stepper: Stepper, cond: traced.Condition, waiter: list[bool]) -> None:
    with stepper.cv:
        waiters = vars(cond).get(_WAITERS)
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)


def _wake_waiters(stepper: Stepper, cond: traced.Condition, n: int | None) -> int | None:
    """Notify up to ``n`` (None: all) stepper waiters of ``cond``, oldest first, as
    ``threading.Condition`` does; returns how many notifications are left for its own."""
    with stepper.cv:
        waiters = vars(cond).get(_WAITERS)
        woken = 0
        while waiters and (n is None or woken < n):
            waiters.popleft()[0] = True
            woken += 1
        if woken:
            stepper.cv.notify_all()
    return None if n is None else n - woken


def _cond_wait_here(stepper: Stepper, cond: traced.Condition, timeout: float | None) -> bool:
    """Condition.wait after its hold: on the stepper's queue of waiters, timed on the step clock,
    then the lock taken back (a sync point of its own)."""
    if not cond._is_owned():
        raise RuntimeError("cannot wait on un-acquired lock")
    waiter = _add_waiter(stepper, cond)
    lock = cond.lock
    saved = lock._release_save() if hasattr(lock, "_release_save") else lock.release()
    try:
        with traced._Blocking(cond.name, "waiting-condition") as wait:
            notified = stepper.block(cond.name, "waiting-condition", lambda: waiter[0],
                                     timeout=timeout)
            wait.outcome = "notified" if notified else "timeout"
    finally:
        _drop_waiter(stepper, cond, waiter)
        if hasattr(lock, "_acquire_restore"):
            lock._acquire_restore(saved)
        else:
            lock.acquire()
    return notified


def _cond_wait(self: traced.Condition, timeout: float | None = None) -> bool:
    stepper = stepping_here()
    if stepper is None:
        return original(traced.Condition, "wait")(self, timeout)
    stepper.sync("wait", self.name, "condition")
    return _cond_wait_here(stepper, self, timeout)


def _cond_wait_for(self: traced.Condition, predicate: Callable[[], Any],
                   timeout: float | None = None) -> Any:
    stepper = stepping_here()
    if stepper is None:
        return original(traced.Condition, "wait_for")(self, predicate, timeout)
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
    stepper = stepping_here()
    if stepper is not None:
        stepper.sync("notify", self.name, "condition")
    if not self._is_owned():
        raise RuntimeError("cannot notify on un-acquired lock")
    traced._sync("notify", self.name, n=n)
    assert step_stepper.current is not None
    # waits begun while stepping, even after free (stepping_here() is None then)
    left = _wake_waiters(step_stepper.current, self, n)
    if left:
        self._inner.notify(left)


def _cond_notify_all(self: traced.Condition) -> None:
    stepper = stepping_here()
    if stepper is not None:
        stepper.sync("notify_all", self.name, "condition")
    if not self._is_owned():
        raise RuntimeError("cannot notify on un-acquired lock")
    traced._sync("notify", self.name, n="all")
    assert step_stepper.current is not None
    _wake_waiters(step_stepper.current, self, None)
    self._inner.notify_all()


PATCHES: list[Patch] = [
    (traced.Lock, "acquire", _lock_acquire),
    (traced.Lock, "__enter__", _lock_enter),
    (traced.RLock, "acquire", _rlock_acquire),
    (traced.RLock, "__enter__", _rlock_acquire),
    (traced.Condition, "wait", _cond_wait),
    (traced.Condition, "wait_for", _cond_wait_for),
    (traced.Condition, "notify", _cond_notify),
    (traced.Condition, "notify_all", _cond_notify_all),
    (traced.Condition, "notifyAll", _cond_notify_all),
]
