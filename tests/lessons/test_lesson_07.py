"""Lesson 07: waiting on the token ends a worker at once; sleeping ends it when the sleep is over."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from .conftest import ROOT, lesson_module


def test_responsive_workers_stop_far_sooner_than_sleepy_ones(lesson):
    run = lesson("07")
    assert run.returncode == 0, run.stderr[-3000:]
    result = run.result
    assert result["all_joined"] == 1
    assert result["workers"] == 6
    assert result["pause_ms"] == 1000
    # Defaults cancel half-way through a 1 s pause: ~1 ms against ~500 ms. Margins are wide.
    assert result["responsive_ms"] < 200
    assert result["sleepy_ms"] > 3 * result["responsive_ms"]
    assert result["sleepy_ms"] >= 250
    assert result["sleepy_ms"] < result["pause_ms"] + 200  # at most the rest of one pause


def test_the_table_shows_who_waits_on_the_token_and_who_sleeps(lesson):
    run = lesson("07", "--workers", "1")
    states = {(row["name"], row["state"]) for event in run.of_kind("threads") for row in event["threads"]}
    assert ("Responsive-1", "waiting-event") in states
    assert ("Sleepy-1", "sleeping") in states
    assert run.result["workers"] == 2


def test_ctrl_c_sets_the_token_and_the_lesson_winds_down_cleanly():
    argv = [sys.executable, "-m", lesson_module("07"), "--log-format", "json", "--duration", "120"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # wait until the workers are running
            if "started" in json.loads(line).get("msg", ""):
                break
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)  # the lesson writes little, so the pipes cannot fill meanwhile
        out, err = proc.stdout.read(), proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert time.monotonic() - started < 5, "Ctrl-C must end a 120 s run within about one pause"
    results = [json.loads(line) for line in out.splitlines() if '"kind": "result"' in line]
    assert results and results[-1]["values"]["all_joined"] == 1
