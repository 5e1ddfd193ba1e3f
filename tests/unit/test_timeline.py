"""The timeline SVG: round, distinct axis labels; a legend for the colours it uses; an empty state."""

import json

import pytest

from app import timeline


def snapshot(t: float, **states: str) -> bytes:
    rows = [{"name": name, "state": state} for name, state in states.items()]
    return json.dumps({"kind": "threads", "t": t, "threads": rows}).encode()


@pytest.mark.parametrize("span, first_labels", [
    (0.004, ["0 ms", "1 ms"]), (0.3, ["0.0 s", "0.1 s"]), (1.82, ["0.0 s", "0.5 s"]), (60.5, ["0 s", "20 s"]),
])
def test_axis_labels_are_round_distinct_and_inside_the_span(span, first_labels):
    ticks = timeline.axis_ticks(span)
    labels = [label for _, label in ticks]
    assert labels[:2] == first_labels
    assert len(set(labels)) == len(labels) and 3 <= len(labels) <= 6
    assert all(0 <= offset <= span + 1e-9 for offset, _ in ticks)


def test_legend_names_the_states_and_marks_drawn_and_no_others():
    lines = [snapshot(100.0, **{"MainThread": "running", "Worker-1": "waiting-lock"}),
             snapshot(101.0, **{"MainThread": "sleeping", "Worker-1": "waiting-lock"}),
             json.dumps({"kind": "sync", "t": 100.5, "thread": "Worker-1", "op": "acquired",
                         "obj": "a"}).encode()]
    svg = timeline.render(lines)
    legend = svg[svg.index('<g class="legend">'):]
    for word in ("running", "sleeping", "waiting-lock", "sync"):
        assert f">{word}</text>" in legend
    for word in ("waiting-queue", "deadlock", "signal"):
        assert f">{word}</text>" not in legend
    assert 'data-thread="Worker-1"' in svg and "no thread snapshot yet" not in svg


def test_a_run_without_snapshots_says_so():
    assert "no thread snapshot yet" in timeline.render([])


def test_a_long_thread_name_is_shortened_on_its_lane_and_whole_on_hover():
    svg = timeline.render([snapshot(1.0, **{"Thread-1 (_do_shutdown_default_executor)": "running"})])
    assert ">Thread-1 (_do_shutdow…<title>Thread-1 (_do_shutdown_default_executor)</title>" in svg


def test_lines_that_are_not_events_or_have_odd_fields_are_skipped_not_fatal():
    lines = [b"garbage", b"[]", b"null", b'{"kind": "log", "msg": "tor', b"\xff\xfe",
             b'{"kind":"threads","t":1.0,"threads":[{"name":"Worker-1","state":"running"},3,"x"]}',
             b'{"kind": "threads", "t": 1.5, "threads": [{"name": ["a"], "state": {"b": 1}}]}',
             b'{"kind": "log", "t": NaN, "msg": "nan"}', b'{"kind": "log", "t": 1e999}',
             b'{"kind": "log", "t": 1e300}', b'{"kind": "log", "t": true, "thread": null}',
             b'{"kind": "sync", "t": 2.0, "thread": {"n": 1}, "op": "acquired"}',
             b'{"kind": "deadlock", "t": 2.0, "cycle": 7}',
             b'{"kind": "deadlock", "t": 2.0, "cycle": [1, {}]}',
             b'{"kind":"log","t":2.5,"thread":"\\ud800","msg":"lone \\udc00"}',
             snapshot(3.0, **{"Worker-1": "done"})]
    svg = timeline.render(lines)
    svg.encode("utf-8")
    assert 'data-thread="Worker-1"' in svg and "\ufffd" in svg
    assert ">0.0 s</text>" in svg and ">2.0 s</text>" in svg, "the axis spans 1.0 to 3.0, not to 1e300"


def test_log_marks_past_the_mark_limit_are_not_drawn(monkeypatch):
    monkeypatch.setattr(timeline, "MAX_MARKS", 2)
    lines = [b'{"kind":"log","t":%d,"thread":"W","msg":"m"}' % i for i in range(5)]
    svg = timeline.render(lines)
    assert svg.count('stroke="#9ca3af" stroke-width="1"') == 2
