"""Traced synchronisation primitives: drop-in ``Lock``, ``RLock``, ``Condition``, ``Semaphore``,
``BoundedSemaphore`` and ``Event`` that carry a name and tell the dashboard who holds what.

They behave exactly like the :mod:`threading` originals (they wrap them). Each also keeps two facts
in the module's tables, which the sampler reads into every ``threads`` snapshot:

- ``_holds[ident]``: names of the primitives a thread holds, in the order it took them;
- ``_waiting[ident]``: ``(name, state, since)`` for a thread blocked in one of them.

The tables are plain dicts and lists changed by single operations (``append``, ``remove``,
``pop``), which the GIL makes atomic (free-threaded builds lock each dict and list per operation),
so the uncontended path takes no extra lock: a hot loop over a traced lock costs a few hundred
nanoseconds more than a bare one, and lesson 05's race still shows. That holds only while no code
tests an entry and then acts on it as a second step; readers copy (``holds``) or read once
(``waiting``), and ``_gave`` removes and handles "was not there" instead of checking first.
Only operations that matter are written as ``sync`` events: a wait that blocks, the acquire that
ends it, a timeout, a notify, a set. A wait that blocks is also written as two ``state`` events
(its thread's state when the wait begins, ``running`` with the ``outcome`` when it ends), and its
end is remembered in :data:`_recent` so the deadlock watch can tell *how* a cycle broke.

:func:`install_join` makes ``Thread.join`` one more traced wait (``waiting-join``, ``obj`` the
joined thread's name); ``kit.setup`` installs it in JSON mode only.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from . import events

_holds: dict[int, list[str]] = {}
_waiting: dict[int, tuple[str, str, float]] = {}
_owners: dict[str, int] = {}  # lock/rlock name → ident of its owner (for the wait-for graph)
_counter = itertools.count(1)


class WaitEnd(NamedTuple):
    """How one blocking wait ended (see :data:`_recent`)."""

    at: float  # time.monotonic()
    ident: int
    thread: str
    obj: str
    outcome: str  # acquired, notified, set, joined, timeout, or the type of what the wait raised


# The last blocking waits to end, oldest first: appended by each waiting thread as its wait ends
# (one append: atomic under the GIL, per-object locked without it), read only as a whole copy
# (recent_waits), never iterated in place. maxlen keeps it small: the deadlock watch looks back
# one sample interval (0.1 s), far fewer than 1024 ended waits even in a contended lesson.
_recent: collections.deque[WaitEnd] = collections.deque(maxlen=1024)


def recent_waits() -> list[WaitEnd]:
    """A copy of the blocking waits that ended lately, oldest first."""
    return list(_recent.copy())  # copy() is one C call: no "deque mutated during iteration"


def _auto_name(kind: str, name: str | None) -> str:
    return name or f"{kind}-{next(_counter)}"


def _sync(op: str, obj: str, **extra: Any) -> None:
    if events.enabled():
        events.emit("sync", op=op, obj=obj, thread=threading.current_thread().name, **extra)


def holds(ident: int) -> list[str]:
    """Names of the traced primitives the thread ``ident`` holds."""
    return list(_holds.get(ident, ()))


def waiting(ident: int) -> tuple[str, str, float] | None:
    """``(name, state, since)`` when thread ``ident`` is blocked in a traced primitive."""
    return _waiting.get(ident)


def _took(ident: int, name: str) -> None:
    _holds.setdefault(ident, []).append(name)


def _gave(ident: int, name: str) -> None:
    # Each step is one remove() that either happens or raises, never "is it there? then remove":
    # another thread releasing the same semaphore may take the name out of this very list between
    # the two, and the second remove() would raise out of release().
    held = _holds.get(ident)
    if held is not None:
        try:
            held.remove(name)
            return
        except ValueError:
            pass
    # A semaphore may be released by a thread that did not acquire it: drop it from any holder.
    for other in list(_holds.values()):
        try:
            other.remove(name)
            return
        except ValueError:
            continue


def _state(thread: threading.Thread, state: str, obj: str, **extra: Any) -> None:
    if events.enabled():
        events.emit(
            "state", thread=thread.name, ident=thread.ident, state=state, obj=obj, **extra
        )


class _Blocking:
    """Marks the current thread as waiting for ``name`` while the ``with`` body blocks.

    Only entered once the wait is known to block (the fast paths never get here), so its cost
    (two ``state`` events, a ``sync`` one) is paid by waits that are slow anyway. The body sets
    ``outcome`` before it leaves; a wait that raises ends with the exception's type instead.
    """

    def __init__(self, name: str, state: str, sync: bool = True) -> None:
        self.name, self.state, self.sync = name, state, sync
        self.outcome = ""

    def __enter__(self) -> _Blocking:
        self.thread = threading.current_thread()
        self.ident = threading.get_ident()
        _waiting[self.ident] = (self.name, self.state, time.monotonic())
        if self.sync:
            _sync("wait", self.name, state=self.state)
        _state(self.thread, self.state, self.name)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        # Out of the wait-for graph first, so the deadlock watch never sees a wait that is over.
        _waiting.pop(self.ident, None)
        outcome = exc_type.__name__ if exc_type is not None else self.outcome
        _recent.append(WaitEnd(time.monotonic(), self.ident, self.thread.name, self.name, outcome))
        _state(self.thread, "running", self.name, outcome=outcome)


def _acquire(
    name: str, inner: Any, blocking: bool, timeout: Any, taken: Callable[[int], None]
) -> bool:
    """The traced acquire of locks and semaphores: silent when free, reported when it waits."""
    me = threading.get_ident()
    if inner.acquire(False):  # the fast path: free, take it, say nothing
        taken(me)
        return True
    if not blocking:
        return False
    with _Blocking(name, "waiting-lock") as wait:
        ok = inner.acquire(True, timeout)
        wait.outcome = "acquired" if ok else "timeout"
    if ok:
        taken(me)
        _sync("acquired", name)
    else:
        _sync("timeout", name, timeout=timeout)
    return ok


class Lock:
    """``threading.Lock`` with a name and an owner the dashboard can see."""

    _kind = "lock"

    def __init__(self, name: str | None = None) -> None:
        self.name = _auto_name(self._kind, name)
        self._inner = self._make_inner()
        self._owner: int | None = None

    def _make_inner(self):
        return threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return _acquire(self.name, self._inner, blocking, timeout, self._taken)

    def _taken(self, me: int) -> None:
        self._owner = me
        _owners[self.name] = me
        _took(me, self.name)

    def release(self) -> None:
        me = threading.get_ident()
        self._owner = None
        _owners.pop(self.name, None)
        _gave(me, self.name)
        self._inner.release()

    def locked(self) -> bool:
        return self._inner.locked()

    # threading.Condition uses these when its lock provides them.
    def _is_owned(self) -> bool:
        return self._owner == threading.get_ident()

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<traced {self._kind} {self.name!r} {'locked' if self.locked() else 'unlocked'}>"


class RLock(Lock):
    """``threading.RLock`` with a name: its owner may take it again, and must release as often."""

    _kind = "rlock"

    def __init__(self, name: str | None = None) -> None:
        super().__init__(name)
        self._depth = 0  # guarded by the lock itself: only the owner changes it

    def _make_inner(self):
        return threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._owner == threading.get_ident():
            self._depth += 1
            return True
        ok = super().acquire(blocking, timeout)
        if ok:
            self._depth = 1
        return ok

    __enter__ = acquire

    def release(self) -> None:
        if self._owner != threading.get_ident():
            raise RuntimeError("cannot release un-acquired lock")
        self._depth -= 1
        if self._depth == 0:
            super().release()

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


class Semaphore:
    """``threading.Semaphore`` with a name; every thread inside counts as a holder."""

    _kind = "semaphore"

    def __init__(self, value: int = 1, name: str | None = None) -> None:
        self.name = _auto_name(self._kind, name)
        self._inner = self._make_inner(value)

    def _make_inner(self, value: int):
        return threading.Semaphore(value)

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        return _acquire(self.name, self._inner, blocking, timeout, lambda me: _took(me, self.name))

    __enter__ = acquire

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            _gave(threading.get_ident(), self.name)
        self._inner.release(n)

    def __exit__(self, *exc: object) -> None:
        self.release()


class BoundedSemaphore(Semaphore):
    """``threading.BoundedSemaphore``: releasing more than was acquired raises ``ValueError``."""

    def _make_inner(self, value: int):
        return threading.BoundedSemaphore(value)


class Event:
    """``threading.Event`` with a name, reporting ``set`` and blocking waits."""

    def __init__(self, name: str | None = None) -> None:
        self.name = _auto_name("event", name)
        self._inner = threading.Event()

    def is_set(self) -> bool:
        return self._inner.is_set()

    def set(self) -> None:
        _sync("set", self.name)
        self._inner.set()

    def clear(self) -> None:
        self._inner.clear()

    def wait(self, timeout: float | None = None) -> bool:
        # Only saves reporting a wait that would not block: if the event is set just after this
        # check, the wait below returns at once, so the check decides nothing that matters.
        if self._inner.is_set():
            return True
        with _Blocking(self.name, "waiting-event") as wait:
            is_set = self._inner.wait(timeout)
            wait.outcome = "set" if is_set else "timeout"
        return is_set


def find_cycle() -> list[dict[str, Any]] | None:
    """A cycle in the wait-for graph of traced locks, as ``[{thread, holds, waits_for}, ...]``.

    Thread A waits for lock L whose owner is B: an edge A → B (A → A when a thread asks again for a
    plain Lock it holds: a deadlock of one). Only locks count (one owner each);
    a semaphore's many holders would make cycles that are not deadlocks.
    """
    found = find_cycle_detail()
    return found.cycle if found is not None else None


class Cycle(NamedTuple):
    cycle: list[dict[str, Any]]  # as find_cycle() returns it
    idents: list[int]  # the threads of ``cycle``, in the same order
    since: float  # time.monotonic() when the last of its waits began: when the cycle formed


def find_cycle_detail() -> Cycle | None:
    """:func:`find_cycle`, plus the threads' idents and when the cycle formed."""
    edges: dict[int, tuple[int, str, float]] = {}
    # One copy of _waiting, then only the copy is read: each entry is one consistent wait.
    for ident, (name, state, since) in list(_waiting.items()):
        owner = _owners.get(name)
        if state == "waiting-lock" and owner is not None:
            # owner == ident: a thread waiting for itself (plain Lock)
            edges[ident] = (owner, name, since)
    for start in edges:
        path, seen = [start], {start}
        node = start
        while node in edges:
            node = edges[node][0]
            if node == start:
                return Cycle(
                    [_cycle_entry(ident, edges[ident][1]) for ident in path],
                    path,
                    max(edges[ident][2] for ident in path),
                )
            if node in seen:
                break
            seen.add(node)
            path.append(node)
    return None


def _cycle_entry(ident: int, waits_for: str) -> dict[str, Any]:
    names = {t.ident: t.name for t in threading.enumerate()}
    return {"thread": names.get(ident, str(ident)), "holds": holds(ident), "waits_for": waits_for}


# Thread.join as a traced wait. Installed and removed only by kit.setup(), always under
# kit._sampler_lock: one writer, so "installed already?" below is no race. The original is kept on
# the wrapper itself, so a second install (setup() again, or this module imported afresh) wraps the
# original again instead of wrapping a wrapper: joins never report twice.
_WRAPS = "__threadlab_wraps__"


def install_join() -> None:
    """Make ``threading.Thread.join`` report a join that blocks (``waiting-join``)."""
    original = getattr(threading.Thread.join, _WRAPS, threading.Thread.join)

    def join(self: threading.Thread, timeout: float | None = None) -> None:
        if not events.enabled() or _is_kit(self) or _is_kit(threading.current_thread()):
            return original(self, timeout)
        # A join that would not block says nothing, like an uncontended acquire. The probe also
        # raises what a real join raises (not started, joining oneself) before anything is said.
        original(self, 0)
        if not self.is_alive() or (timeout is not None and timeout <= 0):
            return None
        # The thread may end right here, before the wait below: then the report is of a wait that
        # lasted microseconds, still true, and nothing is decided by the check above.
        with _Blocking(self.name, "waiting-join", sync=False) as wait:
            original(self, timeout)
            wait.outcome = "timeout" if self.is_alive() else "joined"
        return None

    setattr(join, _WRAPS, original)
    join.__doc__ = original.__doc__
    threading.Thread.join = join  # type: ignore[method-assign]


def uninstall_join() -> None:
    """Put the original ``Thread.join`` back (text mode, or after tests)."""
    threading.Thread.join = getattr(  # type: ignore[method-assign]
        threading.Thread.join, _WRAPS, threading.Thread.join
    )


def _is_kit(thread: threading.Thread) -> bool:
    return thread.name.startswith("threadlab-")
