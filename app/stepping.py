"""Step mode: the learner is the scheduler of a run's real threads (the kit's side: lessons/kit/step.py).

``POST /runs`` takes ``"step": true`` (hold every lesson thread until a step lets it go) or
``"schedule": [...]`` (replay a finished step-mode run's steps); both reach the kit as environment
settings, never as argv, which stays the lesson's own. ``POST /runs/<id>/step`` passes one step to
the run's supervisor, which writes it to the kit's command input, and answers with the kit's next
``paused`` event: the threads held now, where each will go next, and which of them can move.
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Blueprint, abort, jsonify, render_template, request

from .checking import events_of
from .lookup import body, manager, run_or_404
from .output import safe_parse
from .params import ParamError
from .record import LIVE
from .security import may_control

bp = Blueprint("stepping", __name__)
FIELDS = ("step", "schedule")
UNTILS = ("line", "sync")
MAX_STEPS = 1000  # steps in a schedule to replay (a level takes tens; a request body is 64 KB)
ANSWER_WAIT = 2.0  # seconds a step waits for the threads to be held again before it answers 202
NAME_CHARS = 200
IDENT_LIMIT = 2**64  # thread idents are unsigned longs


def take_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Remove and return the step-mode fields of a ``POST /runs`` body."""
    return {name: data.pop(name) for name in FIELDS if name in data}


def step_env(fields: dict[str, Any], *, level: bool = False) -> dict[str, str]:
    """The kit's settings for the run (empty: a free run); ParamError naming a bad field. A
    level is played in step mode, whether or not the switch was on."""
    step, schedule = fields.get("step"), fields.get("schedule")
    if step not in (None, False, True, "", "on", "1", "0", "off"):
        raise ParamError("step", "expected true or false")
    env = {"THREADLAB_STEP": "1"} if step in (True, "on", "1") or level else {}
    if schedule not in (None, ""):
        env["THREADLAB_SCHEDULE"] = json.dumps(_schedule(schedule))
    return env


def _schedule(raw: Any) -> list[dict[str, Any]]:
    if isinstance(raw, str):  # the page's form sends the list as JSON text
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):
            raise ParamError("schedule", "expected a list of steps (JSON)") from None
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_STEPS:
        raise ParamError("schedule", f"expected a list of 1 to {MAX_STEPS} steps")
    return [_one_step(item, i) for i, item in enumerate(raw)]


def _one_step(item: Any, i: int) -> dict[str, Any]:
    if isinstance(item, dict) and item.get("free") is True and set(item) <= {"free", "n", "source"}:
        return {"free": True}
    if not isinstance(item, dict):
        raise ParamError("schedule", f"step {i}: expected an object")
    thread, until = item.get("thread"), item.get("until", "line")
    if not isinstance(thread, str) or _name_problem(thread) or until not in UNTILS:
        raise ParamError("schedule", f'step {i}: expected {{"thread": name, "until": "line" or "sync"}}')
    return {"thread": thread, "until": until}


def _name_problem(name: str) -> str:
    """Why ``name`` cannot be a thread's name ("" when it can): empty, too long, or not text that
    can be written out (a lone surrogate from JSON's "\\ud800" would fail later, in the event log)."""
    if not 0 < len(name) <= NAME_CHARS:
        return f"1 to {NAME_CHARS} characters"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid text (a lone surrogate)"
    return ""


def _thread_ref(thread: Any) -> int | str:
    """A step's ``thread``: a held thread's ident (a number, or ASCII digits: "²" is a digit to
    Python but no ident) or its name."""
    if isinstance(thread, int) and not isinstance(thread, bool):
        if not 0 < thread < IDENT_LIMIT:
            raise ParamError("thread", "an ident is a positive 64-bit number")
        return thread
    if not isinstance(thread, str):
        raise ParamError("thread", "name or ident of a held thread")
    if thread.isascii() and thread.isdecimal() and len(thread) <= len(str(IDENT_LIMIT)):
        return _thread_ref(int(thread))
    problem = _name_problem(thread)
    if problem:
        raise ParamError("thread", f"a thread's name: {problem}")
    return thread


def schedule_of(run) -> list[dict[str, Any]]:
    """The steps a step-mode run has taken so far, as ``POST /runs`` takes them to replay."""
    return _history(run)[1]


def _history(run) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The held state now (None while a step is under way: its threads run) and the steps so far."""
    paused, steps = None, []
    for event in events_of(run.log, {b"paused", b"step"}):
        if event.get("kind") == "paused":
            paused = event
        elif event.get("free") is True:
            paused = None
            steps.append({"free": True})
        elif isinstance(event.get("thread"), str):
            paused = None
            steps.append({"thread": event["thread"], "until": event.get("until", "line")})
    return paused, steps


@bp.post("/runs/<run_id>/step")
def step_run(run_id: str):
    """One step: ``thread`` (name or ident) and ``until`` (line | sync), or ``free``: let all go.
    200 with the ``paused`` state that follows, 409 when the kit refuses it (and why), 202 when
    the threads are still running after a while (a step into a long sleep)."""
    run = run_or_404(run_id)
    if not may_control(run):
        return _answer(run, 403, error="this run was started in another browser: only that one can step it")
    if not run.step:
        return _answer(run, 409, error="this run is not in step mode (start it with \"step\": true)")
    data = body()
    data.pop("csrf_token", None)
    try:
        command = _command(data)
    except ParamError as err:
        return _answer(run, 400, error=f"{err.field}: {err.message}", field=err.field)
    _wait_until_held(run)
    cursor = len(run.log) - 1
    sent = manager().step(run, (json.dumps(command) + "\n").encode())
    if sent.code != 202:
        return _answer(run, sent.code, error=sent.message, status=run.status)
    return _kit_answer(run, cursor)


@bp.get("/runs/<run_id>/stepper")
def stepper(run_id: str):
    """The step-mode panel: the latest held state (waiting briefly for the first one)."""
    run = run_or_404(run_id)
    if not run.step:
        abort(404, description="this run is not in step mode")
    if run.live:
        _wait_until_held(run)
    return _panel(run)


def _panel(run, message: str = ""):
    with manager().viewing(run.id) as viewed:
        if viewed is None:  # pruned since run_or_404
            abort(404, description="no such run")
        paused, steps = _history(viewed)
    return render_template("_partials/_stepper.html", run=run, paused=paused, steps=steps,
                           message=message)


def _answer(run, code: int, **fields: Any):
    """JSON for scripts; the step panel again for the page (htmx), with the message if any."""
    if request.headers.get("HX-Request") == "true":
        return _panel(run, fields.get("error", "")), 200
    return jsonify(**fields), code


def _command(data: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(data) - {"thread", "until", "free"})
    if unknown:
        raise ParamError(unknown[0], "unknown field")
    if data.get("free") in (True, "on", "1", "true"):
        return {"cmd": "free"}
    thread, until = _thread_ref(data.get("thread")), data.get("until") or "line"
    if until not in UNTILS:
        raise ParamError("until", "line or sync")
    return {"cmd": "step", "thread": thread, "until": until}


def _wait_until_held(run) -> None:
    """A step sent as the run starts (a script's first) waits for the threads' first hold: the
    kit refuses a step while its threads still run their way to it."""
    deadline = time.monotonic() + ANSWER_WAIT
    cursor = -1
    while (left := deadline - time.monotonic()) > 0:
        batch = run.log.read(cursor, 1000)
        cursor += len(batch)
        for event in events_of_items(batch):
            if event.get("kind") == "paused" or (
                    event.get("kind") == "status" and event.get("status") not in LIVE):
                return
        if not batch:
            run.log.wait(cursor, min(left, 0.25))


def _kit_answer(run, cursor: int):
    """The kit's answer to the step just sent: its refusal, or the ``step`` event that grants it
    and then the first ``paused`` event after that one (an earlier ``paused`` is from before the
    step, however late this request read it)."""
    deadline = time.monotonic() + ANSWER_WAIT
    granted = None
    while (left := deadline - time.monotonic()) > 0:
        batch = run.log.read(cursor, 1000)
        cursor += len(batch)
        for event in events_of_items(batch):
            kind = event.get("kind")
            if granted is None and kind == "log" and isinstance(event.get("refused"), dict):
                return _answer(run, 409, error=str(event.get("msg", "refused")), status=run.status)
            if granted is None and kind == "step":
                granted = event
                if event.get("free") is True:
                    return _answer(run, 200, step=event, status=run.status)
            elif granted is not None and kind == "paused":
                return _answer(run, 200, step=granted, paused=event, status=run.status)
            if kind == "status" and event.get("status") not in LIVE:
                return _answer(run, 200, step=granted, ended=True, status=event.get("status"))
        if not batch:
            run.log.wait(cursor, min(left, 0.25))
    return _answer(run, 202, step=granted, running=True, status=run.status)


def events_of_items(batch: list) -> list[dict[str, Any]]:
    """The events of a ``read()`` batch (parsed from disk where need be; non-events left out)."""
    found = []
    for line, event in batch:
        event = event if event is not None else safe_parse(line)
        if isinstance(event, dict):
            found.append(event)
    return found
