"""Output a lesson should not write: floods, endless lines, invalid UTF-8, lines that are not events.
The server's memory stays bounded, floods stay stoppable and do not slow other runs much, and every
odd line is kept as text."""

from __future__ import annotations

import json
import threading
import time

import websocket

from tests.live_helpers import close, log_event, wait_gone, worker, ws_json_events, ws_page_messages

MAX_RSS = 150 * 1024 * 1024  # bytes: the server process while a lesson prints 50 MB without a newline
MAX_LINE = 64 * 1024  # app/output.py: a longer line is cut there
TRUNCATED = "[line truncated by threadlab]"


def truncated(event: dict) -> bool:
    return event["kind"] == "stdout" and event["text"].endswith(TRUNCATED)


def test_50_mb_without_a_newline_keeps_the_server_memory_bounded(fault_server):
    server = worker(fault_server)
    before = server.memory_info().rss
    run_id = fault_server.start("04", mb=50)
    peak = before
    deadline = time.monotonic() + 60
    while fault_server.get_json(f"/api/runs/{run_id}")["status"] in ("starting", "running"):
        peak = max(peak, server.memory_info().rss)
        assert time.monotonic() < deadline
        time.sleep(0.01)
    run = fault_server.wait_status(run_id)
    assert (run["status"], run["exit_code"]) == ("exited", 0), run
    assert peak < MAX_RSS, f"server RSS peaked at {peak / 2**20:.0f} MB (from {before / 2**20:.0f} MB)"
    events = fault_server.events(run_id)
    cut = [e for e in events if truncated(e)]
    # The kit's own events (thread snapshots) share stdout and may end the endless line early;
    # each piece between two newlines is cut at MAX_LINE all the same.
    assert cut and all(MAX_LINE <= len(e["text"]) < MAX_LINE + 100 for e in cut)
    assert [e["values"] for e in events if e["kind"] == "result"] == [{"bytes": 50 * 2**20}]
    log = fault_server.request("GET", f"/api/runs/{run_id}/events")[1]
    assert len(log) < 2 * 2**20, "the event log is bounded too, not 50 MB"


def test_a_flooding_run_stays_stoppable(fault_server):
    for newlines in (False, True):
        run_id = fault_server.start("04", mb=0, newlines=newlines)
        if newlines:
            fault_server.wait_for_event(run_id, lambda e: e["kind"] == "stdout", timeout=10)
        else:
            fault_server.wait_for_event(run_id, truncated, timeout=10)
        pid = fault_server.get_json(f"/api/runs/{run_id}")["pid"]
        time.sleep(0.3)  # flooding in earnest
        started = time.monotonic()
        assert fault_server.post_json(f"/runs/{run_id}/stop", {})[0] == 202
        run = fault_server.wait_status(run_id, timeout=5)
        elapsed = time.monotonic() - started
        assert run["status"] == "stopped" and elapsed < 1.5, (newlines, run["status"], elapsed)
        assert not wait_gone([pid], 1)


def tick_lags(live, run_id: str) -> list[float]:
    """Seconds from each tick's log time to its arrival over the JSON websocket."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{live.port}/api/runs/{run_id}/ws", timeout=30)
    lags = []
    try:
        while True:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                break
            now = time.time()
            lags += [now - e["t"] for e in json.loads(data) if "tick" in e]
    finally:
        close(ws)
    return lags


def ticker(live) -> tuple[float, list[float]]:
    """Run lesson 09 (50 ticks, 20 ms apart); its wall time and the ticks' lags."""
    run_id = live.start("09", count=50, interval=0.02)
    lags = tick_lags(live, run_id)
    run = live.wait_status(run_id)
    assert run["status"] == "exited" and len(lags) == 50, (run, len(lags))
    return run["ended"] - run["started"], lags


def test_a_flooding_run_does_not_slow_another_much(fault_server):
    """A ticker beside two floods (short lines; one endless line): about as fast as alone, its
    events as prompt, and the server's memory bounded all the while."""
    server = worker(fault_server)
    alone, alone_lags = ticker(fault_server)
    floods = [fault_server.start("04", mb=0, newlines=True), fault_server.start("04", mb=0)]
    peak, sampling = 0, threading.Event()

    def sample():
        nonlocal peak
        while not sampling.wait(0.02):
            peak = max(peak, server.memory_info().rss)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        fault_server.wait_for_event(floods[0], lambda e: e["kind"] == "stdout", timeout=10)
        fault_server.wait_for_event(floods[1], truncated, timeout=10)
        beside, beside_lags = ticker(fault_server)
        still = [fault_server.get_json(f"/api/runs/{run_id}")["status"] for run_id in floods]
    finally:
        sampling.set()
        sampler.join()
        for run_id in floods:
            fault_server.post_json(f"/runs/{run_id}/stop", {})
        for run_id in floods:
            fault_server.wait_status(run_id, timeout=5)
    assert still == ["running", "running"], "the floods were on while the ticker ran"
    assert beside < alone * 2 + 1.0, f"ticker took {beside:.2f}s beside two floods, {alone:.2f}s alone"
    assert max(beside_lags) < 1.0, f"ticks reached a client up to {max(beside_lags):.2f}s late"
    assert peak < MAX_RSS, f"server RSS peaked at {peak / 2**20:.0f} MB"
    print(f"ticker alone {alone:.2f}s (lag max {max(alone_lags):.3f}s), beside two floods "
          f"{beside:.2f}s (lag max {max(beside_lags):.3f}s); server RSS peak {peak / 2**20:.0f} MB")


def test_invalid_utf8_and_lines_that_are_not_events_are_text(fault_server):
    run_id = fault_server.start("05")
    assert fault_server.wait_status(run_id)["status"] == "exited"
    events = fault_server.events(run_id)
    assert [e["seq"] for e in events] == list(range(len(events))), "no forged seq"
    stdout = [e["text"] for e in events if e["kind"] == "stdout"]
    stderr = [e["text"] for e in events if e["kind"] == "stderr"]
    assert stdout == [
        "plain print line",
        "bad utf-8: \ufffd\ufffd and \ufffd( here",
        "{not json at all",
        "[1, 2, 3]",
        '{"no_kind": true}',
        '{"kind": "log", "seq": 999, "msg": "a forged seq"}',
        "windows line",
    ]
    assert stderr == ["stderr bad bytes: \ufffd\ufffd", "last stderr line without a newline"]
    assert log_event(fault_server, run_id, "writing bad output")
    # The raw log is valid UTF-8 JSON, one event a line, and the page socket shows the text too.
    raw = fault_server.request("GET", f"/api/runs/{run_id}/events")[1]
    assert [json.loads(line) for line in raw.decode("utf-8").splitlines()] == events


def test_weird_json_reaches_every_viewer_made_safe(fault_server):
    """Compact kit lines, an escaped lone surrogate, bytes that are not UTF-8 inside a kit line, NaN
    and a nested "kind" before the event's own: each is a log event everywhere, and the page
    socket, the JSON socket and the timeline all survive them (a lone surrogate used to kill the
    page socket and 500 the timeline; compact lines were missing from the page)."""
    run_id = fault_server.start("10")
    assert fault_server.wait_status(run_id)["status"] == "exited"
    expected = ["writing weird json", "compact line", "lone \ufffd surrogate", "bytes \ufffd\ufffd",
                "nan time", "nested kind first", "done weird json"]
    events = fault_server.events(run_id)
    assert [e["msg"] for e in events if e["kind"] == "log"] == expected
    assert [e for e in events if e["kind"] == "log" and e["msg"] == "nan time"][0]["t"] is None
    raw = fault_server.request("GET", f"/api/runs/{run_id}/events")[1]
    assert b"NaN" not in raw and b"\\ud800" not in raw
    raw.decode("utf-8")  # strict: the stored log is UTF-8
    assert ws_json_events(fault_server, run_id) == events

    html = "".join(ws_page_messages(fault_server, run_id))
    for msg in expected:
        assert f'<td class="msg">{msg}</td>' in html, msg

    status, svg = fault_server.request("GET", f"/runs/{run_id}/timeline")[:2]
    assert status == 200 and b'data-thread="MainThread"' in svg
