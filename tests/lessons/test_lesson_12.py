"""Lesson 12: queued slots run in the main thread, direct ones in the QThread; no PySide6 → skipped."""

from __future__ import annotations

import importlib.util

import pytest

needs_pyside6 = pytest.mark.skipif(importlib.util.find_spec("PySide6") is None,
                                   reason="PySide6 is not installed (pip install 'threadlab[qt]')")


@needs_pyside6
def test_queued_slot_runs_in_main_thread_direct_slot_in_worker(lesson):
    run = lesson("12", "--steps", "6", "--step-ms", "20")
    assert run.returncode == 0, run.stderr[-3000:]
    result = run.result
    assert result["progress_sent"] == result["progress_received"] == 6
    assert result["worker_thread_name"] == "Qt-Worker"
    assert result["slot_threads"] == {"receiver_slot": "MainThread", "function_slot": "Qt-Worker"}
    assert result["python_name_before"].startswith("Dummy-")
    assert result["finished_cleanly"] == 1 and result["timed_out"] == 0
    # Six steps of 20 ms each: the worker cannot be faster; the main loop keeps pace with it, so the
    # receiver's last call comes right after the worker's last emit (1 s: a margin for slow machines).
    assert result["worker_ms"] >= 6 * 20
    assert 0 <= result["receiver_behind_ms"] < 1000
    # The log lines carry the thread that wrote them: the same story from the other side.
    threads = {e["msg"].split(":")[0]: e["thread"] for e in run.of_kind("log") if "slot: step" in e["msg"]}
    assert threads == {"receiver slot": "MainThread", "function slot": "Qt-Worker"}


@needs_pyside6
def test_direct_connection_runs_the_receiver_in_the_worker_thread(lesson):
    run = lesson("12", "--steps", "3", "--step-ms", "10", "--receiver-connection", "direct")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.result["slot_threads"]["receiver_slot"] == "Qt-Worker"
    assert run.result["progress_received"] == 3
    assert run.result["receiver_behind_ms"] == 0  # called inside emit, before the worker finished


@needs_pyside6
def test_timeout_stops_the_worker_and_fails(lesson):
    run = lesson("12", "--steps", "1000", "--step-ms", "100", "--timeout", "1")
    assert run.returncode == 1
    result = run.result
    assert result["timed_out"] == 1 and result["finished_cleanly"] == 1
    assert 0 < result["progress_sent"] < 1000


def test_without_pyside6_the_lesson_is_skipped(lesson, tmp_path):
    # A PySide6.py found first on sys.path (PYTHONPATH comes before site-packages) that refuses to
    # import: the lesson sees exactly what it would see without the package installed.
    (tmp_path / "PySide6.py").write_text('raise ImportError("No module named PySide6 (simulated)")\n')
    run = lesson("12", env={"PYTHONPATH": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.result == {"skipped": 1}
    assert any("pip install 'threadlab[qt]'" in message for message in run.messages())
