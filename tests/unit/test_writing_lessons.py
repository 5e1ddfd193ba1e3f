"""docs/writing-lessons.md: its example lesson is a real one. The registry reads it as the dashboard
would, it runs and proves its point, it is lint-clean, and its exercise 1 race shows on every run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "writing-lessons.md"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    (code,) = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    path = tmp_path / "15_ticket_sellers.py"
    path.write_text(code)
    return path


def run_json(path: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(path), "--log-format", "json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode in (0, 1), done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_the_registry_reads_the_example_as_the_dashboard_does(example):
    lesson = Registry(example.parent).get("15")
    assert lesson is not None and lesson.title.startswith("Ticket sellers")
    assert list(lesson.sections) == ["Problem", "What to watch", "Expected output", "Failure modes",
                                     "Exercises"]
    sellers = lesson.param("sellers")
    assert (sellers.type, sellers.default, sellers.min, sellers.max) == ("int", 4, 1, 16)


def test_the_example_runs_and_proves_its_point(example):
    events = run_json(example)
    (result,) = [e["values"] for e in events if e["kind"] == "result"]
    assert result == {"tickets": 20, "sold": 20, "oversold": 0}
    names = {row["name"] for e in events if e["kind"] == "threads" for row in e["threads"]}
    assert {"Seller-1", "Seller-2", "Seller-3", "Seller-4"} <= names


def test_exercise_one_oversells_on_every_run(example):
    # The guide says a sleep between check and take makes the race certain: take the lock away.
    source = example.read_text()
    assert "        with stock_lock:" in source
    example.write_text(source.replace("        with stock_lock:", "        if True:"))
    (result,) = [e["values"] for e in run_json(example) if e["kind"] == "result"]
    assert result["oversold"] > 0


def test_the_example_meets_the_lessons_lint_rules(example):
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--config",
                           str(ROOT / "lessons" / "ruff.toml"), str(example)],
                          capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout
