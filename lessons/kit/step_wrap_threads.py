"""Step mode's ``Thread.start`` and ``Thread.join`` of lesson threads: sync points, and a join that
the stepper wakes and times on the step clock."""

from __future__ import annotations

import threading

from . import sampler as sampler_module
from . import step_stepper, traced
from .step_wrap import WRAPS, Patch, busy, original, stepping_here


def _thread_start(self: threading.Thread) -> None:
    stepper = step_stepper.current
    start = original(threading.Thread, "start")
    if stepper is None or not stepper.active or sampler_module.is_kit_thread(self):
        return start(self)
    with stepper.cv:
        stepper.started.add(self)
    if stepping_here() is None:  # started by a kit thread
        return start(self)
    stepper.sync("start", self.name, "thread")
    with busy(stepper):  # start() waits, untraced, for the new thread's first steps
        return start(self)


def _thread_join(self: threading.Thread, timeout: float | None = None) -> None:
    stepper = stepping_here()
    inner = original(threading.Thread, "join")  # maybe traced.install_join's wrapper
    if stepper is None or sampler_module.is_kit_thread(self):
        return inner(self, timeout)
    stepper.sync("join", self.name, "thread")
    base = getattr(inner, WRAPS, inner)
    base(self, 0)  # raises what a join raises (not started, joining oneself); never blocks
    if not self.is_alive() or (timeout is not None and timeout <= 0):
        return None
    with traced._Blocking(self.name, "waiting-join", sync=False) as wait:
        joined = stepper.block(self.name, "waiting-join", lambda: not self.is_alive(),
                               timeout=timeout)
        wait.outcome = "joined" if joined else "timeout"
    return None


_thread_join.__doc__ = threading.Thread.join.__doc__

PATCHES: list[Patch] = [
    (threading.Thread, "start", _thread_start),
    (threading.Thread, "join", _thread_join),
]


def mark_join_wraps() -> None:
    """traced.install_join (``kit.setup`` again) wraps what ``WRAPS`` names: threading's own
    join, not ours. Call after installing."""
    replaced = original(threading.Thread, "join")
    _thread_join.__dict__[WRAPS] = getattr(replaced, WRAPS, replaced)
