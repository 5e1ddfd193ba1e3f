"""One run's events: appended by its supervisor thread, read by any number of viewers at their own pace.

Every event is written to ``events.jsonl`` (one JSON object a line, carrying its ``seq``) *before*
viewers are told about it, so what a page shows is always on disk. Viewers pull: each remembers the
last ``seq`` it has and asks for what came after, from a bounded in-memory tail when it is recent
and from the file (through an index of line offsets) when it has fallen behind. Nobody pushes into a
viewer's queue, so a slow viewer costs only itself and loses nothing.
"""

from __future__ import annotations

import contextlib
import os
import threading
from array import array
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any

TAIL = 4096  # recent events kept parsed in memory; about one second of a flood
KEPT_INDEXES = 8  # finished runs whose offsets index stays in memory (as many as run at once)

_kept: OrderedDict[EventLog, None] = OrderedDict()  # finished logs with an index, least recent first
_kept_lock = threading.Lock()


def _keep_index(log: EventLog) -> None:
    """Note that a finished log holds its index; drop the index of the least recently used beyond
    ``KEPT_INDEXES``. Readers work on a local reference to an index, so dropping one under them is
    safe, and it is rebuilt from the file if that run is read again."""
    with _kept_lock:
        _kept[log] = None
        _kept.move_to_end(log)
        while len(_kept) > KEPT_INDEXES:
            oldest, _ = _kept.popitem(last=False)
            oldest._offsets = None


class EventLog:
    def __init__(self, path: Path, *, live: bool) -> None:
        self.path = Path(path)
        # Byte offset of each event's line, by seq. Only the last few finished runs keep theirs (see
        # _keep_index); an older one is rebuilt from the file when someone reads that run again, so
        # a server that keeps hundreds of runs keeps only a few indexes.
        self._offsets: array | None = array("q") if live else None
        self._tail: deque[tuple[bytes, dict[str, Any]]] = deque(maxlen=TAIL)
        # _changed guards _offsets/_tail/closed; viewers wait on it for new events or the end.
        self._changed = threading.Condition()
        self.closed = not live
        # Open for the run's life, unbuffered: each batch is one write(2), and on disk before viewers
        # hear of it. O_APPEND: a write undone by ftruncate leaves the next one at the true end.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if live else None
        self._size = os.fstat(self._fd).st_size if live else 0

    def _index(self) -> array:
        """The offsets index, read from the file if it was dropped (caller holds ``_changed``)."""
        offsets = self._offsets  # once: _keep_index may drop it from another thread at any moment
        if offsets is not None:
            if self.closed:
                _keep_index(self)  # recently used: the last to be dropped
            return offsets
        offsets, offset = array("q"), 0
        try:
            with open(self.path, "rb") as f:
                for line in f:
                    if line.endswith(b"\n"):  # a torn last line (crash mid-write) is not an event
                        offsets.append(offset)
                    offset += len(line)
        except FileNotFoundError:
            pass
        self._offsets, self._size = offsets, offset
        _keep_index(self)
        return offsets

    def __len__(self) -> int:
        with self._changed:
            return len(self._index())

    def append(self, items: list[tuple[bytes, dict[str, Any]]]) -> None:
        """Write a batch (raw line without newline, parsed event) in one write, then wake viewers.

        Only the run's supervisor writes (app/supervisor.py), so the file needs no lock of its own.
        A write that fails (a full disk) is undone, so the file never holds a torn line that would
        shift every later offset, and the error goes to the caller; viewers never hear of the batch.
        """
        if not items or self._fd is None:
            return
        data = b"".join(line + b"\n" for line, _ in items)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        with self._changed:
            offset = self._size
            for line, event in items:
                self._offsets.append(offset)
                offset += len(line) + 1
                self._tail.append((line, event))
            self._size = offset
            self._changed.notify_all()

    def close(self) -> None:
        """The run has ended: make the file durable and tell waiting viewers there is no more."""
        if self._fd is not None:
            with contextlib.suppress(OSError):  # a full disk must not keep viewers waiting
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        with self._changed:
            self.closed = True
            self._tail.clear()  # a finished run is read from disk; its memory goes back to the server
            # The index stays for now: every viewer reads once more to learn there is no more, and
            # rebuilding it then would read the whole file (a flood's hundred megabytes) for nothing.
            _keep_index(self)
            self._changed.notify_all()

    def wait(self, after: int, timeout: float) -> bool:
        """Block until an event with seq > ``after`` exists or the log is closed; True if either."""
        with self._changed:
            return self._changed.wait_for(lambda: self.closed or len(self._offsets) > after + 1, timeout)

    def read(self, after: int, limit: int = 10_000) -> list[tuple[bytes, dict[str, Any] | None]]:
        """Up to ``limit`` events with seq > ``after``: ``(raw line, parsed or None)``.

        Parsed events come from the tail; older ones are read raw from disk and parsed on demand.
        """
        with self._changed:
            offsets = self._index()
            count = len(offsets)
            start = after + 1
            end = min(count, start + limit)
            if start >= end:
                return []
            tail_first = count - len(self._tail)
            if start >= tail_first:
                return [self._tail[i - tail_first] for i in range(start, end)]
            first_offset = offsets[start]
            last_offset = offsets[end] if end < count else self._size
        with open(self.path, "rb") as f:
            f.seek(first_offset)
            data = f.read(last_offset - first_offset)
        return [(line, None) for line in data.split(b"\n")[: end - start]]

