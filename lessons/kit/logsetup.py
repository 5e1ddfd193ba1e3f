"""Logging set up once for every lesson: readable text for people, ``log`` events for the dashboard.

In text mode each line says when (ms since start), which thread, and what:
``  312ms Producer-1   INFO  put item 7 (queue 3/5)``. In JSON mode the same record becomes a
``log`` event carrying the thread's name and id plus any ``extra={...}`` fields the lesson passed.
"""

from __future__ import annotations

import logging
import os
import sys

from . import events

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is kept.
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

TEXT_FORMAT = "%(relativeCreated)7.0fms %(threadName)-12s %(levelname)-5s %(message)s"


def log_event(record: logging.LogRecord, msg: str) -> dict:
    """A ``log`` event for ``record``, with ``msg`` as its text and the record's ``extra=`` fields;
    stamped with when it happened, not when it was written."""
    extras = {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}
    event = events.make("log", level=record.levelname, logger=record.name,
                        thread=record.threadName, thread_id=record.thread, msg=msg, **extras)
    event["t"] = record.created
    return event


class JsonEventHandler(logging.Handler):
    """Writes each record as a ``log`` event through :mod:`events` (one line, never interleaved)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event = log_event(record, record.getMessage())
            if record.exc_info:
                event["exc"] = logging.Formatter().formatException(record.exc_info)
            events.write(event)
        except Exception:
            self.handleError(record)


class TextHandler(logging.StreamHandler):
    """Readable lines on stdout; when the reader goes away (``lesson.py | head``), stop writing."""

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], BrokenPipeError):
            silence_stdout()
        else:
            super().handleError(record)


def silence_stdout() -> None:
    """Point stdout at /dev/null, as the Python docs advise after a BrokenPipeError
    (https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def configure(log_format: str, verbose: bool) -> None:
    """Replace the root logger's handlers with one for the chosen format.

    Idempotent, so tests can call a lesson's ``main()`` many times in one process.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    if log_format == "json":
        handler: logging.Handler = JsonEventHandler()
    else:
        handler = TextHandler(sys.stdout)
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


KIT_LOGGER = "threadlab.kit"


def configure_kit_only(log_format: str) -> None:
    """Give only the kit's own logger a handler, leaving the root logger to a plain program.

    ``python -m lessons.kit.run`` runs programs that call ``logging.basicConfig`` themselves: a
    root handler of ours would make that call do nothing (it configures an unconfigured root only).
    The kit's messages (a deadlock, a Ctrl-C) go to events in JSON mode and to stderr in text mode,
    so a program's stdout stays exactly what plain python prints. Not propagated: the program's
    root handlers would otherwise write them a second time.
    """
    kit = logging.getLogger(KIT_LOGGER)
    for handler in list(kit.handlers):
        kit.removeHandler(handler)
    if log_format == "json":
        handler: logging.Handler = JsonEventHandler()
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    kit.addHandler(handler)
    kit.setLevel(logging.INFO)
    kit.propagate = False
