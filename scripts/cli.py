#!/usr/bin/env python3
"""Headless launcher for scripts and CI.

    scripts/cli.py --list
    scripts/cli.py --run 03 --producers 2 --consumers 4 --duration 10
    scripts/cli.py --run path/to/prog.py [--log-format json] [--no-trace] [--] ARGS...

Flags after ``--run NN`` go to the lesson as they are (add ``--log-format json`` for events).
A path (ends in .py or has a /) is a plain program, run under the kit (python -m lessons.kit.run):
its own output by default, JSON events with ``--log-format json``; the runner's options right
after the path are ours, everything else (and all after ``--``) the program's.
The lesson's or program's exit code is this script's exit code. Uses the project's .venv when it
exists.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    sys.path.insert(0, str(ROOT))
    from app.cli import cmd_list, is_program, run_lesson, run_program

    if argv[0] == "--list":
        return cmd_list(None)
    if argv[0] == "--run" and len(argv) >= 2 and is_program(argv[1]):
        return _run_program(run_program, argv[1], argv[2:])
    if argv[0] == "--run" and len(argv) >= 2:
        return run_lesson(argv[1], argv[2:])
    print(f"unknown arguments: {' '.join(argv)}\n\n{__doc__.strip()}", file=sys.stderr)
    return 2


def _run_program(run_program: Callable[..., int], path: str, rest: list[str]) -> int:
    """Take the runner's own options from the front of ``rest`` (``--log-format json|text``,
    ``--no-trace``, up to ``--``); the rest are the program's arguments, as typed."""
    log_format, trace = "text", True
    while rest:
        if rest[0] == "--log-format" and len(rest) >= 2 and rest[1] in ("json", "text"):
            log_format, rest = rest[1], rest[2:]
        elif rest[0].startswith("--log-format=") and rest[0].split("=", 1)[1] in ("json", "text"):
            log_format, rest = rest[0].split("=", 1)[1], rest[1:]
        elif rest[0] == "--no-trace":
            trace, rest = False, rest[1:]
        elif rest[0] == "--":
            rest = rest[1:]
            break
        else:
            break
    return run_program(path, rest, log_format=log_format, trace=trace)


if __name__ == "__main__":
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        os.execv(VENV_PYTHON, [str(VENV_PYTHON), __file__, *sys.argv[1:]])
    raise SystemExit(main(sys.argv[1:]))
