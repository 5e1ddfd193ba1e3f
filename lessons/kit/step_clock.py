"""The step clock: seconds that lesson threads have run, standing still while none does.

Every traced wait's timeout counts on it in step mode (see :mod:`.step`, "Timeouts and the step
clock"), so no timeout fires because the learner paused, and the ``paused`` events carry its
reading (``clock``) so that the server can count a run's time limit on it too.
"""

from __future__ import annotations

import time


class StepClock:
    """A stopwatch the stepper runs while some lesson thread runs (or sleeps).

    Not thread-safe by itself: the stepper calls it only under its one lock (``Stepper.cv``).
    Invariant: the reading is ``_base`` while stopped (``_since`` is None), and ``_base`` plus
    the real time since ``_since`` while running; it never goes back.
    """

    def __init__(self) -> None:
        self._base = 0.0
        self._since: float | None = None  # monotonic() when the clock last started

    def read(self) -> float:
        if self._since is None:
            return self._base
        return self._base + time.monotonic() - self._since

    def run(self, running: bool) -> None:
        """Start (``True``) or stop the clock; no change if it already does so."""
        if running and self._since is None:
            self._since = time.monotonic()
        elif not running and self._since is not None:
            self._base += time.monotonic() - self._since
            self._since = None

    def jump(self, seconds: float) -> None:
        """Move the reading on by ``seconds``: to a timeout nothing else could reach."""
        self._base += seconds
