"""The lesson registry: every ``lessons/NN_*.py``, read without running it.

For each file we import the module (lessons do no work at import time) only to call its
``build_parser()`` and read its docstring and ``SIGNALS``/``REQUIRES``. A teacher's own file is listed
even when it misses parts of the lesson standard: what is there is shown, what is not stays empty,
and a file that fails to import is listed as unavailable with the error.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lessons.kit.args import KIT_OPTIONS, Bounded

LESSON_GLOB = "[0-9][0-9]_*.py"
SECTION_NAMES = ("Problem", "What to watch", "Expected output", "Failure modes", "Exercises")
_SECTION_RE = re.compile(rf"^({'|'.join(SECTION_NAMES)}):\s*$")
# Each extra a lesson may declare, and the module that proves it is installed.
EXTRA_MODULES = {"qt": "PySide6"}
SUMMARY_CHARS = 120  # a summary ends at the first sentence end past this many characters


@dataclass
class Param:
    """One lesson option, as the form and the validator see it."""

    name: str
    flag: str
    type: str  # int, float, str, bool, choice
    default: Any
    help: str
    choices: list[Any] | None = None
    min: float | None = None
    max: float | None = None
    converter: Any = field(default=None, repr=False)  # argparse type callable, for validation

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in
                ("name", "flag", "type", "default", "help", "choices", "min", "max")}


@dataclass
class Lesson:
    id: str  # the file's stem: "03_producer_consumer"
    number: str  # "03"
    path: Path
    title: str = ""
    sections: dict[str, str] = field(default_factory=dict)
    params: list[Param] = field(default_factory=list)
    signals: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    error: str = ""  # why the file could not be read, if it could not

    @property
    def summary(self) -> str:
        # The Problem's opening sentences, enough for an index card (about two lines).
        paragraph = " ".join(self.sections.get("Problem", "").split("\n\n")[0].split())
        summary = ""
        for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
            summary = f"{summary} {sentence}".strip()
            if len(summary) >= SUMMARY_CHARS:
                break
        return summary

    @property
    def available(self) -> bool:
        return not self.error and all(
            importlib.util.find_spec(EXTRA_MODULES.get(extra, extra)) is not None
            for extra in self.requires
        )

    @property
    def source(self) -> str:
        return self.path.read_text(encoding="utf-8", errors="replace")

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "number": self.number, "title": self.title, "summary": self.summary,
            "signals": list(self.signals), "requires": list(self.requires),
            "available": self.available, "params": [p.to_json() for p in self.params],
        }


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The title (first line) and the ``Name:`` sections of a lesson docstring, dedented."""
    lines = (doc or "").strip().splitlines()
    if not lines:
        return "", {}
    title, sections, current = lines[0].strip(), {}, None
    for line in lines[1:]:
        match = _SECTION_RE.match(line.strip())
        if match and not line.startswith((" ", "\t")):
            current = match.group(1)
            sections[current] = []
        elif current:
            sections[current].append(line)
    return title, {k: textwrap.dedent("\n".join(v)).strip() for k, v in sections.items()}


def describe_action(action: argparse.Action) -> Param:
    """Turn one argparse option into a :class:`Param` (type, bounds, choices, default)."""
    flag = max(action.option_strings, key=len) if action.option_strings else action.dest
    common = {"name": action.dest, "flag": flag, "default": action.default, "help": action.help or ""}
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return Param(type="bool", **common)
    if action.choices is not None:
        return Param(type="choice", choices=list(action.choices), converter=action.type, **common)
    if isinstance(action.type, Bounded):
        return Param(type=action.type.kind.__name__, min=action.type.min, max=action.type.max,
                     converter=action.type, **common)
    if action.type in (int, float):
        return Param(type=action.type.__name__, converter=action.type, **common)
    return Param(type="str", converter=action.type, **common)


def load_lesson(path: Path) -> Lesson:
    lesson = Lesson(id=path.stem, number=path.name[:2], path=path)
    try:
        spec = importlib.util.spec_from_file_location(f"threadlab_registry.{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        lesson.title, lesson.sections = parse_docstring(module.__doc__ or "")
        lesson.signals = tuple(getattr(module, "SIGNALS", ()))
        lesson.requires = tuple(getattr(module, "REQUIRES", ()))
        if hasattr(module, "build_parser"):
            parser = module.build_parser()
            lesson.params = [describe_action(a) for a in parser._actions
                             if a.option_strings and a.dest not in ("help", *KIT_OPTIONS)]
    except Exception as exc:  # a teacher's broken file must not take the index down
        lesson.error = f"{type(exc).__name__}: {exc}"
    finally:
        sys.modules.pop(f"threadlab_registry.{path.stem}", None)
    lesson.title = lesson.title or path.stem
    return lesson


class Registry:
    """All lessons of one folder, re-read when a file in it changes (a teacher adds one live)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._stamp: tuple | None = None
        self._lessons: dict[str, Lesson] = {}

    def _current_stamp(self) -> tuple:
        return tuple((p.name, p.stat().st_mtime_ns) for p in sorted(self.folder.glob(LESSON_GLOB)))

    def all(self) -> list[Lesson]:
        stamp = self._current_stamp()
        if stamp != self._stamp:
            self._lessons = {p.stem: load_lesson(p) for p in sorted(self.folder.glob(LESSON_GLOB))}
            self._stamp = stamp
        return list(self._lessons.values())

    def get(self, key: str) -> Lesson | None:
        """A lesson by its two-digit number (``03``) or full name (``03_producer_consumer``)."""
        for lesson in self.all():
            if key in (lesson.id, lesson.number):
                return lesson
        return None
