"""What a run was started for beyond its parameters, and the verdict when it ends.

A run started for an exercise is checked, and a prediction made before it is revealed, by the run's
supervisor as its last act before the final status: the verdicts become ``check`` and
``prediction`` events in the run's log (so every viewer and a replay see them where they happened)
and fields of its record (so ``GET /api/runs/<id>`` shows them). The learner's progress is updated
in the same step.

A level is a puzzle about the learner's schedule, so it is won only by what the learner scheduled
(:func:`judge_level`). Once the threads run freely (Run freely, the end of a replayed schedule,
Stop), the operating system picks their interleaving, and a goal reached after that may be luck
(lesson 05's level let go one step early passes about half the time). A try counts only if, when
the threads were let go, the goal had already shown (every ``events`` check of the level held, one
of them a count that rose), or a single thread was left to move: every other one had finished or
was waiting in ``join`` for a thread that had not, and no thread was started after. A replayed
schedule is the learner's too and is judged the same way. A try that reached the goal otherwise is
a try (it unlocks the next hint, as a miss does: the hints say which thread to step before letting
go) but not a pass, and its check says why (``counted``: false). The rule is conservative: two
threads that can no longer disturb each other (both past their last shared access) still count as
two; a step each ("to next sync" runs a thread to its end) settles them.
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
        wanted = {b"result", b"step", *(str(c.name).encode() for c in checks if c.subject == "events")}
        return wanted | {b"paused", b"thread"} if isinstance(self.exercise, Level) else wanted

    def verdicts(self, log: EventLog, params: dict[str, Any], status: str,
                 run_id: str) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
        """The events to log (kind, fields) and the record fields to set, for a run that ended
        with ``status``."""
        outcome = Outcome.of(events_of(log, self.wanted_kinds()), params, status)
        events: list[tuple[str, dict[str, Any]]] = []
        fields: dict[str, Any] = {}
        if self.exercise is not None:
            exercise = self.exercise
            verdict = judge_level(exercise, outcome) if isinstance(exercise, Level) \
                else judge(exercise, outcome)
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


def judge_level(level: Level, outcome: Outcome) -> dict[str, Any]:
    """A level try's verdict: :func:`judge`, then the rule that only the learner's schedule wins.
    A goal reached after the operating system took over does not pass (``counted``: false); a miss
    also says when the threads were let go too early, which is often why it missed."""
    verdict = judge(level, outcome)
    luck = left_to_chance(level, outcome.events)
    if not luck:
        return verdict
    if not verdict["passed"]:
        return {**verdict, "message": f"{verdict['message']} ({luck})"}
    return {**verdict, "passed": False, "counted": False,
            "message": f"the goal showed, but not by your schedule: {luck}. This try does not count: "
                       f"let the threads go only once the goal has shown, or once a single thread is "
                       f"left to move (every other one finished, or waiting in join for it)"}


def left_to_chance(level: Level, events: list[dict[str, Any]]) -> str:
    """Why the end of a level try was the operating system's choice, not the schedule's ("" when
    the schedule decided it). ``events``: the run's ``step``, ``paused`` and ``thread`` events and
    those the level's checks count, in the order of the run."""
    free = next((i for i, e in enumerate(events) if e.get("kind") == "step" and e.get("free") is True),
                None)
    before = events[:free]
    held = [i for i, e in enumerate(before) if e.get("kind") == "paused"]
    if free is None:
        return "" if held else "step mode never held the threads: they ran freely from the start"
    if _shown(level, before):
        return ""
    steps = sum(1 for e in before if e.get("kind") == "step" and isinstance(e.get("thread"), str))
    went = _LET_GO.get(str(events[free].get("source")), "the threads ran freely after step {k}")
    went = went.format(k=steps)
    if not held:
        return f"{went}, before they were first held"
    stepped = [e for e in before[held[-1]:] if e.get("kind") == "step"]
    if stepped:  # a step was still under way (into a long sleep): where it would lead was unknown
        return f"{went}, while {stepped[-1].get('thread')}'s step was still running"
    live = _live(before[held[-1]])
    if len(live) > 1:
        return f"{went} while {_names(live)} had not finished, so the operating system chose how " \
               f"they interleaved from there"
    started = [str(e.get("name")) for e in events[free:]
               if e.get("kind") == "thread" and e.get("op") == "start"]
    if started:
        return f"{went}, and then {_names(started)} started: the operating system chose how they " \
               f"interleaved"
    return ""


_LET_GO = {"command": "you let the threads run freely at step {k}",
           "schedule": "the schedule lets the threads run freely after step {k}",
           "interrupt": "Stop let the threads go at step {k}",
           "stdin": "the threads went free at step {k}, when nobody could step them any more"}


def _shown(level: Level, before: list[dict[str, Any]]) -> bool:
    """Whether the level's goal showed in ``before``: every ``events`` check holds there, and at
    least one is a count that rose (a check that nothing happened holds before anything does)."""
    checks = [c for c in level.checks if c.subject == "events"]
    outcome = Outcome({}, {}, "", before)
    return any(c.op in ("above", "at_least") for c in checks) and all(outcome.holds(c) for c in checks)


def _live(paused: dict[str, Any]) -> list[str]:
    """The threads of a ``paused`` event that could still move once let go: all that have not
    ended, but those waiting (held before, or blocked in) ``join`` for a thread that has not."""
    held = [t for t in paused.get("threads") or [] if isinstance(t, dict)]
    blocked = [t for t in paused.get("blocked") or [] if isinstance(t, dict)]
    running = [str(name) for name in paused.get("running") or []]
    alive = {str(t.get("name")) for t in held + blocked} | set(running)
    live = [str(t.get("name")) for t in held
            if not ((t.get("sync") or {}).get("op") == "join" and (t.get("sync") or {}).get("obj") in alive)]
    live += [str(t.get("name")) for t in blocked
             if not (t.get("state") == "waiting-join" and t.get("waiting_for") in alive)]
    return live + running


def _names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
