"""The tables behind the traced primitives (:mod:`.traced`), and how their waits are reported.

Each traced primitive keeps two facts in this module's tables, which the sampler reads into every
``threads`` snapshot:

- ``_holds[ident]``: names of the primitives a thread holds, in the order it took them;
- ``_waiting[ident]``: ``(name, state, since)`` for a thread blocked in one of them.

(A ``Lock``/``RLock`` keeps its owner on itself instead, for speed: see :class:`.traced.Lock`.)
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
:meth:`.traced.Lock._wait`.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, NamedTuple

from . import events

if TYPE_CHECKING:
    from .traced import Lock

_holds: dict[int, list[str]] = {}  # semaphores only: a lock knows its owner itself (see Lock)
_waiting: dict[int, tuple[str, str, float]] = {}
# ident → the traced Lock/RLock it is blocked on, set and removed by that thread alone around its
# wait (one dict operation each): with the lock's owner, the wait-for graph's edges.
_waiting_on: dict[int, Lock] = {}
# Every traced Lock/RLock alive. Added to by each lock's maker (one set.add), emptied of dead ones
# by the garbage collector's callbacks; read only through _live_locks().
_locks: weakref.WeakSet[Lock] = weakref.WeakSet()
_counter = itertools.count(1)
_monotonic = time.monotonic

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
