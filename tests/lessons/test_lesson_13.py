"""Lesson 13: a blocking call stalls the event loop, the same call in a thread does not; threads
hand every item into the loop and get the loop's answers back."""

from __future__ import annotations


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
