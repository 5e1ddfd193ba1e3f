#!/usr/bin/env python3
"""Check a lesson's exercise file against the lesson itself, without the dashboard.

For each exercise: run the reference solution (its parameters, its edits made to a copy of the lesson)
and expect the goal reached; run the lesson as it is, with its defaults, and expect it not reached
(unless the exercise says ``default_passes = true``). An exercise checked over several runs is run
that many times. For each step-mode level: replay its shortest known schedule and expect the goal
reached in exactly that many steps, then run it freely and expect the goal missed. A teacher
writing ``exercises/NN_name.toml`` runs this until every line says ok:

    .venv/bin/python scripts/check_exercises.py 05          # every exercise of lesson 05
    .venv/bin/python scripts/check_exercises.py 05 2        # only exercise 2
    .venv/bin/python scripts/check_exercises.py 05 --lessons-dir my_lessons

Exit status 0 when every exercise behaves, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import checking, exercises, params  # noqa: E402
from app.lesson import Lesson  # noqa: E402
from app.registry import Registry  # noqa: E402
from app.worker import worker_env  # noqa: E402

RUN_TIMEOUT = 120.0  # seconds one run may take; lesson defaults end in seconds


def run_events(path: Path, argv: list[str], schedule: list | None = None) -> tuple[list[dict], int]:
    """The JSON events of one run of the lesson file at ``path`` (as the dashboard would start it;
    with ``schedule``, a step-mode replay of it)."""
    env = {**worker_env(0.1), "PYTHONPATH": str(ROOT)}
    if schedule is not None:
        env["THREADLAB_SCHEDULE"] = json.dumps(schedule)
    proc = subprocess.run([sys.executable, "-m", "lessons.kit.boot", str(path), "--log-format", "json",
                           *argv], cwd=ROOT, env=env, capture_output=True, timeout=RUN_TIMEOUT,
                          stdin=subprocess.DEVNULL)
    events = []
    for line in proc.stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events, proc.returncode


def attempt(lesson: Lesson, source: str, values: dict, folder: Path,
            schedule: list | None = None) -> exercises.Outcome:
    """One run of ``source`` (saved as a copy of the lesson) with validated ``values``."""
    path = folder / lesson.path.name
    path.write_text(source, encoding="utf-8")
    events, code = run_events(path, params.to_argv(lesson, values), schedule)
    status = "exited" if code == 0 else "failed"
    return exercises.Outcome.of(events, values, status)


def verdict(lesson: Lesson, exercise: exercises.Exercise, source: str, raw_params: dict,
            folder: Path) -> tuple[bool, str]:
    """Whether ``exercise.runs`` runs in a row pass, and the last run's evidence."""
    values = params.validate(lesson, raw_params)
    earlier: list[bool] = []
    result: dict = {}
    for _ in range(exercise.runs):
        result = exercises.over_runs(exercise, exercises.judge(exercise, attempt(
            lesson, source, values, folder)), earlier)
        earlier.insert(0, result.get("this_run", result["passed"]))
    return result["passed"], f'{result["evidence"]} ({result["message"]})'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lesson", help="lesson number or full name, e.g. 05")
    parser.add_argument("n", nargs="?", type=int, help="only this exercise")
    parser.add_argument("--lessons-dir", type=Path, default=ROOT / "lessons")
    args = parser.parse_args(argv)
    lesson = Registry(args.lessons_dir).get(args.lesson)
    if lesson is None or lesson.error or lesson.exercises_error:
        print(f"{args.lesson}: {lesson and (lesson.error or lesson.exercises_error) or 'no such lesson'}")
        return 1
    good = True
    original = lesson.source
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for exercise in lesson.exercises:
            if args.n is not None and exercise.n != args.n:
                continue
            solved = exercise.solved_source(original)
            wanted = exercise.solution_params if exercise.solution_params is not None else exercise.params
            passed, evidence = verdict(lesson, exercise, solved, wanted, folder)
            print(f"{lesson.number}.{exercise.n} solution: {'ok' if passed else 'NOT SOLVED'}: {evidence}")
            good &= passed
            passed, evidence = verdict(lesson, exercise, original, {}, folder)
            expected = exercise.default_passes
            print(f"{lesson.number}.{exercise.n} defaults: {'ok' if passed == expected else 'WRONG'}"
                  f" (passed={passed}): {evidence}")
            good &= passed == expected
        for level in lesson.levels:
            if args.n is not None and level.n != args.n:
                continue
            good &= check_level(lesson, level, original, folder)
    return 0 if good else 1


def check_level(lesson: Lesson, level: exercises.Level, source: str, folder: Path) -> bool:
    """The level's shortest known schedule reaches its goal in that many steps, judged as the
    dashboard judges a learner's try (a goal left to chance does not count); a free run of the same
    parameters does not reach it at all (else the level is no puzzle)."""
    values = params.validate(lesson, level.params)
    solved = checking.judge_level(level, attempt(lesson, source, values, folder, level.schedule))
    ok = solved["passed"] and solved["steps"] == level.shortest
    print(f"{lesson.number} level {level.n} schedule: {'ok' if ok else 'WRONG'}: {solved['evidence']} "
          f"({solved['message']}; {solved['steps']} steps, shortest says {level.shortest})")
    free = exercises.judge(level, attempt(lesson, source, values, folder))
    print(f"{lesson.number} level {level.n} free run: {'ok' if not free['passed'] else 'WRONG'} "
          f"(passed={free['passed']}): {free['evidence']}")
    return ok and not free["passed"]


if __name__ == "__main__":
    raise SystemExit(main())
