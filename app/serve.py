"""Serving the app: gunicorn's gthread worker on POSIX, Werkzeug's server where gunicorn cannot run.

One worker process, because the run registry lives in its memory; many threads, because each open
websocket holds one for as long as it is open. When the worker is told to stop (Ctrl-C, SIGTERM), it
first stops every run — SIGINT, SIGTERM, SIGKILL to each lesson's group within ``SHUTDOWN_S`` — and
sets ``closing`` so websocket loops return, so nothing holds the shutdown up.
"""

from __future__ import annotations

import sys
import threading

from flask import Flask

THREADS = 64  # MAX_SOCKETS (48) websockets plus room for page and API requests
SHUTDOWN_S = 4.0  # DESIGN.md: stopping the server stops every run within 5 s


def _stop_runs(app: Flask) -> None:
    app.extensions["threadlab.runs"].shutdown(timeout=SHUTDOWN_S)


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
    from gunicorn.workers.gthread import ThreadWorker

    class Worker(ThreadWorker):
        """gthread, plus: on the stop signal, end every run and wake every websocket loop."""

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
