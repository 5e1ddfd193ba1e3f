"""Lesson 11: direct slots run in the emitting Workers, queued slots only in the UI thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import LESSONS, ROOT


@pytest.mark.parametrize(("workers", "items"), [(3, 8), (4, 5)])
def test_every_emit_is_delivered_once_each_way_in_the_right_thread(lesson, workers, items):
    run = lesson("11", "--workers", str(workers), "--items", str(items), "--item-ms", "20")
    assert run.returncode == 0, run.stderr[-3000:]
    result = run.result
    worker_names = [f"Worker-{i}" for i in range(1, workers + 1)]

    assert result["emitted"] == workers * items
    assert result["delivered_direct"] == result["emitted"]
    assert result["delivered_queued"] == result["emitted"]
    assert result["slot_threads"] == {"count_item": worker_names, "show_item": ["UI"]}
    assert result["shown_outside_ui"] == 0
    assert result["slowest_emit_ms"] < 50, "queued calls are only posted; the direct ones are quick"
    assert result["ui_lag_ms"] < 200, "an idle UI shows each item just after its emit"

    # The log agrees, line by line: each slot's lines come from the thread that ran it, and say
    # how the call came.
    logs = run.of_kind("log")
    counted = [e for e in logs if e.get("slot") == "count_item"]
    shown = [e for e in logs if e.get("slot") == "show_item"]
    assert len(counted) == len(shown) == workers * items
    assert {e["thread"] for e in shown} == {"UI"}
    assert {e["thread"] for e in counted} == set(worker_names)
    assert all(e["msg"].endswith("(queued)") for e in shown)
    assert all(e["msg"].endswith("(direct)") for e in counted)


@pytest.mark.parametrize(("workers", "items"), [(3, 8), (4, 5)])
def test_the_collected_popup_is_dropped_and_never_called_again(lesson, workers, items):
    run = lesson("11", "--workers", str(workers), "--items", str(items), "--item-ms", "20")
    result = run.result
    assert result["dropped_after_gc"] == 1
    # The popup got every item of the first half (before the Barrier), none after.
    assert result["popup_calls"] == workers * (items // 2)
    assert any("popup closed" in m for m in run.messages())


def test_ui_connected_without_a_loop_says_direct_and_runs_in_the_workers(tmp_path):
    # The log must say what really happened: the same slot, connected directly, is "(direct)".
    source = (LESSONS / "11_app_signals_slots.py").read_text()
    queued = "item_ready.connect(ui.show_item, loop=ui_loop)"
    assert source.count(queued) == 1
    copy = tmp_path / "11_app_signals_slots.py"
    copy.write_text(source.replace(queued, "item_ready.connect(ui.show_item)"))
    proc = subprocess.run(
        [sys.executable, "-m", "lessons.kit.boot", str(copy), "--log-format", "json", "--item-ms", "10"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    shown = [e for e in events if e["kind"] == "log" and e.get("slot") == "show_item"]
    assert len(shown) == 24
    assert all(e["thread"].startswith("Worker-") and e["msg"].endswith("(direct)") for e in shown)
    result = [e for e in events if e["kind"] == "result"][-1]["values"]
    assert result["shown_outside_ui"] == result["emitted"] == 24
    assert proc.returncode == 1, "the lesson itself insists the UI slot runs in UI only"
