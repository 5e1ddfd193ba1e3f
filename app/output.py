"""Turning a worker's raw pipe bytes into numbered events.

A pipe read returns any number of bytes: several lines, half a line, or a megabyte with no newline
at all. :class:`LineSplitter` keeps the unfinished line between reads but never more than
``MAX_LINE`` bytes of it: a longer line is cut there, marked, and the rest up to the next newline is
dropped, so a lesson printing 50 MB without a newline cannot grow the server's memory.
:func:`to_event` turns one line into an event: a JSON object line from the kit as it is (with the
server's ``seq`` added), anything else as a ``stdout``/``stderr`` event carrying the text.
"""

from __future__ import annotations

import json
import time
from typing import Any

SCHEMA_VERSION = 1
# Kinds only the server writes: a lesson printing one is shown as text, so it cannot fake a status
# change, a signal it was never sent, or the numbering of events.
SERVER_KINDS = frozenset({"status", "signal", "stdout", "stderr"})
MAX_LINE = 64 * 1024  # bytes; a log line longer than this is a bug or a flood, not something to read
TRUNCATED = " … [line truncated by threadlab]"


class LineSplitter:
    def __init__(self) -> None:
        self._partial = bytearray()
        self._dropping = False  # inside an over-long line, discarding until its newline

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while True:
            newline = data.find(b"\n", start)
            if newline < 0:
                break
            piece = data[start:newline]
            if self._dropping:
                self._dropping = False
            elif self._partial:
                self._partial += piece
                lines.append(self._cut(bytes(self._partial)))
                self._partial.clear()
            else:
                lines.append(self._cut(piece))
            start = newline + 1
        rest = data[start:]
        if rest and not self._dropping:
            self._partial += rest
            if len(self._partial) > MAX_LINE:
                lines.append(self._cut(bytes(self._partial)))
                self._partial.clear()
                self._dropping = True
        return lines

    def flush(self) -> list[bytes]:
        """The unfinished last line, when the stream has ended."""
        if self._partial and not self._dropping:
            line = bytes(self._partial)
            self._partial.clear()
            return [self._cut(line)]
        return []

    @staticmethod
    def _cut(line: bytes) -> bytes:
        if len(line) > MAX_LINE:
            return line[:MAX_LINE] + TRUNCATED.encode()
        return line


def server_event(kind: str, **fields: Any) -> dict[str, Any]:
    """An event the server adds to a run's log (``status``, ``signal``, or text it read)."""
    return {"v": SCHEMA_VERSION, "t": time.time(), "kind": kind, **fields}


def text_event(kind: str, text: str) -> dict[str, Any]:
    """A line that was not a kit event: ``stdout`` or ``stderr`` with its text."""
    return server_event(kind, text=text)


def to_event(line: bytes, stream: str) -> tuple[dict[str, Any], bytes | None]:
    """One output line as an event dict (without ``seq``), plus the line itself when it is already
    a JSON object that can be stored as it is."""
    line = line.rstrip(b"\r")
    if stream == "stdout" and line.startswith(b"{"):
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if (isinstance(event, dict) and isinstance(event.get("kind"), str)
                and event["kind"] not in SERVER_KINDS and "seq" not in event):
            return event, line
    return text_event(stream, line.decode("utf-8", "replace")), None


def numbered(event: dict[str, Any], raw: bytes | None, seq: int) -> tuple[bytes, dict[str, Any]]:
    """The event with its ``seq``, and its line as stored and sent to machine clients.

    A kit line is kept byte for byte with ``"seq"`` spliced in after its ``{``: no second
    serialisation on the hot path.
    """
    event["seq"] = seq
    if raw is not None:
        return b'{"seq": %d, ' % seq + raw[1:].lstrip(), event
    return json.dumps(event, ensure_ascii=False, default=str).encode("utf-8", "replace"), event
