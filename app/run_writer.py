"""A run's writer: the one place its event log and its record are written, by its supervisor's
thread only (app/supervisor.py), so the event numbering needs no lock.

What a full or read-only disk does to a run is decided here: the events that cannot be written are
lost (viewers only ever see what is on disk), the run goes on and stays stoppable, and the server's
log says so once.
"""

from __future__ import annotations

import logging
from typing import Any

from . import output
from .record import RunRecord
from .run import Run

_log = logging.getLogger("threadlab.supervisor")


class RunWriter:
    def __init__(self, run: Run) -> None:
        self.run = run
        self.seq = 0  # the next event's number
        self.error = ""  # the first error writing the event log (a full disk), if any

    def append(self, event: dict[str, Any]) -> None:
        self.append_many([(event, None)])

    def append_many(self, events: list[tuple[dict[str, Any], bytes | None]]) -> None:
        items = output.numbered_all(events, self.seq)
        try:
            self.run.log.append(items)
        except OSError as exc:
            if not self.error:
                self.error = str(exc)
                _log.error("run %s: cannot write its events: %s", self.run.id, exc)
            return
        self.seq += len(items)

    def save(self, record: RunRecord | None = None) -> None:
        """Write ``record`` (by default the run's own) to run.json; a failure is logged, not raised."""
        try:
            # The supervisor is the record's only writer, so reading it needs no lock.
            (record or self.run.record).save(self.run.folder)
        except OSError as exc:
            _log.error("run %s: cannot save run.json: %s", self.run.id, exc)
