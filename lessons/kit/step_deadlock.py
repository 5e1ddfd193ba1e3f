"""Step mode's deadlock watch: exact and at once, at the first quiescent moment.

Held or blocked threads that wait for each other's traced locks in a cycle (a held thread waits
for the lock its pending acquire wants) are a deadlock; so is a run where nothing can move at all
and no timeout is pending (a *stall*). Reported in the sampler's shape (``deadlock`` events
``formed``, then ``broken``), with ``step: true``, ``stall`` and ``steps``; see :mod:`.step`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from . import events, traced
from . import sampler as sampler_module
from .step_survey import Survey

_log = logging.getLogger("threadlab.kit")


class Found:
    """One deadlock as reported: ``key`` tells whether a later look finds the same one."""

    __slots__ = ("key", "cycle", "idents", "since", "epoch", "stall")

    def __init__(self, key: Any, cycle: list[dict[str, Any]], idents: list[int],
                 stall: bool) -> None:
        self.key, self.cycle, self.idents, self.stall = key, cycle, idents, stall
        self.since, self.epoch = time.monotonic(), time.time()


class DeadlockWatch:
    """The deadlock reported and not over yet (``current``).

    Called only by the stepper under its lock, so ``formed`` and ``broken`` alternate in the event
    log; what must run outside that lock (logging) is appended to ``after``.
    """

    def __init__(self) -> None:
        self.current: Found | None = None

    def watch(self, survey: Survey, steps: int, after: list[Callable[[], Any]]) -> None:
        """At a quiescent moment: report a deadlock that formed, or the end of the last one."""
        edges: dict[int, tuple[int, str]] = {}
        for rec in survey.held:
            can, _, owner = survey.can[rec]
            if not can and owner is not None and rec.sync is not None and rec.thread.ident:
                edges[rec.thread.ident] = (owner, rec.sync["obj"])
        for rec in survey.blocked:
            wait = rec.wait
            owner = wait.lock._owner if wait is not None and wait.lock is not None else None
            if wait is not None and owner is not None and rec.thread.ident:
                edges[rec.thread.ident] = (owner, wait.obj)
        names = {thread.ident: thread.name for thread in threading.enumerate()}
        found = None
        cycle = _find_cycle(edges)
        if cycle:
            entries = [_entry(ident, edges[ident][1], names) for ident in cycle]
            key = ("cycle", frozenset((ident, edges[ident][1]) for ident in cycle))
            found = Found(key, entries, cycle, stall=False)
        elif survey.stuck and not survey.deadlines:
            stuck = [(rec.thread.ident, rec.sync["obj"] if rec.sync else "a step")
                     for rec in survey.held]
            stuck += [(rec.thread.ident, rec.wait.obj) for rec in survey.blocked if rec.wait]
            stuck += [(thread.ident, detail or state) for thread, state, detail, _ in
                      survey.untraced]
            entries = [_entry(ident, waits_for, names) for ident, waits_for in stuck]
            key = ("stall", frozenset(stuck))
            found = Found(key, entries, [ident for ident, _ in stuck], stall=True)
        old = self.current
        if old is not None and (found is None or found.key != old.key):
            self.end(_how(old), steps, after)
        if found is not None and (old is None or found.key != old.key):
            self.current = found
            events.emit("deadlock", op="formed", since=found.epoch, cycle=found.cycle, step=True,
                        stall=found.stall, steps=steps)
            story = sampler_module.cycle_story(found.cycle)
            after.append(lambda: _log.error("DEADLOCK detected%s: %s",
                                            " (nothing can move)" if found.stall else "", story))

    def watch_break(self, survey: Survey, steps: int, after: list[Callable[[], Any]]) -> None:
        """While threads run: a reported deadlock is over once one of its threads moves (the
        run may end before it is quiescent again)."""
        old = self.current
        if old is None:
            return
        stuck = {rec.thread.ident for rec in survey.blocked}
        stuck.update(rec.thread.ident for rec in survey.held if not survey.can[rec][0])
        stuck.update(thread.ident for thread, *_ in survey.untraced)
        if not stuck.issuperset(old.idents):
            self.end(_how(old), steps, after)

    def end(self, how: str, steps: int, after: list[Callable[[], Any]]) -> None:
        """The reported deadlock is over (``how``); nothing if none is reported."""
        old, self.current = self.current, None
        if old is None:
            return
        events.emit("deadlock", op="broken", since=old.epoch, cycle=old.cycle, how=how, step=True,
                    stall=old.stall, steps=steps)
        after.append(lambda: _log.info("deadlock over: %s", how))


def _how(old: Found) -> str:
    how = sampler_module.explain_break(old.cycle, old.idents, old.since)
    if how == "the wait-for cycle is gone" and old.stall:
        how = "a thread can move again"
    return how


def _find_cycle(edges: dict[int, tuple[int, str]]) -> list[int] | None:
    for start in edges:
        path, seen, node = [start], {start}, start
        while node in edges:
            node = edges[node][0]
            if node == start:
                return path
            if node in seen:
                break
            seen.add(node)
            path.append(node)
    return None


def _entry(ident: int, waits_for: str, names: dict[int | None, str]) -> dict[str, Any]:
    return {"thread": names.get(ident, str(ident)), "holds": traced.holds(ident),
            "waits_for": waits_for}
