"""One run's events: appended by its supervisor thread, read by any number of viewers at their own pace.

Every event is written to ``events.jsonl`` (one JSON object a line, carrying its ``seq``) *before*
viewers are told about it, so what a page shows is always on disk. Viewers pull: each remembers the
last ``seq`` it has and asks for what came after, from a bounded in-memory tail when it is recent
and from the file (through an index of line offsets) when it has fallen behind. Nobody pushes into a
viewer's queue, so a slow viewer costs only itself and loses nothing.

Machine clients are served bytes, not events: the JSON socket gets the bytes an append wrote with
its newlines made commas (:meth:`EventLog.read_json`), the NDJSON download the file itself a
megabyte at a time (:meth:`EventLog.raw_chunks`). Neither does anything per event.
"""

from __future__ import annotations

import contextlib
import os
import threading
from array import array
from collections import OrderedDict, deque
from itertools import accumulate, count, islice
from operator import add
from pathlib import Path
from typing import Any

from .output import looks_whole

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
        # The same recent events as the bytes each append wrote (file offset, data): what a JSON
        # viewer sends is these bytes with newlines made commas, no work per event (read_json).
        self._chunks: deque[tuple[int, bytes]] = deque()
        self._chunk_events: deque[int] = deque()  # events in each chunk
        self._chunk_total = 0  # events in all of them: at least TAIL once there are that many
        # Lines this process wrote went through ingest (app/output.py): each is one JSON object in
        # valid UTF-8. A file read back (an older run, a restart) is checked line by line.
        self._trusted = live
        # _changed guards _offsets/_tail/_chunks/closed; viewers wait on it for new events or the end.
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

    def index(self) -> tuple[array, int]:
        """Where each line starts, and the file's size: saved beside a finished run's model
        (app/model_store.py), so its next first reader need not read the whole file for them."""
        with self._changed:
            return self._index(), self._size

    def adopt_index(self, offsets: array, size: int) -> bool:
        """Take an index saved beside this closed log instead of reading the file for one; the
        caller has checked that it was made from the file as it is now. False if the log already
        has one or is live (then it is not needed)."""
        with self._changed:
            if not self.closed or self._offsets is not None:
                return False
            self._offsets, self._size = offsets, size
            _keep_index(self)
            return True

    def lines_at(self, numbers: list[int]) -> list[bytes]:
        """The lines numbered ``numbers`` (seq), each without its newline; b"" for a number that
        has none. A finished run's page history is a few hundred of them (app/models.py)."""
        with self._changed:
            offsets = self._index()
            count, size = len(offsets), self._size
            spans = [(offsets[i], offsets[i + 1] if i + 1 < count else size) if 0 <= i < count else (0, 0)
                     for i in numbers]
        out = []
        with open(self.path, "rb") as f:
            for start, end in spans:
                f.seek(start)
                out.append(f.read(end - start).split(b"\n", 1)[0])  # the last may have a torn line after
        return out

    def append(self, items: list[tuple[bytes, dict[str, Any]]]) -> None:
        """Write a batch (raw line without newline, parsed event) in one write, then wake viewers.

        Only the run's supervisor writes (app/supervisor.py), so the file needs no lock of its own.
        A write that fails (a full disk) is undone, so the file never holds a torn line that would
        shift every later offset, and the error goes to the caller; viewers never hear of the batch.
        """
        if not items or self._fd is None:
            return
        lines = [line for line, _ in items]
        lines.append(b"")  # so that the join ends with a newline, without another copy
        data = b"\n".join(lines)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        n = len(items)
        with self._changed:
            # Offsets without a Python loop: line i starts at size + the lengths before it + i newlines.
            self._offsets.extend(map(add, islice(accumulate(map(len, lines), initial=self._size), n),
                                     count()))
            self._tail.extend(items)
            self._chunks.append((self._size, data))
            self._chunk_events.append(n)
            self._chunk_total += n
            while self._chunk_total - self._chunk_events[0] >= TAIL:
                self._chunks.popleft()
                self._chunk_total -= self._chunk_events.popleft()
            self._size += len(data)
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
            # A finished run is read from disk; its memory goes back to the server.
            self._tail.clear()
            self._chunks.clear()
            self._chunk_events.clear()
            self._chunk_total = 0
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
                return list(islice(self._tail, start - tail_first, end - tail_first))
            first_offset = offsets[start]
            last_offset = offsets[end] if end < count else self._size
        with open(self.path, "rb") as f:
            f.seek(first_offset)
            data = f.read(last_offset - first_offset)
        return [(line, None) for line in data.split(b"\n")[: end - start]]

    def raw_chunks(self, after: int = -1, size: int = 1 << 20):
        """The file's bytes for every event with seq > ``after`` that exists now, as stored (one line
        each), ``size`` bytes at a time: a download streams at the speed of the disk and holds one
        chunk, however long the run. All of a file needs no index (a finished run's may have been
        dropped: it is not rebuilt for this); a torn last line is left out either way."""
        with self._changed:
            if after < 0 and self._offsets is None:
                start, end = 0, None
            else:
                offsets = self._index()
                if after + 1 >= len(offsets):
                    return
                start, end = offsets[after + 1], self._size
        with open(self.path, "rb") as f:
            f.seek(start)
            left = end - start if end is not None else -1
            pending = b""
            while left:
                chunk = f.read(size if left < 0 else min(size, left))
                if not chunk:
                    break
                left -= len(chunk) if left > 0 else 0
                data = pending + chunk if pending else chunk
                cut = data.rfind(b"\n") + 1  # only whole lines; the rest waits for its newline
                if cut:
                    yield data[:cut]
                pending = data[cut:]

    def read_json(self, after: int, limit: int) -> tuple[int, bytes]:
        """Up to ``limit`` events with seq > ``after`` as one JSON array: ``(how many events that
        covers, the array)``. The array may hold fewer events than the count (a line in a file
        read back that is not a JSON object is left out); it is ``b""`` when it would be empty.

        Recent events are sliced from the bytes their append wrote, older ones read from the file
        in one piece; either way newlines become commas in one pass, nothing is done per event.
        """
        with self._changed:
            offsets = self._index()
            total = len(offsets)
            start = after + 1
            end = min(total, start + limit)
            if start >= end:
                return 0, b""
            first, last = offsets[start], offsets[end] if end < total else self._size
            data = self._slice_chunks(first, last)
            trusted = self._trusted
        if data is None:
            with open(self.path, "rb") as f:
                f.seek(first)
                data = f.read(last - first)
        if not trusted:
            lines = data.split(b"\n")[: end - start]
            members = b",".join(line for line in lines if looks_whole(line))
            # Invalid UTF-8 (an older version's file) is sent as U+FFFD, as a text frame must be.
            members = members.decode("utf-8", "replace").encode("utf-8")
            return end - start, b"[" + members + b"]" if members else b""
        # Every line ends with a newline: made commas, the last one is the array's end.
        return end - start, b"".join((b"[", memoryview(data.replace(b"\n", b","))[:-1], b"]"))

    def _slice_chunks(self, first: int, last: int) -> bytes | None:
        """File bytes ``first:last`` from the chunks in memory, or None if they are not all there
        (caller holds ``_changed``)."""
        chunks = self._chunks
        if not chunks or first < chunks[0][0]:
            return None
        pieces = []
        for offset, data in reversed(chunks):  # viewers read near the end: start from there
            if offset >= last:
                continue
            pieces.append(data[max(0, first - offset): last - offset])
            if offset <= first:
                break
        pieces.reverse()
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)
