#!/usr/bin/env python3
"""Headless launcher for scripts and CI.

    scripts/cli.py --list
    scripts/cli.py --run 03 --producers 2 --consumers 4 --duration 10

Flags after ``--run NN`` go to the lesson as they are (add ``--log-format json`` for events).
The lesson's exit code is this script's exit code. Uses the project's .venv when it exists.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    sys.path.insert(0, str(ROOT))
    from app.cli import cmd_list, run_lesson

    if argv[0] == "--list":
        return cmd_list(None)
    if argv[0] == "--run" and len(argv) >= 2:
        return run_lesson(argv[1], argv[2:])
    print(f"unknown arguments: {' '.join(argv)}\n\n{__doc__.strip()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        os.execv(VENV_PYTHON, [str(VENV_PYTHON), __file__, *sys.argv[1:]])
    raise SystemExit(main(sys.argv[1:]))
