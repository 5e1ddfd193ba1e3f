"""What a run was started for beyond its parameters, and the verdict when it ends.

A run started for an exercise is checked, and a prediction made before it is revealed, by the run's
supervisor as its last act before the final status: the verdicts become ``check`` and
``prediction`` events in the run's log (so every viewer and a replay see them where they happened)
and fields of its record (so ``GET /api/runs/<id>`` shows them). The learner's progress is updated
in the same step.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .eventlog import EventLog
from .exercises import Exercise, Level, Outcome, Prediction, judge, over_runs
from .output import kind_of, safe_parse
from .progress import Progress

READ_BATCH = 10_000  # events read from the log at a time while looking for what the checks need


@dataclass
class Practice:
    lesson: str  # the lesson's number, as progress keys it
    learner: str  # the browser's hashed id ("" for a script without one: nothing is kept)
    progress: Progress
    exercise: Exercise | None = None
    prediction: Prediction | None = None
    chosen: str = ""  # the prediction's choice

    def exercise_n(self, kind: str) -> int | None:
        """The number of the exercise (``kind`` "exercise") or level ("level") the run is for."""
        if self.exercise is None or isinstance(self.exercise, Level) != (kind == "level"):
            return None
        return self.exercise.n

    def wanted_kinds(self) -> set[bytes]:
        """The event kinds the checks look at (results always): only these are parsed."""
        checks = [*(self.exercise.checks if self.exercise else ()),
                  *(k for c in (self.prediction.choices if self.prediction else ()) for k in c.checks)]
        return {b"result", b"step", *(str(c.name).encode() for c in checks if c.subject == "events")}

    def verdicts(self, log: EventLog, params: dict[str, Any], status: str,
                 run_id: str) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
        """The events to log (kind, fields) and the record fields to set, for a run that ended
        with ``status``."""
        outcome = Outcome.of(events_of(log, self.wanted_kinds()), params, status)
        events: list[tuple[str, dict[str, Any]]] = []
        fields: dict[str, Any] = {}
        if self.exercise is not None:
            exercise = self.exercise
            verdict = judge(exercise, outcome)
            check = self.progress.add_try(self.learner, self.lesson, exercise.n,
                                          lambda earlier: over_runs(exercise, verdict, earlier),
                                          kind="levels" if isinstance(exercise, Level) else "exercises")
            events.append(("check", check))
            fields["check"] = check
        if self.prediction is not None and self.chosen:
            reveal = self.prediction.reveal(outcome, self.chosen)
            self.progress.add_prediction(self.learner, self.lesson, run_id, reveal)
            events.append(("prediction", reveal))
            fields["prediction"] = reveal
        return events, fields


def events_of(log: EventLog, kinds: set[bytes]) -> Iterator[dict[str, Any]]:
    """The run's events of ``kinds``, parsed; the others (a flood of log lines) are skipped unread."""
    cursor = -1
    while batch := log.read(cursor, READ_BATCH):
        cursor += len(batch)
        for line, event in batch:
            if event is None:
                if kind_of(line) not in kinds:
                    continue
                event = safe_parse(line)
            if event is not None and str(event.get("kind", "")).encode() in kinds:
                yield event
