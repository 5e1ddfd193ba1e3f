"""A lesson's exercises as the dashboard checks them: goals written as data, judged on a run's outcome.

The goals live beside the lessons, in ``exercises/<lesson file stem>.toml`` (format: docs/exercises.md),
never in the lesson file: a learner edits a scratch copy of the lesson, and an edit must not be able
to edit the check. The describer subprocess reads the TOML (the server reads no lesson folder
itself), app/exercise_spec.py turns its answer into the :class:`Exercise`, :class:`Level` and
:class:`Prediction` objects here, and this module judges a run's :class:`Outcome` against them. It
runs nothing: a check is data.

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

OPS = {"equals": operator.eq, "not_equals": operator.ne, "below": operator.lt,
       "at_most": operator.le, "above": operator.gt, "at_least": operator.ge}
OP_WORDS = {"equals": "=", "not_equals": "≠", "below": "<", "at_most": "≤", "above": ">",
            "at_least": "≥"}
SUBJECTS = ("value", "param", "events", "status")
MAX_RUNS = 10  # an exercise checked over several runs asks for at most this many


class SpecError(ValueError):  # raised by app/exercise_spec.py, and by apply_edits
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
        what = _subject_words(self)
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
            return named * check.factor if is_number(named) else None
        return check.operand

    def holds(self, check: Check) -> bool:
        if check.subject == "status":
            return self.status in check.name
        actual, wanted = self.subject(check), self.operand(check)
        if actual is None or wanted is None:
            return False
        if check.op in ("equals", "not_equals"):
            return OPS[check.op](actual, wanted)
        return is_number(actual) and is_number(wanted) and OPS[check.op](actual, wanted)

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


def _matches(event: dict[str, Any], check: Check) -> bool:
    if event.get("kind") != check.name:
        return False
    if any(event.get(key) != value for key, value in check.where.items()):
        return False
    return all(isinstance(event.get(key), str) and text in event[key]
               for key, text in check.contains.items())


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _subject_words(check: Check) -> str:
    """What a check reads, named with its filters (``log lines (from MainThread, with "got
    SIGTERM")``), so that two checks of one event kind read apart in a verdict."""
    if check.subject != "events":
        return "status" if check.subject == "status" else str(check.name)
    flat = [(k, v) for k, v in check.where.items() if not isinstance(v, dict)]
    quals = [f"from {v}" if k == "thread" else f"{k} {_show(v)}" for k, v in flat]
    quals += [f"{k} {inner} {_show(v)}" for k, table in check.where.items() if isinstance(table, dict)
              for inner, v in table.items()]
    quals += [f'with "{t}"' if k == "msg" else f'{k} with "{t}"' for k, t in check.contains.items()]
    what = "log lines" if check.name == "log" else f"{check.name} events"
    return f"{what} ({', '.join(quals)})" if quals else what


def _show(value: Any) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


class _Missing(dict):
    def __missing__(self, key: str) -> str:
        return "?"
