"""Helpers for the attack and fault suites (tests/security, tests/reliability): a live server on the
fault lessons, crafted HTTP and websocket requests, and looks at real processes.

``urllib`` fills in ``Host`` (and ``websocket-client`` fills in ``Origin``) by itself, so every
request whose headers are the point of the test goes through :func:`raw_request` or
:func:`raw_upgrade`, which send exactly the headers given.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import socket
import time
from html.parser import HTMLParser
from pathlib import Path

import psutil
import websocket

from tests.conftest import ROOT, LiveServer

FAULT_LESSONS = ROOT / "tests" / "fixtures" / "fault_lessons"
FINAL = ("exited", "failed", "stopped", "killed", "timeout", "interrupted")


def start_fault_server(data_dir: Path, *extra: str) -> LiveServer:
    """``threadlab serve`` on the fault lessons (tests/fixtures/fault_lessons)."""
    return LiveServer(data_dir, "--lessons-dir", str(FAULT_LESSONS), *extra)


# -- crafted requests ----------------------------------------------------------------------------

def raw_request(port: int, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | None = None, timeout: float = 10):
    """(status, headers, body) for a request carrying exactly ``headers`` (``Host`` included:
    without one in ``headers`` none is sent)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def raw_upgrade(port: int, path: str, headers: dict[str, str], timeout: float = 10) -> tuple[int, str]:
    """Send a websocket upgrade with exactly ``headers`` (plus the upgrade ones); return the status
    code of the answer and its head. The socket is closed without a websocket handshake of ours."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
             *(f"{name}: {value}" for name, value in headers.items())]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    text = head.split(b"\r\n\r\n")[0].decode("latin-1")
    match = re.match(r"HTTP/1\.[01] (\d{3})", text)
    assert match, f"not an HTTP answer: {text!r}"
    return int(match.group(1)), text


def close(ws: websocket.WebSocket) -> None:
    """Close a websocket and its TCP connection now. After the server's close frame
    websocket-client's ``close()`` does nothing, leaving the socket to the garbage collector; and
    gunicorn's main loop waits (up to 2 s, accepting nothing) for a client to close its end."""
    ws.close()
    ws.shutdown()


def ws_json_events(live: LiveServer, run_id: str, after: int = -1, timeout: float = 30) -> list[dict]:
    """Every event of a run over ``ws /api/runs/<id>/ws`` until the server closes it."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{live.port}/api/runs/{run_id}/ws?after={after}",
                                     timeout=timeout)
    events: list[dict] = []
    try:
        while True:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                assert int.from_bytes(data[:2], "big") == 1000, "closed with a normal close frame"
                break
            events += json.loads(data)
    finally:
        close(ws)
    return events


def ws_page_messages(live: LiveServer, run_id: str, timeout: float = 30) -> list[str]:
    """Every HTML message of ``ws /runs/<id>/ws`` (the page's live fragments) until it closes."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{live.port}/runs/{run_id}/ws", timeout=timeout)
    messages: list[str] = []
    try:
        while True:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
            messages.append(data.decode("utf-8"))
    finally:
        close(ws)
    return messages


class Session:
    """A browser-like session: the session cookie and the CSRF token of a page's forms."""

    def __init__(self, live: LiveServer, page: str = "/lessons/01") -> None:
        self.live = live
        status, headers, body = raw_request(live.port, "GET", page, {"Host": f"127.0.0.1:{live.port}"})
        assert status == 200, (status, body[:300])
        self.cookie = headers["Set-Cookie"].split(";")[0]
        match = re.search(rb'name="csrf_token" value="([^"]+)"', body)
        assert match, "the page has a form with a CSRF token"
        self.token = match.group(1).decode()

    def post_form(self, path: str, fields: dict[str, str], headers: dict[str, str] | None = None,
                  cookie: bool = True):
        from urllib.parse import urlencode

        hdrs = {"Host": f"127.0.0.1:{self.live.port}",
                "Content-Type": "application/x-www-form-urlencoded"}
        if cookie:
            hdrs["Cookie"] = self.cookie
        hdrs.update(headers or {})
        return raw_request(self.live.port, "POST", path, hdrs, urlencode(fields).encode())


class Tags(HTMLParser):
    """Every start tag of an HTML text, with its attributes, and the text inside ``<script>``."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self.text: list[str] = []
        self._in_script = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        (self.script_text if self._in_script else self.text).append(data)


# -- processes -----------------------------------------------------------------------------------

def worker(live: LiveServer) -> psutil.Process:
    """The gunicorn worker: the process that holds the runs and is the lessons' parent."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = psutil.Process(live.proc.pid).children()
        if len(children) == 1:
            return children[0]
        time.sleep(0.05)
    raise AssertionError(f"expected one gunicorn worker, got {children}")


def gone(pid: int) -> bool:
    """True when no process ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pids, timeout: float) -> list[int]:
    """Wait until every pid is gone; return those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if not gone(pid)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in alive if not gone(pid)]
    return alive


def log_event(live: LiveServer, run_id: str, msg: str, timeout: float = 20) -> dict:
    """The run's first ``log`` event whose message is ``msg``."""
    return live.wait_for_event(run_id, lambda e: e["kind"] == "log" and e.get("msg") == msg, timeout)


def stop_all(live: LiveServer, timeout: float = 10) -> None:
    """Stop every live run of the server and wait until each has its final status."""
    live_ids = [r["id"] for r in live.get_json("/api/runs") if r["status"] not in FINAL]
    for run_id in live_ids:
        live.post_json(f"/runs/{run_id}/stop", {})
    for run_id in live_ids:
        live.wait_status(run_id, FINAL, timeout=timeout)
