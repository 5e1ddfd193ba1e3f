"""Plain programs given by path (``threadlab watch prog.py``): which paths may be run, and how a
run's page finds the program it ran. Both only read a file (through the registry's describe
subprocess), never run it; both are for a server on loopback: remote mode refuses programs by path
(see views.start_run), since a student could otherwise run any file on the teacher's disk.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from flask import current_app

from . import security
from .registry import PROGRAM_PREFIX, Lesson, load_program


def program_at(program: object) -> tuple[Lesson | None, str]:
    """The plain program at ``program`` (an absolute path to an existing regular ``.py`` file),
    described by the probe like any lesson, or None and why not. Only what a command line could
    name: no relative path (its meaning would be the server's cwd), no NUL, valid Unicode."""
    if not isinstance(program, str) or not os.path.isabs(program) or not program.endswith(".py"):
        return None, "expected the absolute path of a .py file"
    if not program.isprintable():  # NUL, newlines: no file a person would name
        return None, "not a file path"
    try:
        program.encode("utf-8")
        info = os.stat(program)
    except UnicodeEncodeError:
        return None, "text must be valid Unicode (no lone surrogates)"
    except (OSError, ValueError):
        return None, "no such file"
    if not stat.S_ISREG(info.st_mode):
        return None, "not a regular file"
    lesson = load_program(Path(program))
    if not lesson.plain and not lesson.error:
        # A lesson-style file: its parameters want a form, which its folder gets with --lessons-dir.
        return None, "this file has a parser (build_parser): serve its folder with --lessons-dir"
    return lesson, ""


def program_of_run(run) -> Lesson | None:
    """The plain program a run ran, read (never run) from the path in its argv: a program given by
    path (``threadlab watch``) is in no lessons folder, and a folder's program may have left it.
    Not in remote mode, which never reads a file by a path (see views.start_run)."""
    if security.is_remote(current_app):
        return None
    argv = list(run.record.argv)
    if "lessons.kit.run" not in argv:
        return None
    rest = argv[argv.index("lessons.kit.run") + 1:]
    while rest and rest[0] in ("--log-format", "--no-trace"):  # the runner's own options
        rest = rest[2:] if rest[0] == "--log-format" else rest[1:]
    if not rest or not rest[0].endswith(".py") or not Path(rest[0]).is_file():
        return None
    lesson = load_program(Path(rest[0]))
    if not run.lesson.startswith(PROGRAM_PREFIX):
        lesson.id, lesson.number = run.lesson, run.lesson[:2]  # a lessons folder's own file, gone
    return lesson
