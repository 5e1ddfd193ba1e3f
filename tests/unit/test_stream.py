"""The websocket's write path: a ping from simple-websocket's reader thread never lands inside one
of our frames while that frame is still going out. And what the sockets and the timeline make of
odd lines: from a lesson (through app/output.py) or already in a run's events.jsonl."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import types
import xml.etree.ElementTree as ET

from app import create_app, output, stream, timeline
from app.eventlog import EventLog
from app.output import LineSplitter, numbered, to_event
from app.stream import OneWriterSocket
from tests.unit.conftest import wait_until


def read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(min(65536, size - got))
        assert chunk, "connection closed early"
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def test_a_ping_waits_for_the_frame_that_is_half_out():
    ours, viewer = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    viewer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    wrapped = OneWriterSocket(ours)
    frame, ping = b"F" * 1_000_000, b"<ping>"
    sender = threading.Thread(target=wrapped.sendall, args=(frame,))
    sender.start()
    time.sleep(0.2)  # the frame now fills both buffers; its sendall waits for the viewer to read
    pinger = threading.Thread(target=wrapped.send, args=(ping,))
    pinger.start()
    time.sleep(0.2)  # give the ping every chance to get in first
    received = read_exactly(viewer, len(frame) + len(ping))
    sender.join(5)
    pinger.join(5)
    assert received == frame + ping
    ours.close()
    viewer.close()


def test_everything_else_reaches_the_real_socket():
    ours, viewer = socket.socketpair()
    wrapped = OneWriterSocket(ours)
    assert wrapped.fileno() == ours.fileno()
    wrapped.settimeout(2.5)
    assert ours.gettimeout() == 2.5
    assert wrapped.send(b"hello") == 5 and viewer.recv(5) == b"hello"
    ours.close()
    viewer.close()


# -- odd lines, from a lesson or in events.jsonl, through every viewer -----------------------------

T = 1_700_000_000.0
KIT = b'{"v": 1, "t": %.3f, "kind": "log", "level": "INFO", "thread": "MainThread", "msg": "normal %d"}'
MIXED_STDOUT = [
    KIT % (T, 1),
    b'{"v":1,"t":%.3f,"kind":"log","level":"INFO","thread":"Worker-1","msg":"compact"}' % (T + 0.1),
    b'{"v": 1, "t": %.3f, "kind": "log", "thread": "\\ud800x", "msg": "lone \\udc00 surrogate"}' % (T + 0.2),
    b'{"v": 1, "t": %.3f, "kind": "log", "msg": "raw bytes \xff\xfe and \xed\xa0\x80"}' % (T + 0.3),
    b'{"kind":"threads","t":%.3f,"threads":[{"name":"Worker-1","state":"running"},7]}' % (T + 0.35),
    b'{"extra": {"kind": "status"}, "t": %.3f, "kind": "log", "msg": "nested kind first"}' % (T + 0.4),
    b'{"kind": "log", "t": NaN, "msg": "nan time"}',
    b'{"kind": "log", "t": 1e999, "msg": "infinite time"}',
    b'{"kind": "log", "t": "soon", "thread": ["a"], "level": 3, "msg": {"not": "text"}}',
    b'{"kind": "log", "msg": "safe", "_html": "<b id=injected>"}',
    b'{"kind": "result", "values": 3}',
    b'{"kind": "threads", "threads": "oops"}',
    b"plain \xff text", b"{garbage", b"[]", b"null", b'"str"', b"42", b"-1.5e3", b"",
    b'{"kind": "log", "msg": "' + b"x" * 100_000 + b'"}',  # over MAX_LINE: cut, so text
    b'{"kind": "log", "v": ' + b"[" * 50_000,
    KIT % (T + 1, 2),
]
LOG_KINDS = ("log", "stdout", "stderr", "signal")


class FakeWs:
    """Collects what stream.send would send (send is patched; see json_messages)."""

    def __init__(self) -> None:
        self.messages: list[str] = []


def strict(text: str):
    def refuse(name):
        raise AssertionError(f"{name} is not JSON to a browser")

    return json.loads(text, parse_constant=refuse)


def json_stream(monkeypatch, log, after: int = -1, parse=strict) -> list[dict]:
    """Every event ``stream_json`` sends for ``log`` until it ends, each message JSON (strict: no
    NaN, which only a file older than ingest's cleaning can hold)."""
    ws = FakeWs()
    monkeypatch.setattr(stream, "send", lambda ws, text: ws.messages.append(text))
    run = types.SimpleNamespace(log=log)
    stream.stream_json(ws, run, types.SimpleNamespace(closing=threading.Event()), after)
    return [event for message in ws.messages for event in parse(message)]


def fake_run(log, status: str) -> types.SimpleNamespace:
    """What the page templates read of a run: a stand-in, so a page can be drawn from any log."""
    return types.SimpleNamespace(id="r1", lesson="01", title="t", status=status, pid=1, exit_code=None,
                                 live=status == "running", signals=["SIGINT"], log=log, owner="",
                                 started=0.0, ended=None)


def page(app, run) -> tuple[str, str]:
    """A fresh page viewer's first message for the run (its whole history), and its log rows."""
    view = stream.PageView(app, run)
    cursor = -1
    while batch := run.log.read(cursor, 7):  # small reads: the viewer takes events across reads
        for item in batch:
            view.take(item)
        cursor += len(batch)
    with app.test_request_context("/runs/r1/ws"):  # a socket is served inside its upgrade request
        html = view.message()
    html.encode("utf-8")  # what the websocket does with it: a lone surrogate would raise here
    rows = re.search(r'<hx-partial hx-target="#log-body"[^>]*>(.*?)</hx-partial>', html, re.S)
    return html, rows.group(1) if rows else ""


def svg_of(log) -> ET.Element:
    lines = [line for line, _ in log.read(-1, 100_000)]
    svg = timeline.render(lines)
    svg.encode("utf-8")
    return ET.fromstring(svg)


def test_a_mixed_stream_reaches_every_viewer_the_same_live_and_replayed(tmp_path, monkeypatch):
    app = create_app({"DATA_DIR": str(tmp_path / "data")})
    log = EventLog(tmp_path / "events.jsonl", live=True)
    splitter = {"stdout": LineSplitter(), "stderr": LineSplitter()}
    pending = [(output.server_event("status", status="running"), None)]
    for i in range(0, len(data := b"\n".join(MIXED_STDOUT) + b"\n"), 4096):  # pipe reads, cut anywhere
        pending += [to_event(line, "stdout") for line in splitter["stdout"].feed(data[i:i + 4096])]
    pending += [to_event(line, "stderr") for line in splitter["stderr"].feed(b"stderr \x80 bytes\nlast")]
    pending += [to_event(line, "stderr") for line in splitter["stderr"].flush()]
    pending.append((output.server_event("signal", signal="SIGINT", by="dashboard"), None))
    items = [numbered(event, raw, seq) for seq, (event, raw) in enumerate(pending)]
    log.append(items[:10])
    log.append(items[10:])
    expected = [event for _, event in items]

    live_html, live_rows = page(app, fake_run(log, "running"))
    live_svg = svg_of(log)
    streamed: list[dict] = []
    reader = threading.Thread(target=lambda: streamed.extend(json_stream(monkeypatch, log)))
    reader.start()  # the JSON socket follows the live log, then sees it close
    log.close()
    reader.join(10)
    assert not reader.is_alive()

    # Every line, in order, in the JSON stream, and equal to the event the server holds.
    assert [e["seq"] for e in streamed] == list(range(len(items)))
    # (the page viewer cached each row's HTML on its event under a key JSON cannot have: left out)
    assert streamed == [{k: v for k, v in e.items() if isinstance(k, str)} for e in expected]
    logs = [e["msg"] for e in streamed if e["kind"] == "log"]
    assert logs[:3] == ["normal 1", "compact", "lone \ufffd surrogate"]
    assert any(e["kind"] == "stdout" and e["text"] == "plain \ufffd text" for e in streamed)

    replay = EventLog(tmp_path / "events.jsonl", live=False)
    replay_html, replay_rows = page(app, fake_run(replay, "exited"))
    assert replay_rows == live_rows, "live (from memory) and replayed (from disk) pages show the same rows"
    assert live_rows.count("<tr") == sum(e["kind"] in LOG_KINDS for e in streamed) > 20
    assert ">compact</td>" in live_rows and ">nested kind first</td>" in live_rows
    assert "injected" not in live_rows and "&lt;b" not in live_rows, "a lesson's _html key is no cached row"
    assert "Worker-1" in live_html, "the thread table drew the snapshot's one row that is an object"

    replay_svg = svg_of(replay)
    for svg in (live_svg, replay_svg):
        assert {g.get("data-thread") for g in svg.iter("{http://www.w3.org/2000/svg}g")} >= {"Worker-1"}
    assert ET.tostring(live_svg) == ET.tostring(replay_svg)


GARBAGE_FILE = [
    b'{"seq": 0, "v": 1, "t": 100.0, "kind": "status", "status": "running"}',
    b"garbage",
    b"[]",
    b"null",
    b'"str"',
    b"42",
    b"",
    b'{"seq": 5, "kind": "log", "t": 100.1, "msg": "tor{"seq": 6, "kind": "log", "t": 100.2, "msg": "x"}',
    b'{"seq": 7, "kind":"log","t":100.3,"thread":"\\ud800","msg":"old surrogate \\udfff"}',
    b'{"seq": 8, "kind": "log", "t": 100.4, "msg": "old bytes \xff"}',
    b'{"seq": 9, "kind": "log", "t": "soon", "msg": {"a": 1}}',
    b'{"seq": 10, "kind": "log", "t": NaN, "msg": "nan"}',
    b'{"seq": 11, "kind": "threads", "t": 100.5, "threads": [1, "x", {"name": ["a"], "state": {}}, '
    b'{"name": "Worker-1", "state": "running", "cpu_s": "lots", "holds": 5}]}',
    b'{"seq": 12, "kind": "result", "values": [1, 2]}',
    b'{"seq": 13, "kind": "deadlock", "t": 100.6, "cycle": 7}',
    b'{"seq": 14, "kind": "deadlock", "t": 100.6, "cycle": [1, {"thread": null, "holds": 3}]}',
    b'{"seq": 15, "kind": "stacks", "threads": "x"}',
    b'{"seq": 16, "kind": "log", "t": 100.7, "msg": "last", "_html": "<b id=injected>"}',
    b'{"seq": 17, "kind": "sync", "t": 100.8, "thread": {"n": 1}, "op": "acquired"}',
]


def test_garbage_in_a_finished_runs_file_is_skipped_by_every_viewer(tmp_path, monkeypatch):
    app = create_app({"DATA_DIR": str(tmp_path / "data")})
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in GARBAGE_FILE) + b'{"seq": 18, "kind": "lo')
    log = EventLog(path, live=False)

    html, rows = page(app, fake_run(log, "exited"))
    assert ">old surrogate \ufffd</td>" in rows and ">old bytes \ufffd</td>" in rows and ">last</td>" in rows
    assert "injected" not in rows
    assert "torn" not in rows and rows.count("<tr") == 5  # 7, 8, 9, 10, 16: the torn line 5 is no row

    svg = svg_of(log)
    assert "Worker-1" in ET.tostring(svg, encoding="unicode")

    streamed = json_stream(monkeypatch, log, parse=json.loads)  # line 10's NaN is sent as it is
    assert [e.get("seq") for e in streamed] == [0, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]


def test_a_lesson_shaped_result_deadlock_or_stacks_does_not_break_the_page(tmp_path):
    app = create_app({"DATA_DIR": str(tmp_path / "data")})
    log = EventLog(tmp_path / "events.jsonl", live=True)
    odd = [b'{"kind": "result", "values": 3}', b'{"kind": "deadlock", "cycle": 7}',
           b'{"kind": "stacks", "t": "x", "threads": [{"frames": [{"file": null}]}]}',
           b'{"kind": "log", "msg": "still here"}']
    log.append([numbered(*to_event(line, "stdout"), seq) for seq, line in enumerate(odd)])
    html, rows = page(app, fake_run(log, "running"))
    assert ">still here</td>" in rows
    log.close()


def test_kind_is_found_whatever_the_json_spacing():
    for line in (b'{"seq": 1, "kind": "log"}', b'{"seq":1,"kind":"log"}', b'{"seq": 1, "kind" : "log"}',
                 b'{"seq": 1,\t"kind":\t"log"}'):
        assert stream._item_kind((line, None)) == b"log", line  # a line from disk, as the page reads it


def test_the_page_ends_on_the_final_status_even_when_its_event_came_first(tmp_path, monkeypatch):
    """The supervisor writes the final status event, then changes the status, then closes the log.
    A viewer that draws the event in between sees the old status; it must draw the new one last."""
    app = create_app({"DATA_DIR": str(tmp_path / "data")})
    log = EventLog(tmp_path / "events.jsonl", live=True)
    run = fake_run(log, "stopping")
    sent: list[str] = []

    def send(ws, text: str) -> None:
        sent.append(text)
        if "status-stopping" in text and len(sent) == 2:  # the final event drawn, status not yet
            run.status, run.live = "stopped", False
            log.close()

    monkeypatch.setattr(stream, "send", send)
    log.append([numbered(output.server_event("status", status="stopping"), None, 0)])
    viewer = threading.Thread(target=lambda: _stream_page(app, run))
    viewer.start()
    wait_until(lambda: len(sent) == 1)
    log.append([numbered(output.server_event("status", status="stopped"), None, 1)])
    viewer.join(10)
    assert not viewer.is_alive()
    last_status = [m for m in sent if 'hx-target="#run-status"' in m][-1]
    assert "status-stopped" in last_status and "status-stopping" not in last_status


def _stream_page(app, run) -> None:
    with app.test_request_context("/runs/r1/ws"):
        stream.stream_page(None, app, run, types.SimpleNamespace(closing=threading.Event()))
