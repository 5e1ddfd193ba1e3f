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
