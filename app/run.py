"""One run as the rest of the server sees it: a record to read, a log to follow, a door to knock on.

Ownership, which is the whole point of this module:

- The run's **supervisor** thread (app/supervisor.py) is the only writer of everything that changes:
  the record's status, exit code, end time and pid, the flags behind the final status, the event
  numbering, and every line of the event log.
- **Request threads** never change a run. They read it through :meth:`Run.to_json` and the
  properties below, and they ask for things (stop, signal, dump) with :meth:`Run.request`: a
  :class:`Command` is put in the run's inbox, the supervisor carries it out between two pipe reads
  and answers it. "Is the run still live? Then signal its group" is one step of the one thread that
  also reaps the process, so a signal can never reach a group whose leader was reaped (and whose
  pid the kernel may have given to a stranger).
- One :class:`threading.Condition`, ``_changed``, guards the record's changing fields and the inbox.
  Status changes go through :meth:`Run.transition`, which checks them against
  :data:`app.record.TRANSITIONS`; viewers and the shutdown wait on the same Condition.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .eventlog import EventLog
from .record import FINAL, LIVE, TRANSITIONS, RunRecord

ANSWER_TIMEOUT = 5.0  # seconds a request waits for the supervisor's answer; it takes milliseconds


@dataclass
class Command:
    """A request thread's ask: ``stop``, ``signal``, ``dump`` or ``kill``, answered once."""

    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    code: int = 0  # the HTTP status that says how it went: 202 done, 409 too late, ...
    message: str = ""
    answered: threading.Event = field(default_factory=threading.Event)

    def answer(self, code: int, message: str = "") -> None:
        self.code, self.message = code, message
        self.answered.set()


class Run:
    def __init__(self, record: RunRecord, folder: Path, *, live: bool) -> None:
        self.record = record
        self.folder = folder
        self.log = EventLog(folder / "events.jsonl", live=live)
        # Guards record.status/exit_code/ended/pid/check/prediction, _inbox and _wake_fd. The
        # supervisor holds it only to change them (never across I/O); readers hold it for a
        # consistent copy.
        self._changed = threading.Condition()
        self._inbox: deque[Command] = deque()
        self._wake_fd: int | None = None  # written to wake the supervisor; None once it has ended

    # -- what never changes after creation: no lock needed --------------------------------------

    id = property(lambda self: self.record.id)
    lesson = property(lambda self: self.record.lesson)
    title = property(lambda self: self.record.title)
    params = property(lambda self: self.record.params)
    signals = property(lambda self: self.record.signals)
    started = property(lambda self: self.record.started)
    owner = property(lambda self: self.record.owner)
    exercise = property(lambda self: self.record.exercise)
    level = property(lambda self: self.record.level)
    scratch = property(lambda self: self.record.scratch)
    step = property(lambda self: self.record.step)

    # -- what the supervisor changes: read under the lock ---------------------------------------

    @property
    def status(self) -> str:
        with self._changed:
            return self.record.status

    @property
    def live(self) -> bool:
        return self.status in LIVE

    @property
    def exit_code(self) -> int | None:
        with self._changed:
            return self.record.exit_code

    @property
    def ended(self) -> float | None:
        with self._changed:
            return self.record.ended

    @property
    def pid(self) -> int | None:
        with self._changed:
            return self.record.pid

    @property
    def check(self) -> dict[str, Any] | None:
        with self._changed:
            return self.record.check

    @property
    def prediction(self) -> dict[str, Any] | None:
        with self._changed:
            return self.record.prediction

    def to_json(self) -> dict[str, Any]:
        with self._changed:
            return self.record.to_json()

    def wait_final(self, timeout: float | None) -> bool:
        """Block until the run has its final status (or ``timeout``); True if it has."""
        with self._changed:
            return self._changed.wait_for(lambda: self.record.status in FINAL, timeout)

    # -- asking the supervisor ------------------------------------------------------------------

    def request(self, kind: str, timeout: float = ANSWER_TIMEOUT, **args: Any) -> Command:
        """Put a command in the inbox and wait for the supervisor's answer.

        Whether the run can still take commands is decided under the same lock the supervisor
        holds when it ends the run and empties the inbox: no command is ever left unanswered.
        """
        command = Command(kind, args)
        with self._changed:
            if self._wake_fd is None:
                command.answer(409, f"run already {self.record.status}")
                return command
            self._inbox.append(command)
            with contextlib.suppress(BlockingIOError):  # a full pipe already says "wake up"
                os.write(self._wake_fd, b"!")
        if not command.answered.wait(timeout):
            command.answer(503, "the run's supervisor did not answer in time")
        return command

    # -- for the supervisor only -----------------------------------------------------------------

    def open_inbox(self, wake_fd: int) -> None:
        with self._changed:
            self._wake_fd = wake_fd

    def take_commands(self) -> list[Command]:
        with self._changed:
            commands = list(self._inbox)
            self._inbox.clear()
        return commands

    def close_inbox(self) -> list[Command]:
        """No more commands: return those still waiting (the caller answers them)."""
        with self._changed:
            self._wake_fd = None
            commands = list(self._inbox)
            self._inbox.clear()
        return commands

    def transition(self, status: str, **fields: Any) -> None:
        """Change the status (and ``exit_code``/``ended``/``pid``) as the table allows, and wake
        everyone waiting on the run. A change the table forbids is a bug in the supervisor."""
        with self._changed:
            if status not in TRANSITIONS[self.record.status]:
                raise RuntimeError(f"run {self.id}: {self.record.status} -> {status} is not allowed")
            self.record.status = status
            for name, value in fields.items():
                setattr(self.record, name, value)
            self._changed.notify_all()
