"""What a request handler looks up first: the app's registry and run manager, a lesson, a run,
the request's body."""

from __future__ import annotations

from flask import abort, current_app, request

from .lesson import Lesson
from .registry import Registry
from .runs import RunManager


def registry() -> Registry:
    return current_app.extensions["threadlab.registry"]


def manager() -> RunManager:
    return current_app.extensions["threadlab.runs"]


def lesson_or_404(key: str) -> Lesson:
    lesson = registry().get(key)
    if lesson is None:
        abort(404, description=f"no lesson {key!r}")
    return lesson


def run_or_404(run_id: str):
    run = manager().get(run_id)
    if run is None:
        abort(404, description="no such run")
    return run


def body() -> dict:
    """A POST body, JSON or form alike."""
    if request.is_json:
        try:
            data = request.get_json(silent=True)
        except RecursionError:  # [[[[...]]]] nested deeper than the parser's stack
            abort(400, description="JSON nested too deeply")
        if not isinstance(data, dict):
            abort(400, description="expected a JSON object")
        return data
    return request.form.to_dict()
