"""Websocket routes (flask-sock). Host and Origin were checked before any upgrade (security.py);
here, before upgrading too, a socket for an unknown run gets 404 and one past the cap gets 503."""

from __future__ import annotations

import threading

from flask import Flask, abort, current_app, g, request
from flask_sock import Sock

from . import stream

sock = Sock()
_open_lock = threading.Lock()  # guards _open: sockets being served right now
_open = 0  # slots taken by sockets being upgraded or served right now


def _manager():
    return current_app.extensions["threadlab.runs"]


def refuse_before_upgrade():
    """Runs before every request; answers over plain HTTP, since flask-sock upgrades on entry."""
    # Known by the rule, not the endpoint's name: flask-sock registers its routes on a blueprint of
    # its own ("__flask_sock.page_socket"), so comparing names never matched and every socket was
    # upgraded, an unknown run's included, with no cap.
    if request.url_rule is None or not request.url_rule.websocket:
        return None
    if _manager().get(request.view_args.get("run_id", "")) is None:
        abort(404, description="no such run")
    if "after" in request.args:
        from .api import after_param

        after_param()  # a bad ?after= is a 400 now, not an error inside the open socket
    global _open
    with _open_lock:
        # The slot is taken here, checked and counted in one step, before the upgrade: counted in
        # the handler, after the 101, a burst of viewers (a class opening the shared link at once)
        # got past the cap and could take every server thread, leaving none to answer Stop.
        if _open >= current_app.config["MAX_SOCKETS"]:
            abort(503, description="too many open connections; close a tab and retry")
        _open += 1
    g.threadlab_socket = True
    return None


def release_slot(_exc: BaseException | None) -> None:
    """After the request, websocket or refused upgrade alike, give back a slot it took."""
    global _open
    if g.pop("threadlab_socket", False):
        with _open_lock:
            _open -= 1


class _ReaderThread(threading.Thread):
    """simple-websocket's reader thread for one socket, as a daemon.

    After a socket ends it can sit in ``select`` until the next ping (up to ``ping_interval``, 20 s),
    its connection already closed by gunicorn. A non-daemon one holds the worker's exit that long at
    shutdown, until the master gives up and SIGKILLs the worker.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, daemon=True, **kwargs)


@sock.route("/runs/<run_id>/ws")
def page_socket(ws, run_id: str):
    """HTML fragments that keep a run's page live."""
    manager = _manager()
    with manager.viewing(run_id) as run:
        if run is None:  # pruned since the check before the upgrade
            return
        stream.serve_socket(stream.stream_page, ws, current_app._get_current_object(), run, manager)


@sock.route("/api/runs/<run_id>/ws")
def json_socket(ws, run_id: str):
    """The run's events as JSON arrays: history (after ``?after=N``), then live; closed at the end."""
    from .api import after_param

    manager = _manager()
    with manager.viewing(run_id) as run:
        if run is None:
            return
        stream.serve_socket(stream.stream_json, ws, run, manager, after_param())


def init_app(app: Flask) -> None:
    app.config.setdefault("SOCK_SERVER_OPTIONS", {}).setdefault("thread_class", _ReaderThread)
    app.before_request(refuse_before_upgrade)
    app.teardown_request(release_slot)
    sock.init_app(app)
