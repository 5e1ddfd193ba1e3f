"""Step mode's ``Queue``: a sync point before each ``put``, ``get`` and ``join``, and waits that the
stepper wakes (oldest first) and times on the step clock."""

from __future__ import annotations

import queue
from typing import Any

from . import traced
from .step_wrap import Patch, original, stepping_here


def _queue_get(self: traced.Queue, block: bool = True, timeout: float | None = None) -> Any:
    stepper = stepping_here()
    get = original(traced._TracedQueue, "get")
    if stepper is None:
        return get(self, block, timeout)
    stepper.sync("get", self.name, "queue")
    if not block:
        return get(self, False)
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    try:
        return get(self, False)
    except queue.Empty:
        pass
    got: list[Any] = []

    def attempt() -> bool:
        try:
            got.append(get(self, False))
            return True
        except queue.Empty:
            return False

    with traced._Blocking(self.name, "waiting-queue") as wait:
        if not stepper.block(self.name, "waiting-queue", lambda: self._qsize() > 0, attempt,
                             timeout):
            wait.outcome = "timeout"
            raise queue.Empty
        wait.outcome = "got"
    return got[0]


def _queue_put(self: traced.Queue, item: Any, block: bool = True,
               timeout: float | None = None) -> None:
    stepper = stepping_here()
    put = original(traced._TracedQueue, "put")
    if stepper is None:
        return put(self, item, block, timeout)
    stepper.sync("put", self.name, "queue")
    if not block:
        return put(self, item, False)
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")
    try:
        return put(self, item, False)
    except queue.Full:
        pass

    def attempt() -> bool:
        try:
            put(self, item, False)
            return True
        except queue.Full:
            return False

    with traced._Blocking(self.name, "waiting-queue") as wait:
        if not stepper.block(self.name, "waiting-queue",
                             lambda: not 0 < self.maxsize <= self._qsize(), attempt, timeout):
            wait.outcome = "timeout"
            raise queue.Full
        wait.outcome = "put"
    return None


def _queue_join(self: traced.Queue) -> None:
    stepper = stepping_here()
    if stepper is None:
        return original(traced._TracedQueue, "join")(self)
    stepper.sync("join", self.name, "queue")
    if not self.unfinished_tasks:
        return None
    with traced._Blocking(self.name, "waiting-queue") as wait:
        stepper.block(self.name, "waiting-queue", lambda: not self.unfinished_tasks)
        wait.outcome = "joined"
    return None


PATCHES: list[Patch] = [
    (traced._TracedQueue, "get", _queue_get),
    (traced._TracedQueue, "put", _queue_put),
    (traced._TracedQueue, "join", _queue_join),
]
