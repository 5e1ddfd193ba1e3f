"""Serving the app: gunicorn's gthread worker on POSIX, Werkzeug's server where gunicorn cannot run.

One worker process, because the run registry lives in its memory; many threads, because each open
websocket holds one for as long as it is open. When the worker is told to stop (Ctrl-C, SIGTERM), it
first stops every run — SIGINT, SIGTERM, SIGKILL to each lesson's group within ``SHUTDOWN_S`` — and
sets ``closing`` so websocket loops return, so nothing holds the shutdown up.

Slow clients: gthread hands each connection to a pool thread, which then reads the request with
blocking reads and, since ``timeout`` is 0 (a websocket may stay open for a whole run), no limit.
Seventy clients that sent half a request line held every thread and froze the server. So the worker
first gathers the request head (and a small body of known length) with non-blocking reads, giving
the connection back to gunicorn's poller while it is incomplete: a slow client holds no thread while
it dawdles. A request gets ``REQUEST_DEADLINE`` seconds from its first byte to arrive whole, else its
connection is closed; reads the app still makes in a thread (a chunked body) stop at that deadline
too. Nothing of this touches the socket itself, so a websocket, once upgraded, keeps the blocking
socket and the timeouts app/stream.py sets on it.
"""

from __future__ import annotations

import errno
import re
import selectors
import socket
import sys
import threading
import time
from typing import Any

from flask import Flask

from . import defaults

THREADS = 64  # MAX_SOCKETS (48) websockets plus room for page and API requests
SHUTDOWN_S = defaults.SHUTDOWN_S
REQUEST_DEADLINE = 10.0  # seconds from a request's first byte until its head and body must be in
MAX_HEAD = 64 * 1024  # a head this long is handed to gunicorn to parse (and refuse) as it is
MAX_BODY_BUFFERED = 128 * 1024  # bodies up to this are read before the app runs (the app takes 64 KiB)
_CONTENT_LENGTH = re.compile(rb"\ncontent-length:[ \t]*(\d+)[ \t]*\r?\n")


class RequestDeadlineError(ConnectionResetError, TimeoutError):
    """A request that did not arrive in time. A connection reset to gunicorn's ``handle`` (logged at
    debug level, the connection closed) and a timeout to its body drain (the connection not reused)."""


def request_buffered(data: bytes) -> bool:
    """Whether ``data`` (the start of a connection's next request) can be handed to gunicorn's parser
    without its thread waiting for the client: a whole head, plus the whole body when it has a known,
    small length. Chunked bodies, ``Expect: 100-continue`` (the client waits for gunicorn's 100
    before it sends the body) and oversized requests go as soon as the head is in, or at once."""
    ends = [at for at in (data.find(b"\r\n\r\n"), data.find(b"\n\n")) if at >= 0]
    if not ends:
        return len(data) > MAX_HEAD
    end = min(ends)
    head = data[:end].lower() + b"\n"
    body_start = end + (4 if data.startswith(b"\r\n\r\n", end) else 2)
    match = _CONTENT_LENGTH.search(head)
    if b"\nexpect:" in head or match is None or int(match.group(1)) > MAX_BODY_BUFFERED:
        return True
    return len(data) - body_start >= int(match.group(1))


class DeadlineSocket:
    """What gunicorn's request parser reads from: the client socket, each read ending at the
    request's deadline. Only the parser sees it; the app and websockets get the socket itself."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline

    def recv(self, size: int) -> bytes:
        remaining = self.deadline - time.monotonic()
        if remaining > 0:
            with selectors.DefaultSelector() as selector:
                selector.register(self.sock, selectors.EVENT_READ)
                if selector.select(remaining):
                    return self.sock.recv(size)
        raise RequestDeadlineError(errno.ECONNRESET, "the request did not arrive in time")

    def __getattr__(self, name: str) -> Any:  # settimeout, gettimeout... for gunicorn's body drain
        return getattr(self.sock, name)


def prebuffer(conn: Any, deadline: float) -> str:
    """Read what the client has sent so far without waiting, into the parser's buffer.

    Returns ``"ready"`` (parse it now, in this thread), ``"wait"`` (incomplete: give the connection
    back to the poller) or ``"gone"`` (closed or past its deadline: drop it)."""
    unreader = conn.parser.unreader
    data = unreader.take_buffered()  # read-ahead from the previous request on this connection
    closed = False
    while len(data) <= MAX_HEAD + MAX_BODY_BUFFERED:
        try:
            chunk = conn.sock.recv(64 * 1024, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            break
        except OSError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
    unreader.unread(data)  # the parser reads its buffer before the socket
    if request_buffered(data):
        return "ready"
    if closed or time.monotonic() >= deadline:
        return "gone"
    return "wait"


def _stop_runs(app: Flask) -> None:
    # Experiments first, or their schedulers would start new runs as the old ones stop; their live
    # runs are stopped with everyone else's, then each scheduler records how its runs ended.
    cancelled = app.extensions["threadlab.experiments"].shutdown()
    app.extensions["threadlab.runs"].shutdown(timeout=SHUTDOWN_S)
    deadline = time.monotonic() + 0.5  # their last saves take milliseconds; the 5 s budget is spent
    for experiment in cancelled:
        experiment.join(timeout=max(0.0, deadline - time.monotonic()))


def serve(app: Flask, host: str, port: int) -> None:
    """Serve until interrupted; every run is stopped before this returns."""
    if sys.platform == "win32":
        _serve_werkzeug(app, host, port)
    else:
        _serve_gunicorn(app, host, port)


def _serve_werkzeug(app: Flask, host: str, port: int) -> None:
    try:
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    finally:
        _stop_runs(app)


def _serve_gunicorn(app: Flask, host: str, port: int) -> None:
    from gunicorn.app.base import BaseApplication
    from gunicorn.http2 import negotiation
    from gunicorn.workers.gthread import _DEFER, ThreadWorker

    class Worker(ThreadWorker):
        """gthread, plus: on the stop signal, end every run and wake every websocket loop; and a
        request holds a thread only once it has arrived (see the module docstring)."""

        def handle(self, conn):
            if (self.cfg.is_ssl or conn.is_http2
                    or negotiation.prior_knowledge_allowed(self.cfg, conn.client)):
                return super().handle(conn)  # not served here; their reads are gunicorn's own
            # The clock starts at a request's first turn in a thread, kept across deferrals.
            deadline = conn.__dict__.setdefault("threadlab_deadline", time.monotonic() + REQUEST_DEADLINE)
            try:
                conn.init()  # creates the parser; reads nothing without TLS or h2c prior knowledge
                state = prebuffer(conn, deadline)
            except OSError:
                return False
            if state == "wait" and self.alive:
                return _DEFER  # gunicorn's poller watches it; a silent one is closed after keepalive
            if state != "ready":
                # Gone, late, or the worker is stopping: gunicorn treats a deferral then as a
                # kept-alive connection and hands it straight back, spinning.
                return False
            del conn.threadlab_deadline  # the next request on this connection gets its own
            conn.parser.unreader.sock = DeadlineSocket(conn.sock, deadline)
            conn.data_ready = True
            return super().handle(conn)

        def handle_exit(self, sig, frame):
            threading.Thread(target=_stop_runs, args=(app,), name="threadlab-shutdown").start()
            super().handle_exit(sig, frame)

        def handle_quit(self, sig, frame):
            threading.Thread(target=_stop_runs, args=(app,), name="threadlab-shutdown").start()
            super().handle_quit(sig, frame)

    def after_fork(server, worker) -> None:
        # Every worker is forked from the master, where create_app() read the data dir once. One
        # that replaces a worker that died (killed, out of memory) must read it again: the runs the
        # dead one started are only on disk, and the ones that were live are now interrupted.
        if worker.age > 1:
            app.extensions["threadlab.experiments"].reload()
            app.extensions["threadlab.runs"].reload()

    class Application(BaseApplication):
        def load_config(self):
            for key, value in {
                "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                "workers": 1,
                "worker_class": Worker,
                "threads": THREADS,
                "graceful_timeout": int(SHUTDOWN_S) + 1,
                "timeout": 0,  # a websocket may be open for a long run; no heartbeat kill
                "keepalive": 5,
                "accesslog": None,
                "errorlog": "-",
                "loglevel": "warning",
                "worker_exit": lambda server, worker: _stop_runs(app),
                "post_fork": after_fork,
            }.items():
                self.cfg.set(key, value)

        def load(self):
            return app

    Application().run()
