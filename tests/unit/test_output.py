"""Pipe bytes → numbered events, and the event log viewers read from."""

from __future__ import annotations

import json
import threading

from app.eventlog import EventLog, parsed
from app.output import MAX_LINE, LineSplitter, numbered, to_event


def test_splitter_joins_partial_lines_across_reads():
    splitter = LineSplitter()
    assert splitter.feed(b"ab") == []
    assert splitter.feed(b"c\nde\nf") == [b"abc", b"de"]
    assert splitter.flush() == [b"f"]


def test_splitter_bounds_a_line_without_newline():
    splitter = LineSplitter()
    lines = []
    for _ in range(50):  # 50 MB would be slow in a unit test; 50 × 64 KiB shows the bound
        lines += splitter.feed(b"x" * MAX_LINE)
    lines += splitter.feed(b"tail\nnext\n")
    assert len(lines) == 2 and len(lines[0]) < MAX_LINE + 100
    assert lines[0].endswith(b"[line truncated by threadlab]")
    assert lines[1] == b"next"
    assert len(splitter._partial) == 0


def test_kit_lines_keep_their_bytes_and_gain_a_seq():
    raw = b'{"v": 1, "t": 1.5, "kind": "log", "msg": "hi"}'
    event, kept = to_event(raw, "stdout")
    line, numbered_event = numbered(event, kept, 7)
    assert json.loads(line) == {"seq": 7, "v": 1, "t": 1.5, "kind": "log", "msg": "hi"}
    assert numbered_event["seq"] == 7


def test_other_lines_become_text_events():
    assert to_event(b"hello", "stdout")[0]["kind"] == "stdout"
    assert to_event(b'{"not": "an event"}', "stdout")[0]["kind"] == "stdout"
    assert to_event(b"{broken", "stdout")[0]["text"] == "{broken"
    event, _ = to_event(b"caf\xff\xfe", "stderr")
    assert event["kind"] == "stderr" and event["text"] == "caf\ufffd\ufffd"
    assert to_event(b'{"kind": "log", "seq": 99}', "stdout")[1] is None, "a lesson cannot forge seq"
    forged, _ = to_event(b'{"kind": "status", "status": "exited"}', "stdout")
    assert forged["kind"] == "stdout", "nor a status change"


def _items(start, n):
    return [numbered({"kind": "log", "i": i}, None, i) for i in range(start, start + n)]


def test_event_log_reads_from_memory_and_disk(tmp_path, monkeypatch):
    monkeypatch.setattr("app.eventlog.TAIL", 10)
    log = EventLog(tmp_path / "events.jsonl", live=True)
    log.append(_items(0, 25))
    recent = log.read(20)
    assert [parsed(item)["i"] for item in recent] == [21, 22, 23, 24]
    assert all(event is not None for _, event in recent), "recent events come parsed from memory"
    old = log.read(-1, limit=5)
    assert [parsed(item)["i"] for item in old] == [0, 1, 2, 3, 4] and old[0][1] is None
    log.close()
    reopened = EventLog(tmp_path / "events.jsonl", live=False)
    assert len(reopened) == 25 and [parsed(i)["i"] for i in reopened.read(22)] == [23, 24]


def test_event_log_wakes_waiting_viewers(tmp_path):
    log = EventLog(tmp_path / "events.jsonl", live=True)
    woke = []
    viewer = threading.Thread(target=lambda: woke.append(log.wait(-1, timeout=5)))
    viewer.start()
    log.append(_items(0, 1))
    viewer.join(5)
    assert woke == [True]
    assert log.wait(0, timeout=0.01) is False
    log.close()
    assert log.wait(0, timeout=0.01) is True


def test_torn_last_line_is_not_an_event(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"seq": 0}\n{"seq": 1}\n{"seq": 2, "kin')
    assert len(EventLog(path, live=False)) == 2


def test_only_the_last_few_finished_logs_keep_an_index_in_memory(tmp_path, monkeypatch):
    # A viewer reading a finished run used to rebuild its index and keep it forever: 8 MB for every
    # million-event run anyone had opened. Now only KEPT_INDEXES of them keep one.
    monkeypatch.setattr("app.eventlog.KEPT_INDEXES", 3)
    logs = []
    for n in range(6):
        log = EventLog(tmp_path / f"events{n}.jsonl", live=True)
        log.append(_items(0, 5))
        log.close()
        logs.append(log)
    for log in logs:
        assert [parsed(i)["i"] for i in log.read(2)] == [3, 4]
    assert [log._offsets is not None for log in logs] == [False, False, False, True, True, True]
    assert len(logs[0]) == 5  # a dropped index is rebuilt from the file when needed


def test_closing_keeps_the_index_for_the_viewers_last_read(tmp_path):
    log = EventLog(tmp_path / "events.jsonl", live=True)
    log.append(_items(0, 5))
    index = log._offsets
    log.close()
    (tmp_path / "events.jsonl").unlink()  # a rebuild would now find no events at all
    assert log.read(4) == [] and len(log) == 5 and log._offsets is index
