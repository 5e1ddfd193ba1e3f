"""What the pages ask of a run's view model (app/viewmodel.py): the run at an instant, the lanes
to draw between two instants, the instants to step between, and how the run went.

A mixin of :class:`~app.viewmodel.ViewModel`, which folds the fields read here and holds ``_lock``
while it does; every question takes the same lock. Times asked and answered are run seconds (from
the run's first event) except ``lanes_between``, which the timeline asks in epoch seconds.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

from .lanes import segments


class Questions:
    def rel(self, t: float) -> float:
        return round(t - (self.first_t or 0.0), 6)

    @property
    def duration(self) -> float:
        with self._lock:
            return self.rel(self.last_t) if self.first_t is not None else 0.0

    def state_at(self, t: float) -> dict[str, Any]:
        """The run at ``t`` run seconds (clamped to its span): every thread alive or ended by then."""
        with self._lock:
            t = min(max(t, 0.0), self.duration)
            at = (self.first_t or 0.0) + t
            threads = []
            for lane in self._lanes:
                if not lane.claimed or lane.start > at:
                    continue  # not started yet at t: absent
                ended = lane.end is not None and lane.end <= at
                i = bisect_right(lane.st, at) - 1
                where, line, holds, waiting = lane.si[i] if i >= 0 else (None, None, (), None)
                crash = lane.crash if ended and lane.crash else None
                waiting = lane.waiting_for(at, waiting)
                waiting = list(waiting) if isinstance(waiting, tuple) else waiting
                threads.append({
                    "name": lane.name, "lane": lane.display, "ident": lane.ident,
                    "state": ("crashed" if crash else "done") if ended else lane.state_at(at),
                    "where": where, "line": line, "holds": [] if ended else list(holds),
                    "waiting_for": None if ended else waiting,
                    "daemon": lane.daemon,
                    "exc": {k: crash[k] for k in ("type", "message", "where")} if crash else None,
                })
            # The newest cycle reported by t, as it stood then: broken only if it had broken by t
            # (a scrub to before the break must not show the outcome), as the live banner is.
            deadlock = None
            for dl in self._deadlocks:
                if dl["formed"] <= at:
                    deadlock = {"cycle": dl["cycle"], "since": self.rel(dl["since"]),
                                "formed_at": self.rel(dl["formed"])}
                    if dl["broken"] is not None and dl["broken"] <= at:
                        deadlock.update(broken_at=self.rel(dl["broken"]), how=dl["how"])
            i = bisect_right(self._log_t, at) - 1  # log times are in arrival order: near enough sorted
            return {"t": t, "duration": self.duration, "threads": threads, "deadlock": deadlock,
                    "log_seq": self._log_seq[i] if i >= 0 else None}

    def events_times(self) -> list[float]:
        """Sorted, distinct run-second instants where something happened: prev/next stepping."""
        with self._lock:
            if self._sorted_times is None:
                self._sorted_times = sorted({self.rel(t) for t in self._times})
            return self._sorted_times

    def step(self, t: float, direction: int) -> float | None:
        """The instant after (``direction`` > 0) or before ``t`` where something happened, or None."""
        times = self.events_times()
        i = bisect_right(times, t + 1e-9) if direction > 0 else bisect_left(times, t - 1e-9) - 1
        return times[i] if 0 <= i < len(times) else None

    def lanes_between(self, a: float, b: float, step: float = 0.0) -> list[dict[str, Any]]:
        """Each lane overlapping [a, b] (epoch seconds), for drawing: its segments ``(start, end,
        state, changes)`` clipped to the range, marks and crash. With ``step`` (seconds a pixel or
        two stand for), changes closer together than that are one segment of the state seen most in
        it, ``changes`` counting them: the work is bounded by pixels, not by the run's length."""
        with self._lock:
            out = []
            for lane in self._lanes:
                stop = min(lane.end if lane.end is not None else self.last_t, b)
                if lane.claimed and (lane.start > b or stop < a):
                    continue
                out.append({"name": lane.name, "display": lane.display, "ident": lane.ident,
                            "segments": segments(lane, a, stop, step) if lane.claimed else [],
                            "crash": lane.crash, "marks": [m for m in lane.marks if a <= m[0] <= b]})
            return out

    def summary(self) -> dict[str, Any]:
        """How the run went beyond its exit code: threads that crashed, and why it failed."""
        with self._lock:
            crashed = sum(1 for lane in self._lanes if lane.crash)
            why = None
            if self.status == "failed" or (self.exit_code not in (None, 0)):
                code = self.exit_code
                # Said only of what the log shows: a traceback, or none (the lesson returned its
                # own non-zero code, as a lesson whose check fails does), or no exit code at all.
                if code is None:
                    why = "no exit code: the lesson never started or its supervisor failed (see the log)"
                elif self.exception:
                    why = f"exit code {code}: {self.exception} (traceback in the log)"
                else:
                    why = f"exit code {code}: the lesson's own check failed (no traceback)"
            failed = [k for k in ("passed", "ok", "success") if self.results.get(k) is False]
            # An exercise's verdict is not the run's: a try that misses its goal ran well (#check).
            if failed and why is None:
                why = "result says " + ", ".join(f"{name} is false" for name in failed)
            deadlocks = sum(1 for dl in self._deadlocks if dl["broken"] is None)
            return {"crashed": crashed, "why": why, "result_failed": bool(failed), "deadlocked": deadlocks}
