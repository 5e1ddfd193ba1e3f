"""Run a lesson as a real subprocess, the way the dashboard does, and read back its events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LESSONS = ROOT / "lessons"


def lesson_module(number: str) -> str:
    """``"03"`` → ``"lessons.03_producer_consumer"``."""
    matches = sorted(LESSONS.glob(f"{number}_*.py"))
    assert matches, f"no lesson {number}"
    return f"lessons.{matches[0].stem}"


@dataclass
class LessonRun:
    returncode: int
    stdout: str
    stderr: str
    events: list[dict] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict]:
        return [e for e in self.events if e.get("kind") == kind]

    @property
    def result(self) -> dict:
        results = self.of_kind("result")
        assert results, f"no result event; stderr:\n{self.stderr[-3000:]}"
        return results[-1]["values"]

    def messages(self) -> list[str]:
        return [e["msg"] for e in self.of_kind("log")]


def run_lesson(number: str, *args: str, json_mode: bool = True, timeout: float = 90,
               env: dict | None = None) -> LessonRun:
    argv = [sys.executable, "-m", lesson_module(number)]
    if json_mode:
        argv += ["--log-format", "json"]
    argv += list(args)
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
    run = LessonRun(proc.returncode, proc.stdout, proc.stderr)
    if json_mode:
        for line in proc.stdout.splitlines():
            try:
                run.events.append(json.loads(line))
            except ValueError:
                run.events.append({"kind": "stdout", "text": line})
    return run


@pytest.fixture
def lesson():
    """``lesson("03", "--producers", "2")`` runs lesson 03 in JSON mode and returns a LessonRun."""
    return run_lesson
