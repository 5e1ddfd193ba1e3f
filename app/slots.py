"""The cap on live runs: at most ``max_live`` at once, and a way to wait for one to end.

:class:`Slots` owns, under its one lock:

- ``_held``: the ids of the runs holding a slot. A slot is taken in the same step as the cap is
  checked (two requests cannot both get the last one) and given back by the run's supervisor as
  its last act, whatever ended the run: a run that could not start never holds a slot;
- ``_releases``: how many times a slot was given back (or waiters poked). ``_freed``, a Condition
  on the same lock, is notified with each; an experiment's scheduler (app/experiments.py) waits on
  it for a free slot or its runs' ends instead of polling;
- ``_closing``: set once at shutdown; no slot is taken after it.

The lock is a leaf: nothing else is locked while it is held, so the run manager may call in here
with or without its own lock.
"""

from __future__ import annotations

import threading


class RunLimitError(RuntimeError):
    """Too many runs at once, or the server is stopping; the API answers 429."""


class Slots:
    def __init__(self, max_live: int) -> None:
        self.max_live = max_live
        self._lock = threading.Lock()  # guards _held, _releases and _closing
        self._freed = threading.Condition(self._lock)  # notified when _releases grows or at close
        self._held: set[str] = set()
        self._releases = 0
        self._closing = False

    def take(self, run_id: str, reserve: int = 0) -> None:
        """A slot for ``run_id``, leaving ``reserve`` free; RunLimitError if there is none."""
        with self._lock:
            if self._closing:
                raise RunLimitError("the server is shutting down")
            if len(self._held) >= self.max_live - reserve:
                raise RunLimitError(f"at most {self.max_live} runs at once; stop one first")
            self._held.add(run_id)

    def give_back(self, run_id: str) -> None:
        """Free ``run_id``'s slot (again is harmless) and wake the waiters."""
        with self._lock:
            self._held.discard(run_id)
            self._releases += 1
            self._freed.notify_all()

    def poke(self) -> None:
        """Wake every :meth:`wait_released` as if a slot had been given back."""
        with self._lock:
            self._releases += 1
            self._freed.notify_all()

    def held(self) -> frozenset[str]:
        """The runs holding a slot now. A copy: a run not in it is ended or was not yet started."""
        with self._lock:
            return frozenset(self._held)

    def releases(self) -> int:
        with self._lock:
            return self._releases

    def wait_released(self, seen: int, timeout: float | None) -> int:
        """Block until the release count moves on from ``seen`` (or shutdown, or ``timeout``)."""
        with self._freed:
            self._freed.wait_for(lambda: self._releases != seen or self._closing, timeout)
            return self._releases

    def close(self) -> frozenset[str]:
        """No slot is taken from now on; wake every waiter; the runs holding one (only fewer later)."""
        with self._lock:
            self._closing = True
            self._freed.notify_all()
            return frozenset(self._held)
