"""A lesson's exercises as the dashboard checks them: goals written as data, judged on a run's outcome.

The goals live beside the lessons, in ``exercises/<lesson file stem>.toml`` (format: docs/exercises.md),
never in the lesson file: a learner edits a scratch copy of the lesson, and an edit must not be able
to edit the check. The describer subprocess reads the TOML (the server reads no lesson folder
itself); this module turns its answer into :class:`Exercise` and :class:`Prediction` objects, and
judges a run's :class:`Outcome` against them. It runs nothing: a check is data.

A check names a *subject* and compares it:

- ``value = "lost_updates"``: a number from the run's ``result`` events;
- ``param = "threads"``: the run's validated parameter;
- ``events = "deadlock"``: how many events of that kind the run logged, optionally only those whose
  fields equal ``where = {op = "crash"}`` or contain ``contains = {msg = "timed out"}``;
- ``status = "exited"`` (or a list): the run's final status (no comparison: membership).

The comparison is one of ``equals``, ``not_equals``, ``below``, ``at_most``, ``above``,
``at_least``, against a number or bool, or the name of a result value (times ``factor``).
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

OPS = {"equals": operator.eq, "not_equals": operator.ne, "below": operator.lt,
       "at_most": operator.le, "above": operator.gt, "at_least": operator.ge}
OP_WORDS = {"equals": "=", "not_equals": "≠", "below": "<", "at_most": "≤", "above": ">",
            "at_least": "≥"}
SUBJECTS = ("value", "param", "events", "status")
MAX_RUNS = 10  # an exercise checked over several runs asks for at most this many
_ITEM = re.compile(r"^\s*(\d+)\.\s+", re.M)


class SpecError(ValueError):
    """An exercise file that does not follow docs/exercises.md; the message says where."""


@dataclass(frozen=True)
class Check:
    subject: str  # one of SUBJECTS
    name: Any  # the value, param or event kind; for status, the accepted statuses
    op: str = ""
    operand: Any = None
    factor: float = 1.0
    where: dict[str, Any] = field(default_factory=dict)
    contains: dict[str, str] = field(default_factory=dict)

    def words(self) -> str:
        """The check as a person reads it: ``lost_updates > 0``."""
        if self.subject == "status":
            return "status is " + " or ".join(self.name)
        what = self.name if self.subject != "events" else f"{self.name} events"
        operand = self.operand if self.factor == 1 else f"{self.factor:g} × {self.operand}"
        return f"{what} {OP_WORDS[self.op]} {operand}"


@dataclass(frozen=True)
class Edit:
    find: str
    replace: str


@dataclass
class Exercise:
    n: int
    prompt: str
    goal: str
    checks: list[Check]
    params: dict[str, Any] = field(default_factory=dict)
    edit: bool = False
    runs: int = 1
    default_passes: bool = False  # the lesson as it is already meets the goal (tests expect so)
    evidence: str = ""
    hints: list[str] = field(default_factory=list)
    solution_text: str = ""
    solution_params: dict[str, Any] | None = None
    solution_edits: list[Edit] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """What ``GET /api/lessons/<id>`` shows: no hints or solution (the page unlocks those)."""
        return {"n": self.n, "prompt": self.prompt, "params": self.params, "edit": self.edit,
                "goal": self.goal, "runs": self.runs}

    def solved_source(self, original: str) -> str:
        """The lesson's source with the reference solution's edits made."""
        return apply_edits(original, self.solution_edits)


@dataclass
class Level(Exercise):
    """A step-mode puzzle: the learner schedules the threads until the goal shows (app/stepping.py).
    Its solution is a schedule; fewer steps is better, and ``shortest`` is the fewest known."""

    title: str = ""
    shortest: int = 0
    schedule: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "title": self.title, "goal": self.goal, "params": self.params,
                "shortest": self.shortest}


@dataclass
class Choice:
    label: str
    checks: list[Check]


@dataclass
class Prediction:
    question: str
    choices: list[Choice]

    def to_json(self) -> dict[str, Any]:
        return {"question": self.question, "choices": [c.label for c in self.choices]}

    def reveal(self, outcome: Outcome, chosen: str) -> dict[str, Any]:
        """What happened (the first choice whose checks all hold) against what was predicted."""
        actual = next((c.label for c in self.choices if all(outcome.holds(k) for k in c.checks)), None)
        return {"question": self.question, "chosen": chosen, "actual": actual,
                "correct": actual is not None and chosen == actual}


@dataclass
class Outcome:
    """What a run showed, as far as checks can see: result values, params, final status, events."""

    values: dict[str, Any]
    params: dict[str, Any]
    status: str
    events: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, events: Iterable[dict[str, Any]], params: dict[str, Any], status: str) -> Outcome:
        values: dict[str, Any] = {}
        kept = []
        for event in events:
            if event.get("kind") == "result" and isinstance(event.get("values"), dict):
                values.update(event["values"])
            kept.append(event)
        return cls(values, dict(params), status, kept)

    @property
    def steps(self) -> int:
        """Steps a learner (or a schedule) took in step mode; letting all go is no step."""
        return sum(1 for e in self.events if e.get("kind") == "step" and isinstance(e.get("thread"), str))

    def subject(self, check: Check) -> Any:
        if check.subject == "value":
            return self.values.get(check.name)
        if check.subject == "param":
            return self.params.get(check.name)
        if check.subject == "status":
            return self.status
        return sum(1 for event in self.events if _matches(event, check))

    def operand(self, check: Check) -> Any:
        if isinstance(check.operand, str):
            named = self.values.get(check.operand)
            return named * check.factor if _is_number(named) else None
        return check.operand

    def holds(self, check: Check) -> bool:
        if check.subject == "status":
            return self.status in check.name
        actual, wanted = self.subject(check), self.operand(check)
        if actual is None or wanted is None:
            return False
        if check.op in ("equals", "not_equals"):
            return OPS[check.op](actual, wanted)
        return _is_number(actual) and _is_number(wanted) and OPS[check.op](actual, wanted)

    def evidence(self, exercise: Exercise) -> str:
        """The numbers that decided, in the exercise's words when it gives some."""
        if exercise.evidence:
            try:
                return exercise.evidence.format_map(_Missing({**self.params, **self.values}))
            except (ValueError, TypeError, IndexError, AttributeError):
                pass  # a format the value cannot take ("{lost:.1f}" of a missing one): the plain words
        return "; ".join(f"{_subject_words(check)} = {_show(self.subject(check))}"
                         for check in exercise.checks)


def judge(exercise: Exercise, outcome: Outcome) -> dict[str, Any]:
    """One run's verdict on one exercise: ``passed``, ``evidence`` and a ``message``; for a level
    also ``level``, ``steps`` and ``shortest`` (fewer steps is better)."""
    failed = [check for check in exercise.checks if not outcome.holds(check)]
    message = "goal reached" if not failed else "not yet: " + "; ".join(c.words() for c in failed)
    verdict = {"exercise": exercise.n, "passed": not failed, "evidence": outcome.evidence(exercise),
               "message": message}
    if isinstance(exercise, Level):
        verdict.update(level=exercise.n, steps=outcome.steps, shortest=exercise.shortest)
        if not failed:
            verdict["message"] = (f"goal reached in {outcome.steps} steps (the shortest known: "
                                  f"{exercise.shortest})")
    return verdict


def over_runs(exercise: Exercise, verdict: dict[str, Any], earlier: list[bool]) -> dict[str, Any]:
    """The verdict of an exercise checked over several runs: this run and the ``earlier`` ones (the
    same browser's latest tries, newest first) must all pass. One lucky run is not a solution."""
    if exercise.runs <= 1:
        return verdict
    recent = [verdict["passed"], *earlier][: exercise.runs]
    streak = next((i for i, ok in enumerate(recent) if not ok), len(recent))
    passed = streak >= exercise.runs
    message = verdict["message"] if passed else (
        f"{streak} of {exercise.runs} runs in a row so far: run it again"
        if verdict["passed"] else verdict["message"])
    return {**verdict, "passed": passed, "this_run": verdict["passed"], "message": message,
            "runs": {"needed": exercise.runs, "in_a_row": streak}}


def apply_edits(source: str, edits: list[Edit]) -> str:
    """``source`` with each edit made; each ``find`` must occur exactly once (else SpecError)."""
    for edit in edits:
        count = source.count(edit.find)
        if count != 1:
            raise SpecError(f"solution edit finds {count} places, not 1: {edit.find[:60]!r}")
        source = source.replace(edit.find, edit.replace)
    return source


def diff(original: str, changed: str, name: str) -> str:
    """A unified diff of a lesson and a changed copy ('' when they are the same)."""
    return "".join(difflib.unified_diff(original.splitlines(keepends=True),
                                        changed.splitlines(keepends=True),
                                        f"{name} (original)", f"{name} (yours)"))


# -- reading the describer's answer --------------------------------------------------------------


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
    if not _is_number(factor):
        raise SpecError(f"{where}: factor must be a number")
    return Check(subject, str(raw[subject]), ops[0], raw[ops[0]], float(factor),
                 _table(raw.get("where", {}), where, "where"),
                 {str(k): str(v) for k, v in _table(raw.get("contains", {}), where, "contains").items()})


def _matches(event: dict[str, Any], check: Check) -> bool:
    if event.get("kind") != check.name:
        return False
    if any(event.get(key) != value for key, value in check.where.items()):
        return False
    return all(isinstance(event.get(key), str) and text in event[key]
               for key, text in check.contains.items())


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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _subject_words(check: Check) -> str:
    return {"events": f"{check.name} events", "status": "status"}.get(check.subject, str(check.name))


def _show(value: Any) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return "?"
