"""Exercises, predictions and edited copies: the requests a learner makes beyond running a lesson.

``POST /runs`` takes three fields read here: ``exercise`` (check the run against that exercise),
``prediction`` (the learner's answer to the lesson's question, revealed when the run ends) and
``scratch`` (run the browser's edited copy). The edited copy itself is read, saved and reset
through ``/api/lessons/<id>/scratch``. Editing runs code on the server's machine, so on a server
open to the network it is refused unless the teacher started it with ``--allow-edits``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, jsonify, render_template, request

from . import exercises, security
from .checking import Practice
from .lesson import Lesson
from .lookup import body, lesson_or_404, manager
from .params import ParamError
from .scratch import ScratchError, ScratchStore

bp = Blueprint("practice", __name__)
FIELDS = ("exercise", "level", "prediction", "scratch")
TRUE = (True, "1", "on", "true", "yes")
TRIES_BEFORE_SOLUTION = 3  # failed tries after which the solution may be asked for


def store() -> ScratchStore:
    return current_app.extensions["threadlab.scratch"]


@bp.app_template_global()
def edits_allowed() -> bool:
    return not security.is_remote(current_app) or bool(current_app.config.get("ALLOW_EDITS"))


def _edits_or_403() -> None:
    if not edits_allowed():
        abort(403, description="editing lessons is off on a server open to the network: it runs "
                               "code on the teacher's machine (start it with --allow-edits)")


def take_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Remove and return the practice fields of a ``POST /runs`` body (before its parameters are
    validated: a form sends them beside the parameters)."""
    return {name: data.pop(name) for name in FIELDS if name in data}


def practice_for(lesson: Lesson, fields: dict[str, Any]) -> tuple[Practice | None, str | None]:
    """What the run is for, and the source to run instead of the lesson's (its edited copy).
    Raises ParamError naming the field for a bad value, 403 for edits that are off."""
    exercise = _exercise(lesson, fields.get("exercise"), lesson.exercises, "exercise")
    level = _exercise(lesson, fields.get("level"), lesson.levels, "level")
    if exercise is not None and level is not None:
        raise ParamError("level", "a run is for one exercise or one level, not both")
    exercise = exercise or level
    chosen = fields.get("prediction")
    chosen = "" if chosen is None else chosen
    if not isinstance(chosen, str):
        raise ParamError("prediction", "expected one of the choices, as text")
    if chosen and (lesson.prediction is None or chosen not in
                   [c.label for c in lesson.prediction.choices]):
        raise ParamError("prediction", f"{chosen!r} is not one of this lesson's choices")
    source = None
    if fields.get("scratch") in TRUE:
        _edits_or_403()
        source = store().get(security.browser_id(), lesson.id)
        if source is None:
            raise ParamError("scratch", "there is no edited copy of this lesson to run (save one first)")
    elif fields.get("scratch") not in (None, False, "", "0", "off", "false", "no"):
        raise ParamError("scratch", "expected true or false")
    if exercise is None and not chosen:
        return None, source
    practice = Practice(lesson=lesson.number or lesson.id, learner=security.browser_id(),
                        progress=manager().progress, exercise=exercise,
                        prediction=lesson.prediction if chosen else None, chosen=chosen)
    return practice, source


def _exercise(lesson: Lesson, raw: Any, choices: list, field: str) -> exercises.Exercise | None:
    """The exercise (or level) numbered ``raw`` among ``choices``; ParamError naming ``field``."""
    if raw in (None, ""):
        return None
    try:
        n = int(raw) if not isinstance(raw, bool) and isinstance(raw, (int, str)) else None
    except ValueError:
        n = None
    found = next((e for e in choices if e.n == n), None)
    if found is None:
        numbers = ", ".join(str(e.n) for e in choices) or "none"
        raise ParamError(field, f"no {field} {raw!r} in this lesson (it has: {numbers})")
    return found


# -- the lesson's exercises as JSON, and the page's cards -----------------------------------------

@bp.get("/api/lessons/<key>")
def api_lesson(key: str):
    """One lesson as in ``/api/lessons``, plus its ``exercises`` and ``prediction``."""
    lesson = lesson_or_404(key)
    return jsonify({**lesson.to_json(), "exercises": [e.to_json() for e in lesson.exercises],
                    "levels": [level.to_json() for level in lesson.levels],
                    "prediction": lesson.prediction.to_json() if lesson.prediction else None,
                    "exercises_error": lesson.exercises_error or None})


@bp.get("/lessons/<key>/exercises")
def exercise_cards(key: str):
    """The exercise cards with this browser's progress (hints unlocked, solutions earned)."""
    lesson = lesson_or_404(key)
    return render_template("_partials/_exercises.html", lesson=lesson, cards=cards(lesson))


@bp.app_template_global("level_cards")
def level_cards(lesson: Lesson) -> list[dict[str, Any]]:
    """Each level with this browser's best: solved or not, the fewest steps, and the solution
    (the shortest known schedule) once solved."""
    tried = manager().progress.solved(security.browser_id(), lesson.number or lesson.id, "levels")
    return [{"level": level, "tries": int(tried.get(level.n, {}).get("tries", 0)),
             "passed": bool(tried.get(level.n, {}).get("passed")),
             "best": tried.get(level.n, {}).get("best")} for level in lesson.levels]


def progress_by_lesson() -> dict[str, int]:
    """For the index: how many of each lesson's exercises this browser solved, where it tried any."""
    kept = manager().progress.of(security.browser_id())
    shown = {}
    for number, entry in kept.items():
        tried = entry.get("exercises", {}) if isinstance(entry, dict) else {}
        shown[number] = sum(1 for e in tried.values() if isinstance(e, dict) and e.get("passed") is True)
    return shown


def earned(exercise: exercises.Exercise, entry: dict[str, Any]) -> dict[str, Any]:
    """What one browser's tries of ``exercise`` (its progress ``entry``) have earned: one hint per
    try whose run missed the goal (a good run of a streak still too short is no miss), every hint
    once solved, and the solution after passing or, on request, after three tries that did not."""
    tries, passed = int(entry.get("tries", 0)), bool(entry.get("passed"))
    failed = tries - (1 if passed else 0)
    misses = int(entry.get("misses", failed))  # progress kept before misses were counted: tries
    return {"tries": tries, "passed": passed,
            "hints": exercise.hints if passed else exercise.hints[:misses],
            "solution": passed or failed >= TRIES_BEFORE_SOLUTION,
            "tries_left": max(0, TRIES_BEFORE_SOLUTION - failed)}


@bp.app_template_global("exercise_cards")
def cards(lesson: Lesson) -> list[dict[str, Any]]:
    """Each exercise with what this browser has earned of it (:func:`earned`)."""
    tried = manager().progress.solved(security.browser_id(), lesson.number or lesson.id)
    shown = []
    for exercise in lesson.exercises:
        card = {"exercise": exercise, **earned(exercise, tried.get(exercise.n, {})), "solution_diff": ""}
        if card["solution"]:
            try:
                card["solution_diff"] = exercises.diff(
                    lesson.source, exercise.solved_source(lesson.source), lesson.path.name)
            except exercises.SpecError as exc:
                card["solution_diff"] = f"(the reference edit no longer applies to this lesson: {exc})"
        shown.append(card)
    return shown


# -- the edited copy -----------------------------------------------------------------------------

@bp.get("/api/lessons/<key>/scratch")
def get_scratch(key: str):
    """This browser's copy (or the lesson itself when it has none), and its diff from the lesson."""
    lesson = lesson_or_404(key)
    copy = store().get(security.browser_id(), lesson.id)
    return jsonify(_scratch_json(lesson, copy))


@bp.put("/api/lessons/<key>/scratch")
def put_scratch(key: str):
    """Save this browser's copy: JSON ``{"source": "..."}``."""
    lesson = lesson_or_404(key)
    _edits_or_403()
    data = body() if request.is_json else None
    if not isinstance(data, dict) or set(data) != {"source"}:
        return jsonify(error='source: expected a JSON object {"source": "..."}', field="source"), 400
    try:
        store().put(security.browser_id(), lesson.id, data["source"])
    except ScratchError as exc:
        return jsonify(error=f"source: {exc}", field="source"), 400
    except OSError as exc:
        return jsonify(error=f"cannot keep the copy: {exc.strerror or exc}"), 507
    return jsonify(_scratch_json(lesson, data["source"]))


@bp.delete("/api/lessons/<key>/scratch")
def delete_scratch(key: str):
    """Reset: forget this browser's copy; the lesson as it is comes back."""
    lesson = lesson_or_404(key)
    _edits_or_403()
    store().delete(security.browser_id(), lesson.id)
    return jsonify(_scratch_json(lesson, None))


def _scratch_json(lesson: Lesson, copy: str | None) -> dict[str, Any]:
    original = lesson.source
    source = original if copy is None else copy
    return {"lesson": lesson.id, "source": source, "edited": copy is not None and copy != original,
            "diff": exercises.diff(original, source, lesson.path.name),
            "edits_allowed": edits_allowed()}
