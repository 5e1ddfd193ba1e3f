"""A lane: one thread's life in a run, as the view model keeps it (app/viewmodel.py) and the
timeline draws it: its state changes and its snapshot samples, in compact columns.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_right
from collections import Counter
from typing import Any


def as_text(value: Any, default: str = "?") -> str:
    if isinstance(value, str):
        return sys.intern(value) if len(value) < 64 else value  # states and names repeat: share them
    return default if value is None else str(value)


def as_names(value: Any) -> tuple:
    if isinstance(value, list):
        return tuple(as_text(v) for v in value)
    return () if value is None else (as_text(value),)


class Lane:
    """One thread's life. ``ct``/``cs``/``co``: state changes (time, state, and the object a ``state``
    event named, else None); ``st``/``si``: snapshot samples (time, (where, line, holds,
    waiting_for)) kept only when they differ from the previous one."""

    __slots__ = ("name", "display", "ident", "native", "daemon", "start", "end", "crash", "claimed",
                 "seen", "by_event", "traced", "ct", "cs", "co", "st", "si", "marks")

    def __init__(self, name: str, ident: Any, start: float, claimed: bool = True) -> None:
        self.name, self.display, self.ident, self.native = name, name, ident, None
        self.daemon, self.start, self.end, self.crash = False, start, None, None
        self.claimed = claimed  # False: a lane made for marks of a thread no snapshot has named yet
        self.seen = self.by_event = self.traced = False
        self.ct, self.cs, self.co = array("d"), [], []
        self.st, self.si = array("d"), []
        self.marks: list[tuple[float, str, str]] = []

    def change(self, t: float, state: str, obj: str | None = None) -> bool:
        if self.cs and self.cs[-1] == state:
            return False
        self.ct.append(max(t, self.ct[-1]) if self.ct else t)  # monotone, for bisect: t may jitter
        self.cs.append(state)
        self.co.append(obj)
        return True

    def waiting_for(self, t: float, sampled: Any) -> Any:
        """What the thread waits for at ``t``: a ``state`` event's object when that event is newer
        than the last sample (a sample is up to an interval late: "Event.wait" while it joins)."""
        i = bisect_right(self.ct, t) - 1
        j = bisect_right(self.st, t) - 1
        if i >= 0 and self.co[i] is not None and (j < 0 or self.ct[i] >= self.st[j]):
            return self.co[i] if self.cs[i] != "running" else None
        return sampled

    def state_at(self, t: float) -> str:
        i = bisect_right(self.ct, t) - 1
        return self.cs[i] if i >= 0 else "running"


def segments(lane: Lane, a: float, stop: float, step: float) -> list[tuple[float, float, str, int]]:
    """The lane's states from ``a`` to ``stop`` (epoch seconds) as ``(start, end, state, changes)``;
    changes closer together than ``step`` are one segment of the state seen most in it."""
    ct, cs, out = lane.ct, lane.cs, []
    t = max(a, lane.start)
    n = bisect_right(ct, t)  # ct[n] is the first change after t

    def put(s0: float, s1: float, state: str, changes: int) -> None:
        if state in ("done", "crashed"):
            return  # the lane has ended: its mark says how
        if out and out[-1][2] == state:
            out[-1] = (out[-1][0], s1, state, out[-1][3] + changes)
        else:
            out.append((s0, s1, state, changes))

    while True:
        nxt = ct[n] if n < len(ct) else stop
        if nxt >= stop or nxt - t >= step:
            end, state, changes = min(nxt, stop), cs[n - 1] if n else "running", 0
        else:
            end = min(t + step, stop)
            m = bisect_right(ct, end, n)
            state, changes = Counter(cs[max(n - 1, 0):m]).most_common(1)[0][0], m - n
        put(t, end, state, changes)
        if end >= stop:
            last = bisect_right(ct, stop)
            if last and (not out or out[-1][2] != cs[last - 1]):
                put(stop, stop, cs[last - 1], 0)  # changed at the very end: the latest state, drawn thin
            return out
        t, n = end, bisect_right(ct, end, n)
