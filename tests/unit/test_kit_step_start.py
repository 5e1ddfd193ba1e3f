"""Step mode at start-up: a kit thread slow to start (the sampler, on a busy machine) must not make
``kit.setup()`` look stuck. Its caller waits in ``Thread.start()`` for the new thread, which looked
like a wait nobody could end: a false deadlock at the first hold, and a panel showing it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

SLOW_START = """
import runpy, sys, threading, time
original = threading.Thread._bootstrap_inner
def slow(self):
    if self.name.startswith("threadlab"):
        time.sleep(0.15)  # the OS has not run the new thread yet
    return original(self)
threading.Thread._bootstrap_inner = slow
sys.argv = ["lessons.kit.boot", *sys.argv[1:]]
runpy.run_module("lessons.kit.boot", run_name="__main__", alter_sys=True)
"""


def test_a_slow_kit_thread_start_is_no_stall(tmp_path):
    script = tmp_path / "slow_start.py"
    script.write_text(SLOW_START)
    lesson = ROOT / "tests" / "fixtures" / "step_lessons" / "01_race.py"
    env = {**os.environ, "THREADLAB_STEP": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), str(lesson), "--log-format", "json"],
                            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        seen = []
        for line in proc.stdout:
            event = json.loads(line)
            if event["kind"] in ("paused", "deadlock"):
                seen.append(event)
                break
        proc.stdin.write('{"cmd": "free"}\n')
        proc.stdin.close()
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
    [first] = seen
    assert first["kind"] == "paused" and not first["stuck"]
    assert [t["name"] for t in first["threads"]] == ["MainThread"] and first["blocked"] == []
