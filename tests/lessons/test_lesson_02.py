"""Lesson 02: timers fire or are cancelled, the Ticker stops at once, and exit kills only daemons."""

from __future__ import annotations


def test_defaults(lesson):
    run = lesson("02")
    assert run.returncode == 0, run.stderr[-3000:]
    result = run.result
    assert result["timers_fired"] == 2 and result["timers_cancelled"] == 2
    fired_by = {e["thread"] for e in run.of_kind("log") if e["msg"].startswith("fired")}
    assert fired_by == {"Timer-1", "Timer-2"}
    assert result["repeats"] == 4
    # Told to stop half-way through a 150 ms wait, the Ticker ends long before its next tick.
    assert result["stop_ms"] < 50
    assert result["daemon_work_lost"] == 1 and result["non_daemon_work_kept"] == 1
    # The child exits once its 200 ms worker is done, without waiting for the 1000 ms daemon.
    assert result["child_ms"] < 900
    assert "child says: worker done" in run.messages()
    assert "child says: daemon done" not in run.messages()


def test_other_settings(lesson):
    run = lesson("02", "--timers", "7", "--timer-step-ms", "100", "--tick-ms", "120", "--ticks", "6",
                 "--worker-ms", "100", "--daemon-ms", "1500")
    assert run.returncode == 0, run.stderr[-3000:]
    result = run.result
    assert (result["timers_fired"], result["timers_cancelled"]) == (3, 4)
    assert result["repeats"] == 6
    assert result["daemon_work_lost"] == 1 and result["non_daemon_work_kept"] == 1


def test_a_daemon_that_finishes_first_keeps_its_work(lesson):
    run = lesson("02", "--timers", "2", "--ticks", "1", "--worker-ms", "600", "--daemon-ms", "50")
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.result["daemon_work_lost"] == 0 and run.result["non_daemon_work_kept"] == 1
