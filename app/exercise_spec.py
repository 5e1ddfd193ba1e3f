"""Reading a lesson's exercise file (the describer's JSON of ``exercises/<stem>.toml``) into the
exercises, levels and prediction of app/exercises.py, refusing with the place named whatever does
not follow docs/exercises.md."""

from __future__ import annotations

import re
from typing import Any

from .exercises import (
    MAX_RUNS,
    OPS,
    SUBJECTS,
    Check,
    Choice,
    Edit,
    Exercise,
    Level,
    Prediction,
    SpecError,
    is_number,
)

_ITEM = re.compile(r"^\s*(\d+)\.\s+", re.M)


def prompts(section: str) -> dict[int, str]:
    """The numbered items of a docstring's ``Exercises`` section, by number, each on one line."""
    parts = _ITEM.split(section or "")
    return {int(n): " ".join(text.split()) for n, text in zip(parts[1::2], parts[2::2], strict=True)}


def parse(raw: Any, section: str) -> tuple[list[Exercise], Prediction | None]:
    """The exercises and prediction of one lesson from the describer's JSON; raises SpecError."""
    if raw in (None, {}):
        return [], None
    if not isinstance(raw, dict):
        raise SpecError("the exercise file is not a table")
    texts = prompts(section)
    exercises = [_exercise(item, texts) for item in _list(raw.get("exercise", []), "exercise")]
    numbers = [e.n for e in exercises]
    if len(set(numbers)) != len(numbers):
        raise SpecError(f"exercise numbers repeat: {numbers}")
    prediction = _prediction(raw["prediction"]) if "prediction" in raw else None
    return sorted(exercises, key=lambda e: e.n), prediction


def parse_levels(raw: Any) -> list[Level]:
    """The step-mode levels of one lesson (``[[level]]`` in its exercise file); raises SpecError."""
    if not isinstance(raw, dict):
        return []
    levels = []
    for item in _list(raw.get("level", []), "level"):
        base = _exercise(item, {})
        where = f"level {base.n}"
        schedule = _list((item.get("solution") or {}).get("schedule", []), f"{where}: solution.schedule")
        shortest = item.get("shortest", 0)
        if not isinstance(shortest, int) or shortest < 0:
            raise SpecError(f"{where}: shortest must be a whole number of steps")
        if not all(isinstance(step, dict) for step in schedule):
            raise SpecError(f"{where}: each step of the schedule is a table")
        fields = {name: getattr(base, name) for name in Exercise.__dataclass_fields__}
        levels.append(Level(**fields, title=_text(item.get("title", ""), where, "title"),
                            shortest=shortest, schedule=schedule))
    if len({level.n for level in levels}) != len(levels):
        raise SpecError("level numbers repeat")
    return sorted(levels, key=lambda level: level.n)


def _exercise(raw: Any, texts: dict[int, str]) -> Exercise:
    if not isinstance(raw, dict) or not isinstance(raw.get("n"), int):
        raise SpecError("each [[exercise]] needs a number n")
    n = raw["n"]
    where = f"exercise {n}"
    solution = raw.get("solution", {})
    if not isinstance(solution, dict):
        raise SpecError(f"{where}: solution must be a table")
    runs = raw.get("runs", 1)
    if not isinstance(runs, int) or not 1 <= runs <= MAX_RUNS:
        raise SpecError(f"{where}: runs must be 1 to {MAX_RUNS}")
    return Exercise(
        n=n, prompt=_text(raw.get("prompt", texts.get(n, "")), where, "prompt"),
        goal=_text(raw.get("goal"), where, "goal", required=True),
        checks=[_check(c, where) for c in _list(raw.get("checks"), f"{where}: checks", required=True)],
        params=_table(raw.get("params", {}), where, "params"), edit=raw.get("edit") is True,
        runs=runs, default_passes=raw.get("default_passes") is True,
        evidence=_text(raw.get("evidence", ""), where, "evidence"),
        hints=[_text(h, where, "hints") for h in _list(raw.get("hints", []), f"{where}: hints")],
        solution_text=_text(solution.get("text", ""), where, "solution.text"),
        solution_params=(_table(solution["params"], where, "solution.params")
                         if "params" in solution else None),
        solution_edits=[Edit(_text(e.get("find"), where, "find", required=True),
                             _text(e.get("replace"), where, "replace"))
                        for e in _list(solution.get("edits", []), f"{where}: solution.edits")
                        if isinstance(e, dict)],
    )


def _prediction(raw: Any) -> Prediction:
    if not isinstance(raw, dict):
        raise SpecError("prediction must be a table")
    choices = []
    for item in _list(raw.get("choices"), "prediction.choices", required=True):
        if not isinstance(item, dict):
            raise SpecError("each prediction choice needs a label and checks")
        label = _text(item.get("label"), "prediction", "label", required=True)
        checks = [_check(c, f"prediction {label!r}") for c in _list(item.get("checks"), "checks")]
        choices.append(Choice(label, checks))
    return Prediction(_text(raw.get("question"), "prediction", "question", required=True), choices)


def _check(raw: Any, where: str) -> Check:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: a check must be a table")
    subjects = [s for s in SUBJECTS if s in raw]
    if len(subjects) != 1:
        raise SpecError(f"{where}: a check names one of {', '.join(SUBJECTS)}: {raw}")
    subject = subjects[0]
    if subject == "status":
        statuses = raw["status"] if isinstance(raw["status"], list) else [raw["status"]]
        return Check("status", tuple(str(s) for s in statuses))
    ops = [op for op in OPS if op in raw]
    if len(ops) != 1:
        raise SpecError(f"{where}: a check has one of {', '.join(OPS)}: {raw}")
    factor = raw.get("factor", 1.0)
    if not is_number(factor):
        raise SpecError(f"{where}: factor must be a number")
    return Check(subject, str(raw[subject]), ops[0], raw[ops[0]], float(factor),
                 _table(raw.get("where", {}), where, "where"),
                 {str(k): str(v) for k, v in _table(raw.get("contains", {}), where, "contains").items()})


def _list(value: Any, where: str, required: bool = False) -> list[Any]:
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        raise SpecError(f"{where} must be a non-empty list" if required else f"{where} must be a list")
    return value


def _table(value: Any, where: str, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(f"{where}: {name} must be a table")
    return value


def _text(value: Any, where: str, name: str, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise SpecError(f"{where}: {name} must be text")
    return value
