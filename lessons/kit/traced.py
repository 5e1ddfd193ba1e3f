"""Traced synchronisation primitives: drop-in ``Lock``, ``RLock``, ``Condition``, ``Semaphore``,
``BoundedSemaphore``, ``Event``, ``Barrier`` and ``Queue`` (also ``LifoQueue``, ``PriorityQueue``)
that carry a name and tell the dashboard who holds what.

This module holds the locks (``Lock``, ``RLock``, and the ``Condition`` over them: the hot path)
and re-exports the rest, so ``from lessons.kit import traced`` gives every name:

- :mod:`.traced_state`: the tables of who holds and waits for what, and how a wait is reported
  (read there how the tables stay consistent without a lock of their own);
- :mod:`.traced_waits`: ``Semaphore``, ``BoundedSemaphore``, ``Event``, ``Barrier``, and
  :func:`install_join`, which makes ``Thread.join`` one more traced wait (``waiting-join``, ``obj``
  the joined thread's name); ``kit.setup`` installs it in JSON mode only;
- :mod:`.traced_queue`: the queues;
- :mod:`.traced_deadlock`: the wait-for graph's cycles (:func:`find_cycle`).

Step mode (:mod:`.step`, only when it is on) puts its own versions over the blocking and waking
methods of these classes (``acquire``, ``wait``, ``notify``, ``set``, ``put``/``get``, ...): a
change to how one of them blocks or what it reports belongs in its step-mode twin too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from . import traced_state
from .traced_deadlock import Cycle, find_cycle, find_cycle_detail
from .traced_queue import LifoQueue, PriorityQueue, Queue
from .traced_queue import _TracedQueue as _TracedQueue  # step mode wraps its get/put/join
from .traced_state import (
    WaitEnd,
    _auto_name,
    _Blocking,
    _locks,
    _look_lock,
    _sync,
    _wait_began,
    _wait_ended,
    _waiting,
    _waiting_on,
    holds,
    owner_of,
    recent_waits,
    waiting,
)
from .traced_state import _holds as _holds  # step mode reads and adds to the tables through here
from .traced_state import _took as _took
from .traced_waits import Barrier, BoundedSemaphore, Event, Semaphore, install_join, uninstall_join

__all__ = [
    "Barrier", "BoundedSemaphore", "Condition", "Cycle", "Event", "LifoQueue", "Lock",
    "PriorityQueue", "Queue", "RLock", "Semaphore", "WaitEnd", "find_cycle", "find_cycle_detail",
    "holds", "install_join", "owner_of", "recent_waits", "uninstall_join", "waiting",
]

_counter = traced_state._counter  # one creation order for every primitive (holds() sorts by it)
_get_ident = threading.get_ident
_monotonic = time.monotonic
_sleep = time.sleep  # the real one, whatever a program or step mode does to time.sleep later


# A thread that finds a Lock/RLock taken gives up the GIL up to YIELDS times, for YIELD_FOR
# seconds at most, before it sleeps on the lock (see Lock._wait): enough for a holder that was
# switched out while holding it to run and let go, too short to hide a wait that matters.
YIELDS = 3
YIELD_FOR = 0.01


class Lock:
    """``threading.Lock`` with a name and an owner the dashboard can see.

    The uncontended path is kept to the bone (one non-blocking try and one store of the owner;
    one store and the release): a hot loop over a traced lock must cost little more than over a
    plain one (``scripts/bench_tracing.py``). So a lock keeps its owner on itself, and who holds
    what is found by the readers (:func:`holds`, :func:`find_cycle`) going through the live locks
    in :data:`_locks`, ten times a second, rather than written into tables at every acquire.
    ``_owner`` is changed only by the thread that holds the lock (set just after taking it, cleared
    just before giving it back): at any instant it is the holder, or None during those two steps.
    """

    __slots__ = ("name", "_inner", "_try", "_release", "_owner", "_seq", "__weakref__")
    _kind = "lock"

    def __init__(self, name: str | None = None) -> None:
        self.name = _auto_name(self._kind, name)
        self._inner = self._make_inner()
        # Bound methods of the inner lock, looked up once: one attribute fewer per acquire.
        self._try = self._inner.acquire
        self._release = self._inner.release
        self._owner: int | None = None
        self._seq = next(_counter)  # creation order: holds() lists locks in it
        _locks.add(self)

    def _make_inner(self):
        return threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        # Who we are is asked before the lock is taken: one call fewer while holding it (a call is
        # where CPython may switch threads, and a holder switched out makes the others wait).
        me = _get_ident()
        if self._try(False):  # the fast path: free, take it, say nothing
            self._owner = me
            return True
        if not blocking:
            return False
        return self._wait(timeout)

    def __enter__(self) -> bool:
        # acquire() again, inlined: a with-statement is the hot loop's whole cost.
        me = _get_ident()
        if self._try(False):
            self._owner = me
            return True
        return self._wait(-1)

    def _wait(self, timeout: float) -> bool:
        """The slow path: the lock is taken. Wait for it, and write the wait if it is a real one.

        1. The wait is in the tables at once (:func:`waiting`, the wait-for graph): snapshots and
           the deadlock watch see it from its first instant.
        2. Give up the GIL a few times (``sleep(0)``) before sleeping on the lock. In CPython the
           holder of a busy lock was most likely switched out while holding it (at a call inside
           its ``with``) and only needs a turn to let go. A thread asleep *on the lock* instead
           turns every later release into a wake-up that the releasing thread, still running,
           wins by taking the lock again; the sleeper sleeps again, and each release pays a
           system call: a convoy that made a 4-thread counter loop three to six times slower.
           A wait that ends here is not written: its thread only waited for its turn on the GIL,
           as every runnable thread does, and a hot loop makes thousands of them.
        3. Still taken: sleep on the lock. That is a real wait (the holder is sleeping, doing I/O
           or a long piece of work), written as ``sync`` and ``state`` events dated when it began.
           So is a wait that :func:`waiting` showed to anyone, however short.
        """
        if timeout < 0 and timeout != -1:
            raise ValueError("timeout value must be positive")  # as threading.Lock says it
        me, since, looks = _get_ident(), _monotonic(), traced_state._looks
        deadline = None if timeout == -1 else since + timeout
        _waiting_on[me] = self  # for find_cycle: whose lock we wait for
        _waiting[me] = (self.name, "waiting-lock", since)
        written = False  # whether the wait's start is out as events
        outcome = ""
        try:
            ok = self._yield_to_holder(since, deadline)
            if not ok and (deadline is None or _monotonic() < deadline):
                written = True
                _wait_began(self.name, since)
                ok = self._try(True, -1 if deadline is None else max(0.0, deadline - _monotonic()))
            if ok:
                self._owner = me
            outcome = "acquired" if ok else "timeout"
        except BaseException as exc:  # KeyboardInterrupt in the wait: it ends the wait too
            outcome = type(exc).__name__
            raise
        finally:
            _waiting_on.pop(me, None)
            with _look_lock:
                _waiting.pop(me, None)
                looked = traced_state._looks != looks  # rebound there: read it there
            if looked and not written:
                written = True
                _wait_began(self.name, since)
            if written:
                _wait_ended(self.name, outcome, timeout)
        return ok

    def _yield_to_holder(self, since: float, deadline: float | None) -> bool:
        """Step 2 of :meth:`_wait`: True if the lock came free while we let the others run."""
        end = since + YIELD_FOR if deadline is None else min(since + YIELD_FOR, deadline)
        for _ in range(YIELDS):
            if _monotonic() >= end:
                break
            _sleep(0)
            if self._try(False):
                return True
        return False

    def release(self) -> None:
        self._owner = None
        self._release()  # an unlocked lock raises RuntimeError, as the original does

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._owner = None
        self._release()

    def locked(self) -> bool:
        return self._inner.locked()

    def owner(self) -> int | None:
        """The ident of the thread holding the lock now, or None."""
        return self._owner

    # threading.Condition uses these when its lock provides them.
    def _is_owned(self) -> bool:
        return self._owner == _get_ident()

    def __repr__(self) -> str:
        return f"<traced {self._kind} {self.name!r} {'locked' if self.locked() else 'unlocked'}>"


class RLock(Lock):
    """``threading.RLock`` with a name: its owner may take it again, and must release as often."""

    __slots__ = ("_depth",)
    _kind = "rlock"

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self._depth = 0  # guarded by the lock itself: only the owner changes it

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        # Lock.acquire inlined (a Condition's default lock is an RLock: hot loops take it too).
        me = _get_ident()
        if self._owner == me:
            self._depth += 1
            return True
        if self._try(False):
            self._owner = me
        elif not blocking or not self._wait(timeout):
            return False
        self._depth = 1
        return True

    __enter__ = acquire

    def release(self) -> None:
        if self._owner != _get_ident():
            raise RuntimeError("cannot release un-acquired lock")
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._release()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # release() again, inlined (as Lock.__enter__ inlines acquire()): one call fewer per with.
        if self._owner != _get_ident():
            raise RuntimeError("cannot release un-acquired lock")
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._release()

    def _release_save(self) -> int:
        # Condition.wait on an RLock must release every level and restore them afterwards.
        depth, self._depth = self._depth, 1
        self.release()
        return depth

    def _acquire_restore(self, depth: int) -> None:
        Lock.acquire(self)
        self._depth = depth


class Condition:
    """``threading.Condition`` over a traced lock, reporting waits and notifies."""

    def __init__(self, lock: Lock | None = None, name: str | None = None) -> None:
        self.name = _auto_name("condition", name)
        self.lock = lock if lock is not None else RLock(f"{self.name}.lock")
        self._inner = threading.Condition(self.lock)

    def __enter__(self) -> bool:
        return self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()

    def acquire(self, *args: Any) -> bool:
        return self.lock.acquire(*args)

    def release(self) -> None:
        self.lock.release()

    def wait(self, timeout: float | None = None) -> bool:
        with _Blocking(self.name, "waiting-condition") as wait:
            notified = self._inner.wait(timeout)
            wait.outcome = "notified" if notified else "timeout"
        return notified

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        # The same loop as threading.Condition.wait_for, so each wait is traced.
        deadline = None if timeout is None else time.monotonic() + timeout
        result = predicate()
        while not result:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            self.wait(remaining)
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        _sync("notify", self.name, n=n)
        self._inner.notify(n)

    def notify_all(self) -> None:
        _sync("notify", self.name, n="all")
        self._inner.notify_all()

    notifyAll = notify_all  # noqa: N815 - threading's old alias, still callable there

    def _is_owned(self) -> bool:
        return self._inner._is_owned()  # type: ignore[attr-defined]
