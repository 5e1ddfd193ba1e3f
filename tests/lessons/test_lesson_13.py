"""Lesson 13: a blocking call stalls the event loop, the same call in a thread does not; threads
hand every item into the loop and get the loop's answers back."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT, lesson_module


def test_blocking_the_loop_shows_as_lag_offloading_does_not(lesson):
    run = lesson("13", "--block-ms", "300")
    assert run.returncode == 0, run.stderr[-3000:]
    result = run.result
    # The ticker due during a 300 ms block wakes at least 300 - 20 (one tick) ms late; wide margins.
    assert result["max_lag_blocking_ms"] >= 200
    assert result["max_lag_offloaded_ms"] < result["max_lag_blocking_ms"] / 2
    # The same blocking call ran in the loop's thread, then in an executor thread.
    blockers = [e["thread"] for e in run.of_kind("log") if e["msg"].startswith("blocking for")]
    assert blockers[0] == "MainThread" and blockers[1].startswith("Offload")


def test_every_item_from_the_threads_reaches_the_coroutine(lesson):
    run = lesson("13", "--feeders", "4", "--items", "7", "--feed-ms", "5", "--block-ms", "50")
    assert run.returncode == 0, run.stderr[-3000:]
    result = run.result
    assert result["items_from_threads"] == result["items_consumed"] == 28
    assert result["answers"] == 4  # each feeder got its run_coroutine_threadsafe answer
    # call_soon_threadsafe wakes the loop at once: far below the ~hundreds of ms of a missed wake-up.
    assert result["max_handoff_ms"] < 100
    # The consumer coroutine runs in the loop's thread, whichever thread sent the item.
    got = [e for e in run.of_kind("log") if e["msg"].startswith("got item")]
    assert len(got) == 28 and {e["thread"] for e in got} == {"MainThread"}


def test_a_wait_that_times_out_in_the_loop_is_logged_and_fails_the_run():
    # The consumer's wait for one item, cut to 50 ms while feeders take 500 ms per item: the
    # TimeoutError leaves asyncio.run and main logs it with its traceback (exercise 3 ends the same
    # way). Run in a child, as the lesson always is: the constant is changed before main() starts.
    code = (f"import importlib, sys; m = importlib.import_module({lesson_module('13')!r}); "
            "m.GET_TIMEOUT = 0.05; sys.exit(m.main(['--log-format', 'json', '--feed-ms', '500', "
            "'--items', '1', '--feeders', '1', '--block-ms', '50']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1, proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    errors = [e for e in events if e["kind"] == "log" and e["level"] == "ERROR"]
    assert len(errors) == 1 and errors[0]["thread"] == "MainThread"
    assert "TimeoutError" in errors[0]["exc"] and "in consume" in errors[0]["exc"]
    assert not [e for e in events if e["kind"] == "result"]  # no numbers from a run that broke
