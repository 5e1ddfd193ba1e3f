"""Lesson 11: direct slots run in the emitting Workers, queued slots only in the UI thread."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("workers", "items"), [(3, 8), (4, 5)])
def test_every_emit_is_delivered_once_each_way_in_the_right_thread(lesson, workers, items):
    run = lesson("11", "--workers", str(workers), "--items", str(items), "--item-ms", "20")
    assert run.returncode == 0, run.stderr[-3000:]
    result = run.result
    worker_names = [f"Worker-{i}" for i in range(1, workers + 1)]

    assert result["emitted"] == workers * items
    assert result["delivered_direct"] == result["emitted"]
    assert result["delivered_queued"] == result["emitted"]
    assert result["slot_threads"] == {"direct": worker_names, "queued": ["UI"]}

    # The log agrees, line by line: each slot's lines come from the thread that ran it.
    logs = run.of_kind("log")
    direct = [e["thread"] for e in logs if e.get("slot") == "direct"]
    queued = [e["thread"] for e in logs if e.get("slot") == "queued"]
    assert len(direct) == len(queued) == workers * items
    assert set(queued) == {"UI"}
    assert set(direct) == set(worker_names)


@pytest.mark.parametrize(("workers", "items"), [(3, 8), (4, 5)])
def test_the_collected_popup_is_dropped_and_never_called_again(lesson, workers, items):
    run = lesson("11", "--workers", str(workers), "--items", str(items), "--item-ms", "20")
    result = run.result
    assert result["dropped_after_gc"] == 1
    # The popup got every item of the first half (before the Barrier), none after.
    assert result["popup_calls"] == workers * (items // 2)
    assert any("popup closed" in m for m in run.messages())
