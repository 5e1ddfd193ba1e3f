"""Traced synchronisation primitives: drop-in ``Lock``, ``RLock``, ``Condition``, ``Semaphore``,
``BoundedSemaphore``, ``Event``, ``Barrier`` and ``Queue`` (also ``LifoQueue``, ``PriorityQueue``)
that carry a name and tell the dashboard who holds what.

They behave exactly like the :mod:`threading` originals (they wrap them). Each also keeps two facts
in the module's tables, which the sampler reads into every ``threads`` snapshot:

- ``_holds[ident]``: names of the primitives a thread holds, in the order it took them;
- ``_waiting[ident]``: ``(name, state, since)`` for a thread blocked in one of them.

(A ``Lock``/``RLock`` keeps its owner on itself instead, for speed: see :class:`Lock`.)
The tables are plain dicts and lists changed by single operations (``append``, ``remove``,
``pop``), which the GIL makes atomic (free-threaded builds lock each dict and list per operation),
so the uncontended path takes no extra lock: a hot loop over a traced lock costs about a hundred
nanoseconds more per ``with`` than a bare one, and lesson 05's race still shows. That holds only
while no code tests an entry and then acts on it as a second step; readers copy (``holds``) or
read once (``waiting``), and ``_gave`` removes and handles "was not there" instead of checking
first. Only operations that matter are written as ``sync`` events: a wait that blocks, the acquire
that ends it, a timeout, a notify, a set. A wait that blocks is also written as two ``state``
events (its thread's state when the wait begins, ``running`` with the ``outcome`` when it ends),
and its end is remembered in :data:`_recent` so the deadlock watch can tell *how* a cycle broke.
A ``Lock``/``RLock`` wait that ends while its thread is still letting the others run (before it
sleeps on the lock) is in the tables but not written, unless a snapshot showed it: see
:meth:`Lock._wait`.

:func:`install_join` makes ``Thread.join`` one more traced wait (``waiting-join``, ``obj`` the
joined thread's name); ``kit.setup`` installs it in JSON mode only.

Step mode (:mod:`.step`, only when it is on) puts its own versions over the blocking and waking
methods here (``acquire``, ``wait``, ``notify``, ``set``, ``put``/``get``, ...): a change to how one
of them blocks or what it reports belongs in its step-mode twin too.
"""

from __future__ import annotations

import collections
import itertools
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

from . import events

_holds: dict[int, list[str]] = {}  # semaphores only: a lock knows its owner itself (see Lock)
_waiting: dict[int, tuple[str, str, float]] = {}
# ident → the traced Lock/RLock it is blocked on, set and removed by that thread alone around its
# wait (one dict operation each): with the lock's owner, the wait-for graph's edges.
_waiting_on: dict[int, Lock] = {}
# Every traced Lock/RLock alive. Added to by each lock's maker (one set.add), emptied of dead ones
# by the garbage collector's callbacks; read only through _live_locks().
_locks: weakref.WeakSet[Lock] = weakref.WeakSet()
_counter = itertools.count(1)
_get_ident = threading.get_ident
_monotonic = time.monotonic
_sleep = time.sleep  # the real one, whatever a program or step mode does to time.sleep later

# A thread that finds a Lock/RLock taken gives up the GIL up to YIELDS times, for YIELD_FOR
# seconds at most, before it sleeps on the lock (see Lock._wait): enough for a holder that was
# switched out while holding it to run and let go, too short to hide a wait that matters.
YIELDS = 3
YIELD_FOR = 0.01

# _look_lock makes "read a thread's wait and count the look" (waiting()) one step against "take
# my wait out of the table and ask whether it was looked at" (Lock._wait). Invariant: a Lock wait
# that waiting() returned to anyone finds _looks changed when it ends, so it is written. A leaf
# lock: nothing is taken or written under it.
_look_lock = threading.Lock()
_looks = 0  # how many times waiting() read the table; only ever compared for "changed?"


class WaitEnd(NamedTuple):
    """How one blocking wait ended (see :data:`_recent`)."""

    at: float  # time.monotonic()
    ident: int
    thread: str
    obj: str
    # acquired, notified, set, joined, got, put, timeout, or the type of what the wait raised
    outcome: str


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


def _live_locks() -> list[Lock]:
    # list() of the underlying set of weak references is one C call, so another thread making a
    # lock meanwhile cannot break it ("set changed size during iteration" would, iterating the
    # WeakSet itself); a reference whose lock died since gives None.
    found = (ref() for ref in list(_locks.data))
    return sorted((lock for lock in found if lock is not None), key=lambda lock: lock._seq)


def holds(ident: int) -> list[str]:
    """Names of the traced primitives the thread ``ident`` holds (locks first, oldest first)."""
    return [lock.name for lock in _live_locks() if lock._owner == ident] + list(
        _holds.get(ident, ())
    )


def owner_of(name: str) -> int | None:
    """The ident of the thread holding the traced lock called ``name``, or None."""
    for lock in _live_locks():
        if lock.name == name and lock._owner is not None:
            return lock._owner
    return None


def waiting(ident: int) -> tuple[str, str, float] | None:
    """``(name, state, since)`` when thread ``ident`` is blocked in a traced primitive.

    What this returns is shown (a snapshot row), so a lock wait it returns will be written as
    events too, however short: the timeline never shows a wait with no end.
    """
    global _looks
    with _look_lock:
        wait = _waiting.get(ident)
        _looks += 1  # after the read: a wait put in the table before the read sees the change
    return wait


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


def _epoch(monotonic: float) -> float:
    """A ``time.monotonic()`` instant as epoch seconds, the clock of every event's ``t``."""
    return time.time() - (_monotonic() - monotonic)


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
        # An outcome the body set wins over the exception that follows it: a queue's timeout is
        # "timeout", though it leaves by raising Empty.
        outcome = self.outcome or (exc_type.__name__ if exc_type is not None else "")
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
        me, since, looks = _get_ident(), _monotonic(), _looks
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
                looked = _looks != looks
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


def _wait_began(name: str, since: float) -> None:
    """Write a lock wait's start, dated when it began (:meth:`Lock._wait` writes it late)."""
    if events.enabled():
        thread, t = threading.current_thread(), _epoch(since)
        events.emit("sync", t=t, op="wait", obj=name, thread=thread.name, state="waiting-lock")
        events.emit("state", t=t, thread=thread.name, ident=thread.ident, state="waiting-lock",
                    obj=name)


def _wait_ended(name: str, outcome: str, timeout: float) -> None:
    """Write a written lock wait's end; remember it for the deadlock watch (:data:`_recent`).

    Only written waits go into ``_recent``: a deadlock's waits sleep on their locks.
    """
    thread = threading.current_thread()
    _recent.append(WaitEnd(_monotonic(), thread.ident or 0, thread.name, name, outcome))
    _state(thread, "running", name, outcome=outcome)
    if outcome == "acquired":
        _sync("acquired", name)
    elif outcome == "timeout":
        _sync("timeout", name, timeout=timeout)


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


class Barrier:
    """``threading.Barrier`` with a name; a thread held at it is ``waiting-condition``.

    The last of the parties to arrive does not block, so its wait is not reported. Whether a wait
    will block is read from ``n_waiting`` before it begins: another thread arriving meanwhile can
    only make a wait we report end sooner, never make one we skip block.
    """

    def __init__(
        self,
        parties: int,
        action: Callable[[], Any] | None = None,
        timeout: float | None = None,
        name: str | None = None,
    ) -> None:
        self.name = _auto_name("barrier", name)
        self._inner = threading.Barrier(parties, action, timeout)

    def wait(self, timeout: float | None = None) -> int:
        inner = self._inner
        if inner.n_waiting + 1 >= inner.parties:
            return inner.wait(timeout)  # the last to arrive: it releases the others at once
        with _Blocking(self.name, "waiting-condition") as wait:
            index = inner.wait(timeout)  # BrokenBarrierError ends the wait with that outcome
            wait.outcome = "notified"
        return index

    def reset(self) -> None:
        self._inner.reset()

    def abort(self) -> None:
        self._inner.abort()

    @property
    def parties(self) -> int:
        return self._inner.parties

    @property
    def n_waiting(self) -> int:
        return self._inner.n_waiting

    @property
    def broken(self) -> bool:
        return self._inner.broken


class _TracedQueue:
    """What makes a :mod:`queue` class traced: ``get``/``put``/``join`` that block are reported as
    ``waiting-queue`` on the queue's name. Mixed in before the original class, so the queue's
    storage, locks and counts are the original's own (its lock and conditions are plain: created by
    ``queue``'s code). A call that does not block costs one failed-or-not non-blocking try first.
    """

    name: str

    def __init__(self, maxsize: int = 0, name: str | None = None) -> None:
        super().__init__(maxsize)  # type: ignore[call-arg]
        self.name = _auto_name(type(self).__name__.lower(), name)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if not block:
            return super().get(False)  # type: ignore[misc]
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        try:
            return super().get(False)  # type: ignore[misc]
        except queue.Empty:
            pass
        with _Blocking(self.name, "waiting-queue") as wait:
            try:
                item = super().get(True, timeout)  # type: ignore[misc]
            except queue.Empty:
                wait.outcome = "timeout"
                raise
            wait.outcome = "got"
        return item

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if not block:
            return super().put(item, False)  # type: ignore[misc]
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        try:
            return super().put(item, False)  # type: ignore[misc]
        except queue.Full:
            pass
        with _Blocking(self.name, "waiting-queue") as wait:
            try:
                super().put(item, True, timeout)  # type: ignore[misc]
            except queue.Full:
                wait.outcome = "timeout"
                raise
            wait.outcome = "put"
        return None

    def join(self) -> None:
        # Only saves reporting a join that would not block (as Event.wait does): deciding on a
        # stale count is harmless, the join below is the real one.
        if not self.unfinished_tasks:  # type: ignore[attr-defined]
            return
        with _Blocking(self.name, "waiting-queue") as wait:
            super().join()  # type: ignore[misc]
            wait.outcome = "joined"


class Queue(_TracedQueue, queue.Queue):
    """``queue.Queue`` with a name (see :class:`_TracedQueue`)."""


class LifoQueue(_TracedQueue, queue.LifoQueue):
    """``queue.LifoQueue`` with a name (see :class:`_TracedQueue`)."""


class PriorityQueue(_TracedQueue, queue.PriorityQueue):
    """``queue.PriorityQueue`` with a name (see :class:`_TracedQueue`)."""


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
        lock = _waiting_on.get(ident)
        owner = lock._owner if lock is not None else None
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
