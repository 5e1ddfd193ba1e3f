"""A lesson's output pipes, as its supervisor's loop reads them (app/supervisor.py): read as data
comes, so a lesson never blocks on a full pipe, split into whole lines, made into events.

Used by the supervisor's thread only: the splitters' half lines need no lock.
"""

from __future__ import annotations

import os
import selectors
from typing import Any

from . import output

READ_SIZE = 256 * 1024  # bytes per pipe read: large enough that a flood costs few system calls
# Once the leader has exited and its group is killed, what is left in the pipes is at most their
# buffers: a second of reading drains them. Output after that comes from a process that left the
# group (setsid) and still holds our pipe; it is cut off, or it would keep the run live for ever.
DRAIN_AFTER_EXIT = 1.0

Events = list[tuple[dict[str, Any], bytes | None]]


class OutputPipes:
    def __init__(self, outputs: dict[int, str], selector: selectors.BaseSelector) -> None:
        """Register ``outputs`` (fd → stream name) with the loop's ``selector``, their name as data."""
        self.selector = selector
        self._open: dict[int, tuple[str, output.LineSplitter]] = {}
        for fd, name in outputs.items():
            self._open[fd] = (name, output.LineSplitter())
            selector.register(fd, selectors.EVENT_READ, name)

    @property
    def open(self) -> bool:
        """Whether any pipe may still bring output (the loop runs until none does)."""
        return bool(self._open)

    def read(self, fd: int) -> tuple[str, Events]:
        """One read of a readable ``fd``: its stream's name and the events of the whole lines it
        completed. At end of file, the last half line too, and the pipe is done."""
        name, splitter = self._open[fd]
        data = os.read(fd, READ_SIZE)
        if data:
            lines = splitter.feed(data)
        else:
            self.selector.unregister(fd)
            del self._open[fd]
            lines = splitter.flush()
        return name, output.to_events(lines, name) if lines else []

    def cut_off(self) -> None:
        """Read no more: the loop ends, and closing the worker's pipes cuts off a leftover writer."""
        self._open.clear()
