"""The two websockets of a run: HTML fragments for the page, JSON events for machines.

Both pull from the run's :class:`~app.eventlog.EventLog` with a cursor (the last ``seq`` sent), so a
late viewer first gets the history, a slow one catches up from disk, and none can slow the run or
another viewer. The JSON socket sends whatever each pipe read brought as soon as it is there; the
page socket gathers ``BATCH_WINDOW`` of events into one message and draws only what a person can see:
the newest ``MAX_LOG_ROWS`` log rows, the latest thread table, the status.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from flask import Flask, render_template
from simple_websocket import ConnectionClosed

from .eventlog import parsed
from .runs import Run, RunManager

BATCH_WINDOW = 0.05  # seconds of events per page message: ~20 updates a second, smooth to the eye
MAX_LOG_ROWS = 1000  # log rows the page keeps; older ones are counted, not drawn (the file has all)
JSON_BATCH = 20_000  # events per JSON message at most, so one message stays a few MB
WAIT_SLICE = 1.0  # seconds between checks that the server is not shutting down
LOG_KINDS = ("log", "stdout", "stderr", "signal")


def stream_json(ws, run: Run, manager: RunManager, after: int = -1) -> None:
    """Each message a JSON array of events (raw lines joined), history first; then close normally."""
    cursor = after
    while not manager.closing.is_set():
        batch = run.log.read(cursor, JSON_BATCH)
        if batch:
            ws.send((b"[" + b",".join(line for line, _ in batch) + b"]").decode("utf-8", "replace"))
            cursor += len(batch)
        elif run.log.closed:
            return
        else:
            run.log.wait(cursor, WAIT_SLICE)


class PageView:
    """What one page viewer has been shown, and the fragments that bring it up to date."""

    def __init__(self, app: Flask, run: Run) -> None:
        self.app = app
        self.run = run
        self.first = True
        self.log_total = 0  # log rows in the run so far (drawn or not)
        self.rows: list[dict[str, Any]] = []
        self.threads: list[dict[str, Any]] | None = None
        self.status_changed = True
        self.result: dict[str, Any] | None = None
        self.deadlock: dict[str, Any] | None = None
        self.stacks: dict[str, Any] | None = None

    def take(self, event: dict[str, Any]) -> None:
        kind = event.get("kind")
        if kind in LOG_KINDS:
            self.log_total += 1
            self.rows.append(event)
            if len(self.rows) > MAX_LOG_ROWS:
                del self.rows[: len(self.rows) - MAX_LOG_ROWS]
        elif kind == "threads":
            self.threads = event.get("threads") or []
        elif kind == "status":
            self.status_changed = True
        elif kind == "result":
            self.result = event
        elif kind == "deadlock":
            self.deadlock = event
        elif kind == "stacks":
            self.stacks = event

    def message(self) -> str:
        """The fragments for what changed since the last message ('' when nothing did)."""
        if not (self.first or self.rows or self.threads is not None or self.status_changed
                or self.result or self.deadlock or self.stacks):
            return ""
        with self.app.app_context():
            html = render_template(
                "_partials/_ws_update.html", run=self.run, first=self.first, rows=self.rows,
                hidden=max(0, self.log_total - MAX_LOG_ROWS), threads=self.threads,
                status_changed=self.status_changed, result=self.result, deadlock=self.deadlock,
                stacks=self.stacks, max_rows=MAX_LOG_ROWS,
            )
        self.first, self.rows, self.threads, self.status_changed = False, [], None, False
        self.result = self.deadlock = self.stacks = None
        return html


def stream_page(ws, app: Flask, run: Run, manager: RunManager) -> None:
    """HTML fragments for ``#live``: one message per ``BATCH_WINDOW`` at most, history first."""
    view = PageView(app, run)
    cursor = -1
    while not manager.closing.is_set():
        ended = run.log.closed  # read before the events, so none can slip in after we decide
        batch = run.log.read(cursor, JSON_BATCH)
        for item in batch:
            view.take(parsed(item))
        cursor += len(batch)
        if len(batch) == JSON_BATCH:
            continue  # catching up on history: draw once, at the end of it
        message = view.message()
        if message:
            ws.send(message)
        if ended and not batch:
            return
        if not batch:
            run.log.wait(cursor, WAIT_SLICE)
        time.sleep(BATCH_WINDOW)


def serve_socket(fn, *args) -> None:
    """Run a stream, treating a viewer that went away as the normal end it is."""
    with contextlib.suppress(ConnectionClosed):
        fn(*args)
