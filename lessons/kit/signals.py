"""App-level signals and slots, the Qt way, in pure Python: :class:`Signal` and :class:`EventLoop`.

Nothing to do with POSIX signals (the :mod:`signal` module, lesson 10): a ``Signal`` is an object
that producers ``emit`` and consumers ``connect`` to, so neither needs to know the other.

- **Direct** (the default, Qt's ``DirectConnection``): ``sig.connect(stats.count)``; ``emit`` calls
  the slot at once, in the emitting thread. Threads may emit at once: the slot must be thread-safe.
- **Queued** (Qt's ``QueuedConnection``): ``sig.connect(ui.show, loop=ui_loop)``; ``emit`` posts the
  call into an :class:`EventLoop` and returns; the one thread running that loop makes the call. The
  slot's object is touched by one thread only and needs no lock: how a worker feeds a UI thread.

A bound method is held through :class:`weakref.WeakMethod`, so connecting does not keep its object
alive: once the object is garbage-collected its slot is dropped silently, no ``disconnect`` needed.
Plain functions and lambdas are held strongly, since often nothing else holds them.
"""

from __future__ import annotations

import functools
import inspect
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["EventLoop", "Signal"]

Slot = Callable[..., Any]
_log = logging.getLogger("threadlab.kit.signals")


def _call(slot: Slot, args: tuple, kwargs: dict, origin: str) -> None:
    """Call one slot; its exception is logged and stops nothing else."""
    try:
        slot(*args, **kwargs)
    except Exception:
        _log.exception("slot %s of %s raised; the other slots still run", _describe(slot), origin)


def _describe(slot: Slot) -> str:
    target = getattr(slot, "func", slot)  # a queued call is a functools.partial around the slot
    return getattr(target, "__qualname__", repr(target))


def _strong(slot: Slot) -> Callable[[], Slot]:
    return lambda: slot


class EventLoop:
    """A queue of calls run by one receiving thread: where queued slots are delivered.

    Any thread may :meth:`post`; only the thread that calls :meth:`run` or :meth:`process_pending`
    runs the calls, one at a time, in the order they were posted.
    """

    POLL = 0.05  # seconds run() waits for a call before re-checking stop: its worst-case stop delay

    def __init__(self, name: str = "loop") -> None:
        self.name = name
        # Posted to by any thread; get() only by the thread running the loop. Unbounded on purpose:
        # post() must never block an emitter (a full queue would make emit wait for the UI).
        self._calls: queue.Queue[Callable[[], Any]] = queue.Queue()

    def post(self, call: Callable[[], Any]) -> None:
        """Queue ``call`` to run in the loop's thread; returns at once."""
        self._calls.put(call)

    def process_pending(self, timeout: float = 0.0) -> int:
        """Run the queued calls, first waiting up to ``timeout`` s for one; return how many ran."""
        ran = 0
        try:
            call = self._calls.get(timeout=timeout) if timeout > 0 else self._calls.get_nowait()
            while True:
                _call(call, (), {}, f"loop {self.name}")
                ran += 1
                call = self._calls.get_nowait()
        except queue.Empty:
            return ran

    def run(self, stop: threading.Event | None = None, timeout: float | None = None) -> int:
        """Run posted calls until ``stop`` is set or ``timeout`` s pass; return how many ran.

        Calls posted before ``stop`` was set still run: the loop drains its queue before returning.
        One of ``stop`` and ``timeout`` is required, so a loop can never run forever by mistake.
        """
        if stop is None and timeout is None:
            raise ValueError("run() needs a stop event or a timeout")
        deadline = None if timeout is None else time.monotonic() + timeout
        ran = 0
        while stop is None or not stop.is_set():
            left = self.POLL if deadline is None else min(self.POLL, deadline - time.monotonic())
            if left <= 0:
                break
            ran += self.process_pending(left)
        return ran + self.process_pending()


class _Connection(NamedTuple):
    slot: Callable[[], Slot | None]  # returns the slot, or None once its object is gone
    loop: EventLoop | None  # None: direct; else: queued into this loop


class Signal:
    """A thread-safe signal: ``connect`` slots, ``emit`` to call (or queue) them all."""

    def __init__(self, name: str = "signal") -> None:
        self.name = name
        # Guards _connections. Held only to change or copy the list, never while a slot runs: a slot
        # may connect, disconnect or emit (even this signal), and it would deadlock on this Lock.
        self._lock = threading.Lock()
        self._connections: list[_Connection] = []

    def connect(self, slot: Slot, loop: EventLoop | None = None) -> None:
        """Call ``slot`` on every emit: directly, or queued into ``loop``'s thread when given."""
        if inspect.ismethod(slot):
            ref: Callable[[], Slot | None] = weakref.WeakMethod(slot)
        else:
            ref = _strong(slot)  # a function or lambda: often nothing else holds it
        with self._lock:
            self._connections.append(_Connection(ref, loop))

    def disconnect(self, slot: Slot) -> bool:
        """Remove one connection of ``slot``; return False if it was not connected."""
        with self._lock:
            for i, connection in enumerate(self._connections):
                # Bound methods are equal when object and function are.
                if connection.slot() == slot:
                    del self._connections[i]
                    return True
        return False

    def emit(self, *args: Any, **kwargs: Any) -> int:
        """Call every direct slot now, post every queued one; return how many were reached."""
        with self._lock:
            connections = self._live()
        reached = 0
        for connection in connections:  # outside the lock: see __init__
            slot = connection.slot()
            if slot is None:
                continue  # its object was collected after we copied the list
            if connection.loop is None:
                _call(slot, args, kwargs, f"signal {self.name}")
            else:
                connection.loop.post(functools.partial(slot, *args, **kwargs))
            reached += 1
        return reached

    def __len__(self) -> int:
        """The number of live connections (dead weak ones are dropped first)."""
        with self._lock:
            return len(self._live())

    def _live(self) -> list[_Connection]:
        # Dead weak references are pruned here, under the lock, rather than by a weakref callback:
        # the garbage collector may run that callback in any thread, even one holding our lock.
        self._connections = [c for c in self._connections if c.slot() is not None]
        return list(self._connections)
