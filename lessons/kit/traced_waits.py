"""Traced ``Semaphore``, ``BoundedSemaphore``, ``Event``, ``Barrier`` and ``Thread.join``: the
waits that are not on a lock (those are in :mod:`.traced`). Re-exported by :mod:`.traced`; the
tables they keep are :mod:`.traced_state`'s.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from . import events
from .traced_state import _auto_name, _Blocking, _gave, _sync, _took


def _acquire(
    name: str, inner: Any, blocking: bool, timeout: Any, taken: Callable[[int], None]
) -> bool:
    """The traced acquire of a semaphore: silent when free, reported when it waits."""
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
