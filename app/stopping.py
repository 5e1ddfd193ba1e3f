"""Stopping a run, and what its ending is called: Stop's SIGINT → SIGTERM → SIGKILL escalation, every
signal the server sends to a run's process group, and the final status those decide.

A :class:`Stopping` belongs to one run's supervisor (app/supervisor.py) and is used by its thread
only, so its flags need no lock. The supervisor keeps the deadlines (its loop waits on them); this
says when they fall due and what each does.
"""

from __future__ import annotations

import signal

from . import defaults
from .worker import Worker

STOP_GRACES = (defaults.INTERRUPT_GRACE, defaults.TERMINATE_GRACE)
ESCALATION = ("term", "kill")  # the deadlines :meth:`Stopping.interrupt` sets


class Stopping:
    def __init__(self) -> None:
        self.reason = ""  # why Stop was asked for ("" = nobody asked)
        self.timed_out = False
        self.needed_kill = False
        self.sent_signals: set[int] = set()  # to tell "stopped" (we sent it) from "killed"

    def begin(self, reason: str) -> bool:
        """Note that the run is being stopped and why; False if it already was (once per run)."""
        if self.reason:
            return False
        self.reason = reason
        return True

    def interrupt(self, worker: Worker, graces: tuple[float, float], now: float) -> dict[str, float]:
        """SIGINT now; the deadlines for SIGTERM (``graces[0]`` later) and SIGKILL (``graces[1]``
        after that), by name, to run with :meth:`escalate` when they fall due."""
        self.signal(worker, signal.SIGINT)
        return {"term": now + graces[0], "kill": now + graces[0] + graces[1]}

    def escalate(self, worker: Worker, deadline: str) -> None:
        """The ``term`` or ``kill`` deadline fell due, and the group is still there."""
        if deadline == "term":
            self.signal(worker, signal.SIGTERM)
        else:
            self.kill(worker)

    def signal(self, worker: Worker, sig: int) -> None:
        self.sent_signals.add(int(sig))
        worker.signal_group(sig)

    def kill(self, worker: Worker) -> None:
        self.needed_kill = True
        worker.signal_group(signal.SIGKILL)

    def final_status(self, worker: Worker | None) -> str:
        code = worker.returncode if worker is not None else None
        if code is None:
            return "failed"  # never started, or the supervisor itself failed
        if self.timed_out:
            return "timeout"
        if self.needed_kill:
            return "killed"
        if self.reason:
            return "stopped"
        if code < 0:
            return "stopped" if -code in self.sent_signals else "killed"
        return "exited" if code == 0 else "failed"
