"""The one place that writes events (one JSON object per stdout line) in JSON mode.

The schema is written down in ``docs/events.md``; ``SCHEMA_VERSION`` is its version. Every writer
(logging, the sampler, traced primitives, ``emit_result``) goes through :func:`write` so lines from
different threads never interleave: ``_write_lock`` guards the stream, and nobody waits on it for
longer than one write.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

SCHEMA_VERSION = 1

# _write_lock guards _stream: writing through it (one whole line per holder) and replacing it.
# Readers that only ask "JSON mode?" (enabled()) read it once without the lock; write() checks it
# again under the lock, so a stream switched off meanwhile is never written to after disable().
_write_lock = threading.Lock()
_stream = None  # binary stdout in JSON mode; None in text mode (events are then not written)


def enable(stream=None) -> None:
    """Switch JSON mode on: events go to ``stream`` (default: the binary stdout)."""
    global _stream
    with _write_lock:
        _stream = stream if stream is not None else sys.stdout.buffer


def disable() -> None:
    """Switch JSON mode off (tests); a write already under way finishes first."""
    global _stream
    with _write_lock:
        _stream = None


def enabled() -> bool:
    """True in JSON mode, when the dashboard (or a script) is reading our events."""
    return _stream is not None


def make(kind: str, **fields: Any) -> dict[str, Any]:
    """An event dict with the common fields ``v``, ``t`` and ``kind`` first."""
    return {"v": SCHEMA_VERSION, "t": time.time(), "kind": kind, **fields}


def write(event: dict[str, Any]) -> None:
    """Write one event as one line and flush it at once.

    Flushing every line costs one system call but keeps "Run → first line" latency at the floor;
    the server batches on its side, per pipe read.
    """
    if _stream is None:
        return  # text mode: skip the encoding (only a shortcut; the check that counts is below)
    line = json.dumps(event, default=str, ensure_ascii=False).encode("utf-8", "replace") + b"\n"
    with _write_lock:
        if _stream is None:
            return  # switched off since the check above: a test ended, for one
        try:
            _stream.write(line)
            _stream.flush()
        except (BrokenPipeError, ValueError):
            # The reader went away (server gone) or stdout was closed at exit: nothing to tell.
            pass


def emit(kind: str, **fields: Any) -> None:
    """Build and write an event in one call."""
    write(make(kind, **fields))
