"""The two websockets of a run: HTML fragments for the page, JSON events for machines.

Both pull from the run's :class:`~app.eventlog.EventLog` with a cursor (the last ``seq`` sent), so a
late viewer first gets the history, a slow one catches up from disk, and none can slow the run or
another viewer. The JSON socket sends whatever each pipe read brought as soon as it is there; the
page socket gathers ``BATCH_WINDOW`` of events into one message and draws only what a person can see:
the newest ``MAX_LOG_ROWS`` log rows, the latest thread table, the status.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import weakref
from collections import deque
from typing import Any

from flask import Flask, render_template
from jinja2 import TemplateError
from markupsafe import Markup
from simple_websocket import ConnectionClosed
from wsproto.events import TextMessage

from . import fragments, models
from .output import kind_of, safe_parse
from .runs import Run, RunManager

BATCH_WINDOW = 0.05  # seconds of events per page message: ~20 updates a second, smooth to the eye
# Log rows the page keeps; older ones are counted, not drawn (the file has all, and the page links
# to it). 15 screens of the log's box. Measured in Chromium (scripts/bench_page.py): each message
# costs the browser layout and paint in proportion to the rows it holds; at 1,000 rows a frame
# with a message took ~30 ms at 1,000 lines/s, at 300 about 12 ms.
MAX_LOG_ROWS = 300
# Events a page viewer reads at a time while it catches up on history (and the most it holds).
JSON_BATCH = 5_000
# Events per JSON message at most: a viewer catching up gets ~1 MB messages. Larger ones were no
# faster for the client and cost the server several copies of each message in memory at once.
JSON_MESSAGE = 5_000
SEND_DEADLINE = 15.0  # seconds a viewer may take to accept one message before it is cut loose
CLOSE_WAIT = 1.0  # seconds a viewer has to answer our close frame
WAIT_SLICE = 1.0  # seconds between checks that the server is not shutting down
LOG_KINDS = (b"log", b"stdout", b"stderr", b"signal")
# New rows per message above which the page gets only the newest ones, replacing what it has (a
# flood). The browser lays out each new row's text anew: 200 at 20 messages a second took ~18 ms
# a frame at 10,000 lines/s, 100 about half that. Five screens of rows, far more than anyone can
# read going past.
FLOOD_ROWS = 100


def stream_json(ws, run: Run, manager: RunManager, after: int = -1) -> None:
    """Each message a JSON array of events (their stored lines, joined), history first; then close
    normally. Nothing is done per event: the log hands over the bytes it wrote, commas for newlines
    (see EventLog.read_json), and they go out as one frame."""
    cursor = after
    while not manager.closing.is_set():
        count, members = run.log.read_json(cursor, JSON_MESSAGE)
        if count:
            if members:
                send(ws, members)
            cursor += count
        elif run.log.closed:
            return
        else:
            run.log.wait(cursor, WAIT_SLICE)


def _event(item: tuple[bytes, dict[str, Any] | None]) -> dict[str, Any] | None:
    """The event of a ``read()`` item (parsed from disk if need be), None if its line is not one."""
    line, event = item
    return event if event is not None else safe_parse(line)


def _item_kind(item: tuple[bytes, dict[str, Any] | None]) -> bytes:
    line, event = item
    if event is None:
        return kind_of(line)
    kind = event.get("kind")
    return kind.encode("utf-8", "replace") if isinstance(kind, str) else b""


class PageView:
    """What one page viewer has been shown, and the fragments that bring it up to date."""

    def __init__(self, app: Flask, run: Run) -> None:
        self.app = app
        self.run = run
        self.first = True
        self.log_total = 0  # log rows in the run so far (drawn or not)
        self.drawn = 0  # rows the page holds now (it trims itself to MAX_LOG_ROWS)
        self.rows: deque[tuple[bytes, dict[str, Any] | None]] = deque(maxlen=MAX_LOG_ROWS)
        self.new_rows = 0  # rows since the last message (may exceed what self.rows keeps)
        self.threads: tuple[bytes, dict[str, Any] | None] | None = None
        self.status_changed = True
        self.result: dict[str, Any] | None = None
        self.deadlock: dict[str, Any] | None = None
        self.stacks: dict[str, Any] | None = None
        self.check: dict[str, Any] | None = None  # an exercise's verdict (the run was for one)
        self.prediction: dict[str, Any] | None = None  # a prediction, revealed

    def take(self, item: tuple[bytes, dict[str, Any] | None]) -> None:
        """Note one event. Lines from disk are parsed only when drawn, so one that is not an event
        is found out (and left out) then; one that a viewer never draws costs nothing."""
        kind = _item_kind(item)
        if kind in LOG_KINDS:
            self.log_total += 1
            self.new_rows += 1
            self.rows.append(item)
        elif kind == b"threads":
            self.threads = item
        elif kind == b"status":
            self.status_changed = True
        elif kind in (b"result", b"deadlock", b"stacks", b"check", b"prediction"):
            event = _event(item)
            if event is not None:
                setattr(self, kind.decode(), event)

    def take_all(self, batch: list[tuple[bytes, dict[str, Any] | None]]) -> None:
        """``take`` for every item of a read, in order. A long history (a finished run of a million
        events) is mostly rows this viewer will never draw: of them only their number counts, so
        a long read is classified in one pass and only its newest rows are kept."""
        if len(batch) <= 2 * MAX_LOG_ROWS:
            for item in batch:
                self.take(item)
            return
        kinds = [_item_kind(item) for item in batch]
        logs = [i for i, kind in enumerate(kinds) if kind in LOG_KINDS]
        self.log_total += len(logs)
        self.new_rows += len(logs)
        self.rows.extend(batch[i] for i in logs[-MAX_LOG_ROWS:])
        last: dict[bytes, int] = {kind: i for i, kind in enumerate(kinds)}  # each kind's last index
        if b"threads" in last:
            self.threads = batch[last[b"threads"]]
        if b"status" in last:
            self.status_changed = True
        for kind in (b"result", b"deadlock", b"stacks", b"check", b"prediction"):
            if kind in last:
                # The newest that is an event (as take() would have left it), else what was there.
                for i in range(last[kind], -1, -1):
                    if kinds[i] == kind and (event := _event(batch[i])) is not None:
                        setattr(self, kind.decode(), event)
                        break

    def message(self) -> str:
        """The fragments for what changed since the last message ('' when nothing did)."""
        if not (self.first or self.new_rows or self.threads is not None or self.status_changed
                or self.result or self.deadlock or self.stacks or self.check or self.prediction):
            return ""
        items = list(self.rows)
        # A flood: draw only the newest screenful, replacing what is there, so the browser never
        # has more than FLOOD_ROWS new rows to lay out per message; a trickle is appended.
        replace = self.first or self.new_rows > FLOOD_ROWS
        if replace and not self.first:
            items = items[-FLOOD_ROWS:]  # cut before parsing: rows from disk are parsed only if drawn
        rows = []
        for item in items:
            event = _event(item)
            if event is not None:
                rows.append(event)
            else:
                self.log_total -= 1  # its kind said log, but the line is no event: not a row at all
        self.drawn = len(rows) if replace else min(MAX_LOG_ROWS, self.drawn + len(rows))
        threads = _thread_rows(self.threads) if self.threads is not None else None
        with self.app.app_context():
            parts = dict(
                run=self.run, first=self.first, replace=replace,
                rows_html=Markup("".join(fragments.log_row(event) for event in rows)),
                any_rows=bool(rows) or self.first, hidden=self.log_total - self.drawn,
                threads=threads, status_changed=self.status_changed, result=self.result,
                deadlock=self.deadlock, stacks=self.stacks, check=self.check,
                prediction=self.prediction,
            )
            try:
                html = render_template("_partials/_ws_update.html", **parts)
            except (TemplateError, TypeError, ValueError, AttributeError, KeyError, IndexError):
                # threads, result, deadlock and stacks are the lesson's to shape (a program may
                # print {"kind": "result", "values": 3}); the templates expect the kit's shapes.
                # Without them this once, the page still gets its rows and status, and lives on.
                parts.update(threads=None, result=None, deadlock=None, stacks=None, check=None,
                             prediction=None)
                html = render_template("_partials/_ws_update.html", **parts)
        self.first, self.new_rows, self.threads, self.status_changed = False, 0, None, False
        self.rows.clear()
        self.result = self.deadlock = self.stacks = self.check = self.prediction = None
        return html


def _thread_rows(item: tuple[bytes, dict[str, Any] | None]) -> list[dict[str, Any]] | None:
    """A ``threads`` snapshot's rows, only those that are objects (the table draws one per row);
    None (the table stays as it is) when the line is not an event at all."""
    event = _event(item)
    if event is None:
        return None
    rows = event.get("threads")
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


# What a page viewer had taken in of a finished run's whole history, before drawing it: the next
# viewer of that run starts from here instead of reading a million events again. Keyed by the log,
# so it goes when the run does.
_histories: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_HISTORY = ("log_total", "new_rows", "rows", "threads", "status_changed", "result", "deadlock",
            "stacks", "check", "prediction")


def stream_page(ws, app: Flask, run: Run, manager: RunManager) -> None:
    """HTML fragments for ``#live``: one message per ``BATCH_WINDOW`` at most, history first."""
    view = PageView(app, run)
    cursor = -1
    history = _histories.get(run.log)
    if history is None and run.log.closed:  # a finished run: its history from its model's index
        history = models.page_history(run, MAX_LOG_ROWS)
    if history is not None:
        cursor = history["cursor"]
        for name in _HISTORY:
            setattr(view, name, history[name])
        view.rows = deque(view.rows, maxlen=MAX_LOG_ROWS)  # a copy: this viewer's own
    while not manager.closing.is_set():
        ended = run.log.closed  # read before the events, so none can slip in after we decide
        batch = run.log.read(cursor, JSON_BATCH)
        view.take_all(batch)
        cursor += len(batch)
        if len(batch) == JSON_BATCH:
            continue  # catching up on history: draw once, at the end of it
        if ended and view.first and cursor > JSON_BATCH and history is None:
            _histories[run.log] = {"cursor": cursor, **{name: getattr(view, name) for name in _HISTORY},
                                   "rows": deque(view.rows)}
        if ended and not batch:
            # The final status event can be drawn before the run's status changes (the event goes
            # to disk first); the log closes only after the change, so draw the status once more.
            view.status_changed = True
        message = view.message()
        if message:
            send(ws, message)
        if ended and not batch:
            return
        if not batch:
            run.log.wait(cursor, WAIT_SLICE)
        time.sleep(BATCH_WINDOW)


class OneWriterSocket:
    """A websocket's TCP socket whose writes go out one at a time, each whole.

    Two threads write to every websocket: ours (``send``) and simple-websocket's reader, which sends
    a ping every ``ping_interval`` and answers pings and close frames with its own ``socket.send``.
    A ping written while one of our large frames is half out would land inside it: the browser
    would see a corrupt frame and drop the connection. Everything else goes to the real socket.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._writing = threading.Lock()

    def sendall(self, data: bytes, *flags: int) -> None:
        with self._writing:
            self._sock.sendall(data, *flags)

    def send(self, data: bytes, *flags: int) -> int:
        self.sendall(data, *flags)  # whole, too: a plain send may write only part of a frame
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def send(ws, data: str | bytes) -> None:
    """Send one text message whole, or give up on a viewer that has not taken it in SEND_DEADLINE.

    simple-websocket's own ``send`` uses ``socket.send`` with no deadline: a viewer that stops
    reading (a frozen tab) would hold this thread forever. ``sendall`` under a socket timeout either
    delivers the whole frame or raises, and then the viewer is cut loose (the run goes on).
    ``data`` as bytes must be UTF-8 already (the JSON socket's lines are): its frame is built here,
    header and payload in one buffer, instead of decoding megabytes for wsproto to encode again.
    """
    if not ws.connected:
        raise ConnectionClosed(ws.close_reason, ws.close_message)
    ws.sock.settimeout(SEND_DEADLINE)
    if isinstance(data, str):
        ws.sock.sendall(ws.ws.send(TextMessage(data=data)))
    else:
        ws.sock.sendall(text_frame(data))


def text_frame(*parts: bytes) -> bytes:
    """One unmasked, final text frame (RFC 6455 5.2) whose payload is ``parts`` joined: what
    wsproto would write for the same text, built with one copy."""
    n = sum(map(len, parts))
    if n < 126:
        head = bytes((0x81, n))
    elif n < 1 << 16:
        head = b"\x81\x7e" + n.to_bytes(2, "big")
    else:
        head = b"\x81\x7f" + n.to_bytes(8, "big")
    return b"".join((head, *parts))


def serve_socket(fn, *args) -> None:
    """Run a stream; a viewer that went away or stalled is the normal end it is.

    Then close the connection ourselves: send the close frame, give the viewer a moment to answer
    it, and shut the socket. Left to gunicorn, a socket whose peer does not close first costs its
    main loop a 2 s wait (``close_graceful``) during which it accepts nobody.
    """
    ws = args[0]
    ws.sock = OneWriterSocket(ws.sock)  # from now on the reader thread's writes take turns with ours
    with contextlib.suppress(ConnectionClosed, OSError):
        fn(*args)
    with contextlib.suppress(ConnectionClosed, OSError):
        ws.close()
    ws.thread.join(CLOSE_WAIT)
    with contextlib.suppress(OSError):
        ws.sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        ws.sock.close()
