"""What machine clients get straight from a run's file: the NDJSON download (``raw_chunks``) and the
JSON socket's arrays (``read_json``). Whole lines only, none missing, none twice; and the same bytes
after a server restart (the log read back from disk) as while the server wrote it."""

from __future__ import annotations

import json

import pytest

from app import output
from app.eventlog import EventLog
from app.output import numbered_all, server_event, text_event, to_events

KIT = b'{"v": 1, "t": 1700000000.%d, "kind": "log", "level": "INFO", "thread": "W", "msg": "line %d"}'
ODD = [b"not json", b'{"v": 1, "t": 1.0, "kind": "log", "msg": "\\ud800 lone"}', b'{"kind": "log", "t": NaN}',
       b'{"v":1,"t":2.0,"kind":"sync","op":"acquired","obj":"l","thread":"W"}', b"caf\xc3\xa9 \xff",
       b'{"kind": "threads", "t": 3.0, "threads": [{"name": "W", "ident": 1}]}', b'{"kind": "status"}']


def write_run(path, batches: int = 12, seed_lines: int = 7) -> list[bytes]:
    """A live log written as the supervisor writes one (pipe reads through ingest, numbered, one
    append each, a server event now and then), closed; returns its stored lines."""
    log = EventLog(path, live=True)
    seq, stored = 0, []
    for b in range(batches):
        lines = [KIT % (i, seq + i) for i in range(seed_lines)] + [ODD[b % len(ODD)]]
        events = to_events(lines, "stdout")
        if b % 4 == 1:
            events.append((server_event("signal", signal="SIGINT"), None))
            events.append((text_event("stderr", "Traceback \udcff (a surrogate-escaped name)"), None))
        items = numbered_all(events, seq)
        log.append(items)
        stored += [line for line, _ in items]
        seq += len(items)
    log.close()
    return stored


def whole(chunks) -> list[bytes]:
    chunks = list(chunks)
    assert all(chunk.endswith(b"\n") for chunk in chunks), "a chunk ends inside a line"
    return b"".join(chunks).split(b"\n")[:-1]


@pytest.mark.parametrize("size", [7, 100, 1 << 20])
def test_the_download_of_a_file_with_a_torn_last_line_is_whole_lines_only(tmp_path, size):
    path = tmp_path / "events.jsonl"
    stored = write_run(path)
    with open(path, "ab") as f:
        f.write(b'{"seq": 999, "v": 1, "kind": "log", "msg": "the server died wri')  # a crash mid-write
    log = EventLog(path, live=False)  # read back after a restart: no index yet
    assert whole(log.raw_chunks(-1, size)) == stored
    assert log._offsets is None, "all of a file needs no index"
    for after in range(-1, len(stored) + 2):
        assert whole(log.raw_chunks(after, size)) == stored[after + 1:], after


def test_after_n_is_gapless_and_numbered_from_n_plus_one(tmp_path):
    path = tmp_path / "events.jsonl"
    stored = write_run(path)
    for log in (EventLog(path, live=False), _live_copy(tmp_path, stored)):
        for after in (-1, 0, 5, len(stored) // 2, len(stored) - 2):
            seqs = [json.loads(line)["seq"] for line in whole(log.raw_chunks(after, 64))]
            assert seqs == list(range(after + 1, len(stored))), after


def _live_copy(tmp_path, stored: list[bytes]) -> EventLog:
    """The same lines in a log still being written (its index in memory, its tail too)."""
    log = EventLog(tmp_path / "live.jsonl", live=True)
    log.append([(line, json.loads(line)) for line in stored])
    return log


def test_a_download_covers_the_events_that_existed_when_it_began(tmp_path):
    log = EventLog(tmp_path / "events.jsonl", live=True)
    log.append(numbered_all(to_events([KIT % (i, i) for i in range(50)], "stdout"), 0))
    chunks = log.raw_chunks(9, 100)
    first = next(chunks)
    log.append(numbered_all(to_events([KIT % (i, i) for i in range(50)], "stdout"), 50))  # meanwhile
    lines = whole([first, *chunks])
    assert [json.loads(line)["seq"] for line in lines] == list(range(10, 50))
    log.close()


def test_read_json_after_a_restart_is_what_it_was_before(tmp_path, monkeypatch):
    monkeypatch.setattr("app.eventlog.TAIL", 10)  # recent events from memory, older ones from disk
    monkeypatch.setattr(output.time, "time", lambda: 1_700_000_005.0)
    path = tmp_path / "events.jsonl"
    log = EventLog(path, live=True)
    seq, asks = 0, [(-1, 1), (-1, 1000), (0, 3), (4, 7), (20, 5), (30, 100)]
    before: dict[tuple[int, int], tuple[int, bytes]] = {}
    for b in range(10):
        lines = [KIT % (i, seq + i) for i in range(5)] + [ODD[b % len(ODD)]]
        items = numbered_all(to_events(lines, "stdout"), seq)
        log.append(items)
        seq += len(items)
        for after, limit in asks:  # asked while live: some answers come from the bytes in memory
            if after < seq:
                before.setdefault((after, limit, seq), log.read_json(after, limit))
    everything = log.read_json(-1, 10_000)
    log.close()
    restarted = EventLog(path, live=False)  # a new server: the file only, its lines unchecked
    assert restarted.read_json(-1, 10_000) == everything
    for (after, limit, count), answer in before.items():
        assert restarted.read_json(after, min(limit, count - after - 1)) == answer, (after, limit)
    events = json.loads(everything[1])
    assert [e["seq"] for e in events] == list(range(seq)) and everything[0] == seq
