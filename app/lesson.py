"""What the server knows of one lesson file: its options (:class:`Param`) and everything the
describer read from it (:class:`Lesson`), as plain data that crossed a process boundary
(app/registry.py reads files into these; nothing here runs a lesson or touches the disk but
:attr:`Lesson.source`)."""

from __future__ import annotations

import importlib.util
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .exercises import Exercise, Level, Prediction

SECTION_NAMES = ("Problem", "What to watch", "Expected output", "Failure modes", "Exercises")
_SECTION_RE = re.compile(rf"^({'|'.join(SECTION_NAMES)}):\s*$")
# Each extra a lesson may declare, and the module that proves it is installed.
EXTRA_MODULES = {"qt": "PySide6"}
SUMMARY_CHARS = 120  # a summary ends at the first sentence end past this many characters
PARAM_TYPES = ("int", "float", "str", "bool", "choice")


@dataclass
class Param:
    """One lesson option, as the form and the validator see it (plain data: it crossed a process)."""

    name: str
    flag: str
    type: str  # int, float, str, bool, choice
    default: Any
    help: str
    choices: list[Any] | None = None
    min: float | None = None
    max: float | None = None

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
    exercises: list[Exercise] = field(default_factory=list)  # checked goals (app/exercises.py)
    prediction: Prediction | None = None  # the question asked before a run, if the lesson has one
    levels: list[Level] = field(default_factory=list)  # step-mode puzzles (app/stepping.py)
    exercises_error: str = ""  # why its exercise file could not be used (the lesson still runs)
    error: str = ""  # why the file could not be read, if it could not
    plain: bool = False  # no build_parser: free-form arguments, run under lessons.kit.run
    pending: bool = False  # its probe was still running at the listing's deadline (error says so)

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
            "plain": self.plain,
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


def read_param(raw: dict[str, Any]) -> Param:
    """One option as the describer's JSON gives it; an unknown type is read as text."""
    kind = raw.get("type") if raw.get("type") in PARAM_TYPES else "str"
    choices = raw.get("choices")
    return Param(name=str(raw["name"]), flag=str(raw["flag"]), type=kind, default=raw.get("default"),
                 help=str(raw.get("help") or ""), choices=list(choices) if kind == "choice" else None,
                 min=raw.get("min"), max=raw.get("max"))
