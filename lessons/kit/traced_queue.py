"""Traced ``queue.Queue``, ``LifoQueue`` and ``PriorityQueue``. Re-exported by :mod:`.traced`."""

from __future__ import annotations

import queue
from typing import Any

from .traced_state import _auto_name, _Blocking


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
