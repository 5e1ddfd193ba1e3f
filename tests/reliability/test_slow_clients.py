"""Slow clients cannot starve the server: 80 connections that send half a request line (and a few
that send a head but dawdle over the body, or trickle a byte at a time) leave every other request
answered at once, are closed by the request deadline, and a websocket open longer than that deadline
is not cut.

Before app/serve.py gathered requests off-thread, each half-sent request held one of gthread's 64
threads in a blocking read with no limit, and the server answered nobody for as long as they hung.
"""

from __future__ import annotations

import json
import selectors
import socket
import threading
import time

import websocket

from app.serve import REQUEST_DEADLINE
from tests.live_helpers import close, raw_request

HALF_SENT = 80  # more than gthread's 64 threads (app/serve.py THREADS)
SLOW_BODIES = 10
KEEPALIVE = 5  # app/serve.py: gunicorn closes a deferred connection silent this long
GENEROUS = 5.0  # seconds a normal request may take while the slow clients hang (it takes ms)


def connect(port: int, first_bytes: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(first_bytes)
    return sock


def wait_closed(socks: list[socket.socket], timeout: float) -> dict[socket.socket, float]:
    """When the server closed each socket (seconds from now); those still open are left out."""
    start = time.monotonic()
    closed: dict[socket.socket, float] = {}
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        while len(closed) < len(socks) and time.monotonic() - start < timeout:
            for key, _ in selector.select(0.2):
                try:
                    data = key.fileobj.recv(65536)
                except ConnectionError:
                    data = b""
                if not data:  # an error answer (400) may come first; the end of it is what counts
                    selector.unregister(key.fileobj)
                    closed[key.fileobj] = time.monotonic() - start
    return closed


def trickle(port: int, result: dict) -> None:
    """A client that never stops sending: one byte of a never-ending request head every 0.5 s."""
    start = time.monotonic()
    sock = connect(port, b"GET /api/runs HTTP/1.1\r\nX-Slow: ")
    try:
        while time.monotonic() - start < REQUEST_DEADLINE + KEEPALIVE + 10:
            time.sleep(0.5)
            sock.sendall(b"a")
    except OSError:
        pass
    finally:
        result["closed_after"] = time.monotonic() - start
        sock.close()


def watch_ticker(port: int, run_id: str, result: dict) -> None:
    """Follow a run over its JSON websocket until the server closes it."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/api/runs/{run_id}/ws", timeout=30)
    start = time.monotonic()
    ticks: list[tuple[float, int]] = []
    try:
        while True:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                result["close_code"] = int.from_bytes(data[:2], "big")
                break
            for event in json.loads(data):
                if event.get("kind") == "log" and "tick" in event:
                    ticks.append((time.monotonic() - start, event["tick"]))
    except Exception as exc:  # noqa: BLE001 - reported by the test, not lost in a thread
        result["error"] = repr(exc)
    finally:
        result["ticks"] = ticks
        close(ws)


def test_slow_clients_neither_starve_others_nor_outlive_the_deadline(fault_server):
    port = fault_server.port
    # A websocket that must stay open past the request deadline, across the whole attack.
    ticker = fault_server.start("09", count=30, interval=0.5)
    watched: dict = {}
    watcher = threading.Thread(target=watch_ticker, args=(port, ticker, watched))
    watcher.start()
    trickled: dict = {}
    trickler = threading.Thread(target=trickle, args=(port, trickled))
    trickler.start()

    half_sent = [connect(port, b"GET /api/ru") for _ in range(HALF_SENT)]
    slow_bodies = [connect(port, b"POST /runs HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                 b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"les"
                           % port) for _ in range(SLOW_BODIES)]
    attack_started = time.monotonic()
    try:
        time.sleep(0.5)  # every slow connection has reached the worker by now
        for _ in range(5):
            start = time.monotonic()
            status, _, body = raw_request(port, "GET", "/api/runs", {"Host": f"127.0.0.1:{port}"},
                                          timeout=GENEROUS + 5)
            took = time.monotonic() - start
            assert status == 200 and isinstance(json.loads(body), list), (status, body[:200])
            assert took < GENEROUS, f"GET /api/runs took {took:.1f}s beside {HALF_SENT} slow clients"

        closed = wait_closed(half_sent + slow_bodies, REQUEST_DEADLINE + KEEPALIVE + 5)
        waited = time.monotonic() - attack_started
        still_open = len(half_sent) + len(slow_bodies) - len(closed)
        assert not still_open, f"{still_open} slow connections still open after {waited:.0f}s"
    finally:
        for sock in half_sent + slow_bodies:
            sock.close()
        trickler.join(30)
        watcher.join(30)

    # The trickler sent a byte every 0.5 s, so only the deadline could end it.
    assert REQUEST_DEADLINE - 1 <= trickled["closed_after"] <= REQUEST_DEADLINE + 5, trickled
    # The websocket outlived the deadline and got every tick, then a normal close.
    assert "error" not in watched, watched
    assert [tick for _, tick in watched["ticks"]] == list(range(30))
    assert watched["ticks"][-1][0] > REQUEST_DEADLINE, "the run outlasted the request deadline"
    assert watched["close_code"] == 1000
    # Nothing of the above cost a 500 or a logged traceback.
    assert "Traceback" not in fault_server.output()
