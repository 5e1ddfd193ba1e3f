"""Lesson 10: signal handlers take a note in the main thread; workers stop cleanly or report."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = "lessons.10_signals_posix"
WORKERS = 3  # the lesson's default
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals")


class LiveLesson:
    """Lesson 10 running in JSON mode under Popen, its events read as they arrive."""

    def __init__(self, *args: str, stderr_path: Path) -> None:
        self._stderr = stderr_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", MODULE, "--log-format", "json", *args],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True,
        )
        self.stderr_path = stderr_path
        self.events: list[dict] = []
        self._lines: queue.Queue = queue.Queue()  # filled by the pump thread; None marks the end
        threading.Thread(target=self._pump, name="pump", daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _read(self, timeout: float) -> bool:
        """Take one line into ``events``; False at end of output."""
        line = self._lines.get(timeout=timeout)
        if line is None:
            return False
        self.events.append(json.loads(line))
        return True

    def wait_for_log(self, predicate, count: int = 1, timeout: float = 10) -> list[dict]:
        """Read on until ``count`` log events match ``predicate``; return them."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events if e["kind"] == "log" and predicate(e)]
            if len(found) >= count:
                return found
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                pytest.fail(f"wanted {count} matching log lines, got {len(found)}; "
                            f"stderr:\n{self.stderr_path.read_text()[-2000:]}")

    def send(self, signum: int) -> float:
        os.kill(self.proc.pid, signum)
        return time.monotonic()

    def finish(self, timeout: float) -> int:
        """Wait for exit, read the rest of the output; return the exit code."""
        code = self.proc.wait(timeout=timeout)
        while self._read(timeout=5):
            pass
        return code

    @property
    def result(self) -> dict:
        results = [e for e in self.events if e["kind"] == "result"]
        assert results, f"no result; stderr:\n{self.stderr_path.read_text()[-2000:]}"
        return results[-1]["values"]

    def messages(self) -> list[str]:
        return [e["msg"] for e in self.events if e["kind"] == "log"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._stderr.close()


@pytest.fixture
def live(tmp_path):
    """``live("--duration", "60")`` starts the lesson; whatever is still running is killed after."""
    started: list[LiveLesson] = []

    def start(*args: str) -> LiveLesson:
        run = LiveLesson(*args, stderr_path=tmp_path / f"stderr-{len(started)}.txt")
        started.append(run)
        # "running" is logged after the handlers are installed and every worker has started.
        run.wait_for_log(lambda e: e["msg"].startswith("pid ") and "running" in e["msg"])
        run.wait_for_log(lambda e: e["msg"].startswith("started"), count=WORKERS)
        return run

    yield start
    for run in started:
        run.close()


def test_ends_by_itself_and_the_handler_runs_in_the_main_thread(lesson):
    run = lesson("10", "--duration", "1.5", "--usr1-after", "0.5")
    assert run.returncode == 0, run.stderr[-3000:]
    result = run.result
    assert result["ended_by"] == "timeout"
    assert result["signals_received"] == {"SIGUSR1": 1}
    # The Sender thread sent SIGUSR1, yet the handler ran in the main thread.
    assert result["handler_threads"] == ["MainThread"]
    assert result["reports"] == WORKERS
    assert result["workers_stopped_cleanly"] == WORKERS
    assert result["install_in_thread"] == "ValueError"
    assert any("ValueError" in e["msg"] for e in run.of_kind("log") if e["thread"] == "Installer")


@posix_only
def test_term_after_makes_the_lesson_stop_itself_with_sigterm(lesson):
    # What a `kill -TERM <pid>` does, sent by the Sender thread after its SIGUSR1: the exercises'
    # checks need no person at a button.
    run = lesson("10", "--duration", "30", "--usr1-after", "0.5", "--term-after", "1")
    assert run.returncode == 0, run.stderr[-3000:]
    result = run.result
    assert result["ended_by"] == "SIGTERM"
    assert result["signals_received"] == {"SIGUSR1": 1, "SIGTERM": 1}
    assert result["handler_threads"] == ["MainThread"]
    assert result["reports"] == WORKERS
    assert result["workers_stopped_cleanly"] == WORKERS
    assert result["shutdown_ms"] < 1000
    sent = [m for m in run.messages() if m.startswith("sending ")]
    assert [m.split()[1] for m in sent] == ["SIGUSR1", "SIGTERM"]


def test_runs_standalone_in_text_mode(lesson):
    run = lesson("10", "--duration", "0.6", "--usr1-after", "0", json_mode=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ended_by                = timeout" in run.stdout
    assert "stopping cleanly" in run.stdout


@posix_only
@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_sigint_and_sigterm_shut_down_cleanly_and_fast(live, name):
    run = live("--duration", "60", "--usr1-after", "0")
    sent = run.send(getattr(signal, name))
    code = run.finish(timeout=10)
    elapsed = time.monotonic() - sent
    assert code == 0
    assert elapsed < 2.0, f"took {elapsed:.2f}s to exit after {name}"
    assert any(m.startswith(f"got {name}") and "stopping workers" in m for m in run.messages())
    result = run.result
    assert result["ended_by"] == name
    assert result["signals_received"] == {name: 1}
    assert result["workers_stopped_cleanly"] == WORKERS
    assert result["shutdown_ms"] < 1000


@posix_only
def test_sigusr1_asks_every_worker_for_a_report_and_the_lesson_goes_on(live):
    run = live("--duration", "60", "--usr1-after", "0")
    run.send(signal.SIGUSR1)
    reports = run.wait_for_log(lambda e: e["msg"].startswith("progress report"), count=WORKERS)
    assert {e["thread"] for e in reports} == {f"Worker-{i}" for i in range(1, WORKERS + 1)}
    assert all(e["items"] > 0 for e in reports)
    # SIGUSR1 must not end the lesson: a second one gets a second round of reports.
    run.send(signal.SIGUSR1)
    run.wait_for_log(lambda e: e["msg"].startswith("progress report"), count=2 * WORKERS)
    assert run.proc.poll() is None

    run.send(signal.SIGTERM)
    assert run.finish(timeout=10) == 0
    result = run.result
    assert result["signals_received"] == {"SIGUSR1": 2, "SIGTERM": 1}
    assert result["reports"] == 2 * WORKERS
    assert result["ended_by"] == "SIGTERM"
