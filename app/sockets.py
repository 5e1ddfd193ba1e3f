"""Websocket routes (flask-sock). Host and Origin were checked before any upgrade (security.py);
here, before upgrading too, a socket for an unknown run gets 404 and one past the cap gets 503."""

from __future__ import annotations

import threading

from flask import Flask, abort, current_app, request
from flask_sock import Sock

from . import stream

sock = Sock()
SOCKET_ENDPOINTS = ("page_socket", "json_socket")
_open_lock = threading.Lock()  # guards _open: sockets being served right now
_open = 0


def _manager():
    return current_app.extensions["threadlab.runs"]


def refuse_before_upgrade():
    """Runs before every request; answers over plain HTTP, since flask-sock upgrades on entry."""
    if request.endpoint not in SOCKET_ENDPOINTS:
        return None
    if _manager().get(request.view_args.get("run_id", "")) is None:
        abort(404, description="no such run")
    if _open >= current_app.config["MAX_SOCKETS"]:
        abort(503, description="too many open connections; close a tab and retry")
    return None


class _Counted:
    def __enter__(self):
        global _open
        with _open_lock:
            _open += 1

    def __exit__(self, *exc):
        global _open
        with _open_lock:
            _open -= 1


@sock.route("/runs/<run_id>/ws")
def page_socket(ws, run_id: str):
    """HTML fragments that keep a run's page live."""
    with _Counted():
        stream.serve_socket(stream.stream_page, ws, current_app._get_current_object(),
                            _manager().get(run_id), _manager())


@sock.route("/api/runs/<run_id>/ws")
def json_socket(ws, run_id: str):
    """The run's events as JSON arrays: history (after ``?after=N``), then live; closed at the end."""
    after = request.args.get("after", default=-1, type=int)
    with _Counted():
        stream.serve_socket(stream.stream_json, ws, _manager().get(run_id), _manager(), after)


def init_app(app: Flask) -> None:
    app.before_request(refuse_before_upgrade)
    sock.init_app(app)
