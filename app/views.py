"""Pages, and the requests that start and control runs. One URL, two renderings: htmx requests get
the fragment, others the page. The JSON API and the run's drawings are in app/api.py."""

from __future__ import annotations

import shlex
import signal as signals_module
from pathlib import Path

import markdown
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
)
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from . import params as param_rules
from . import practice, programs, security, stepping
from .exercises import Level
from .lookup import body, lesson_or_404, manager, registry, run_or_404
from .runs import RunLimitError, StartError

bp = Blueprint("views", __name__)


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def controllable_run_or_403(run_id: str):
    run = run_or_404(run_id)
    if not security.may_control(run):
        abort(403, description="this run was started in another browser: only that one can stop or "
                               "signal it (the server's --shared-controls lets every viewer)")
    return run


# -- pages ---------------------------------------------------------------------------------------

@bp.get("/")
def index():
    """The lesson index: every lesson with its summary, and the latest runs."""
    lessons = registry().all()  # once: each registry lookup re-checks the lessons folder
    by_id = {lesson.id: lesson for lesson in lessons}
    runs = [(run, changed_flags(run, by_id.get(run.lesson))) for run in manager().all()[:20]]
    return render_template("index.html", lessons=lessons, runs=runs,
                           solved=practice.progress_by_lesson())


def changed_flags(run, lesson) -> str:
    """The run's parameters that differ from the lesson's defaults, as typed on a command line:
    what tells two runs of one lesson apart (an exercise's "now run it with --queue-size 1")."""
    args = run.params.get("args")
    if list(run.params) == ["args"] and isinstance(args, list) and (lesson is None or lesson.plain):
        return shell_join(args)  # a plain program's free-form arguments, as typed
    shown = []
    for name, value in run.params.items():
        param = lesson.param(name) if lesson else None
        if param is not None and str(value) == str(param.default):
            continue
        flag = param.flag if param is not None else "--" + name.replace("_", "-")
        shown.append(flag if value is True else f"{flag} {value}")
    return " ".join(shown)


@bp.app_template_global()
def shell_join(args: object) -> str:
    """A plain program's arguments as one command line that splits back into them (the form's
    ``args`` field, a run's flags); text (a form sent back with an error) is shown as typed."""
    if isinstance(args, list):
        return shlex.join(str(arg) for arg in args)
    return "" if args is None else str(args)


@bp.get("/lessons/<key>")
def lesson_page(key: str):
    """A lesson: its explanation, source, parameter form and (empty) live panes."""
    lesson = lesson_or_404(key)
    return render_template("lesson.html", lesson=lesson, run=None, values={}, errors={})


@bp.get("/runs/<run_id>")
def run_page(run_id: str):
    """One run's page: shareable, reloadable; the live panes replay its history and follow it."""
    run = run_or_404(run_id)
    from .api import seconds_param  # not at the top: api imports this module's helpers

    at = seconds_param("t")  # ?t=1.25 opens the page at that instant of the run
    lesson = registry().get(run.lesson) or programs.program_of_run(run)
    values = {**run.params, "exercise": run.exercise, "level": run.level, "scratch": run.scratch,
              "step": run.step}
    return render_template("lesson.html", lesson=lesson, run=run, values=values, errors={}, at=at,
                           run_source=ran_source(run, lesson))


def ran_source(run, lesson) -> str | None:
    """The code a run of an edited copy ran (kept in its folder); None for the lesson as it is."""
    if not run.scratch or lesson is None:
        return None
    try:
        return (run.folder / lesson.path.name).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "# the edited copy this run ran is no longer on disk"


@bp.get("/concepts")
def concepts():
    """The caveats every lesson leans on, from lessons/CONCEPTS.md."""
    path = Path(registry().folder) / "CONCEPTS.md"
    if not path.exists():
        path = Path(current_app.root_path).parent / "lessons" / "CONCEPTS.md"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Concepts\n\nNot written yet."
    html = Markup(markdown.markdown(text, extensions=["fenced_code", "toc"]))
    return render_template("concepts.html", content=html)


# -- runs ----------------------------------------------------------------------------------------

@bp.post("/runs")
def start_run():
    """Start a run: 201 with its id for JSON; the live panes (or a redirect) for the page's form.

    ``{"lesson": ...}`` names a lesson of the folder; ``{"program": "/abs/path.py"}`` (``threadlab
    watch``) a plain program anywhere on this machine, refused in remote mode: there a student
    could otherwise run any file on the teacher's disk. A plain program takes ``args`` (a list, or
    the form's text split like a command line); a lesson with a parser takes ``params``."""
    data = body()
    from_form = not request.is_json
    data.pop("csrf_token", None)
    key = str(data.pop("lesson", "") or "")
    extra = practice.take_fields(data)  # exercise, prediction, scratch: beside the parameters
    steps = stepping.take_fields(data)  # step mode, or a schedule to replay
    if "program" in data:
        if security.is_remote(current_app):
            abort(403, description="running a program by path is refused in remote mode")
        program = data.pop("program")
        if key:
            return _bad_param(None, "program", 'give "lesson" or "program", not both', {}, from_form)
        lesson, problem = programs.program_at(program)
        if lesson is None:
            return _bad_param(None, "program", problem, {}, from_form)
    else:
        lesson = registry().get(key) if key else None
        if lesson is None:
            return _bad_param(None, "lesson", f"no lesson {key!r}", {}, from_form)
    if lesson.plain:
        # A form sends its one text field; JSON sends {"args": [...]}, or (older scripts, e.g.
        # LiveServer.start) an empty "params", which a program without parameters can take.
        unknown = sorted(set(data) - ({"args"} if from_form else {"args", "params"}))
        if not from_form and data.get("params") not in (None, {}):
            unknown = ["params"]
        if unknown:
            return _bad_param(lesson, unknown[0], "this is a plain program: it takes free-form "
                              'arguments ("args"), not named parameters', data, from_form)
        try:
            args = param_rules.validate_args(data.get("args", "" if from_form else []),
                                             from_form=from_form)
        except param_rules.ParamError as err:
            return _bad_param(lesson, err.field, err.message, data, from_form)
        raw, values, argv = data, {"args": args}, args
    else:
        if not from_form and set(data) - {"params"}:
            # A JSON body is {"lesson", "params"}; a parameter sent beside "params" instead of in it
            # would otherwise be dropped silently and the run started with the default.
            unknown = sorted(set(data) - {"params"})[0]
            message = ("this lesson takes named parameters" if unknown == "args"
                       else 'unknown field (parameters go under "params")')
            return _bad_param(lesson, unknown, message, {}, from_form)
        raw = data.get("params", {}) if not from_form else data
        if from_form and "args" in raw and lesson.param("args") is None:
            return _bad_param(lesson, "args", "this lesson takes named parameters", raw, from_form)
        if not isinstance(raw, dict):
            return _bad_param(lesson, "params", "expected an object", {}, from_form)
        try:
            values = param_rules.validate(lesson, raw, from_form=from_form)
        except param_rules.ParamError as err:
            return _bad_param(lesson, err.field, err.message, raw, from_form)
        argv = param_rules.to_argv(lesson, values)
    if not lesson.available:
        reason = (f"{lesson.id} cannot run: {lesson.error}" if lesson.error
                  else f"lesson {lesson.id} needs {', '.join(lesson.requires)}")
        return _bad_param(lesson, "lesson", reason, raw, from_form)
    try:
        purpose, source = practice.practice_for(lesson, extra)
        env = stepping.step_env(steps, level=bool(purpose and isinstance(purpose.exercise, Level)))
    except param_rules.ParamError as err:
        return _bad_param(lesson, err.field, err.message, {**raw, **extra}, from_form)
    try:
        owner = "" if request.is_json else security.browser_id()  # a page's run: its browser's
        run = manager().start(lesson, values, argv, owner=owner, practice=purpose, source=source,
                              env=env)
    except (RunLimitError, StartError) as err:
        code = err.http_status if isinstance(err, StartError) else 429
        if from_form and is_htmx():
            return render_template("_partials/_run_form.html", lesson=lesson, values=raw,
                                   errors={"_form": str(err)}), code
        return jsonify(error=str(err)), code
    if request.is_json:
        return jsonify(id=run.id, url=f"/runs/{run.id}"), 201
    if is_htmx():
        response = Response(render_template("_partials/_live.html", run=run, lesson=lesson))
        response.headers["HX-Push-Url"] = f"/runs/{run.id}"
        return response
    return redirect(f"/runs/{run.id}", code=303)


def _bad_param(lesson, field: str, message: str, raw: dict, from_form: bool):
    if from_form and lesson is not None:
        # The form shows an error beside its field; one it has no field for (an unknown parameter)
        # goes at the top, named, or the learner would see a 400 and no reason.
        key = field if lesson.param(field) or field in ("lesson", *practice.FIELDS, *stepping.FIELDS) or (
            lesson.plain and field == "args") else "_form"
        html = render_template("_partials/_run_form.html", lesson=lesson, values=raw,
                               errors={key: message if key == field else f"{field}: {message}"})
        return html, 400
    return jsonify(error=f"{field}: {message}", field=field, message=message), 400


@bp.post("/runs/<run_id>/stop")
def stop_run(run_id: str):
    """Stop a run gracefully (SIGINT, then SIGTERM, then SIGKILL to its process group)."""
    run = controllable_run_or_403(run_id)
    return _answered(run, manager().stop(run))


@bp.post("/runs/<run_id>/signal")
def signal_run(run_id: str):
    """Send one of the lesson's declared POSIX signals to the run's own process group."""
    run = controllable_run_or_403(run_id)
    data = body()
    data.pop("csrf_token", None)
    unknown = sorted(set(data) - {"signal"})
    if unknown:  # only a signal name: no pid, no group, nothing that could aim it elsewhere
        return jsonify(error=f"{unknown[0]}: unknown field", field=unknown[0]), 400
    name = str(data.get("signal", ""))
    if name not in run.signals:
        return jsonify(error=f"{name or 'no signal'} is not one this lesson declares: "
                             f"{', '.join(run.signals) or 'none'}"), 400
    if not hasattr(signals_module, name):
        return jsonify(error=f"{name} does not exist on this platform"), 400
    return _answered(run, manager().send_signal(run, name))


@bp.post("/runs/<run_id>/dump")
def dump_run(run_id: str):
    """Ask the lesson for every thread's stack; it arrives as a ``stacks`` event."""
    run = controllable_run_or_403(run_id)
    return _answered(run, manager().dump(run))


def _answered(run, command):
    """The supervisor's answer to a command: 202 when done, else its code (409: the run has ended
    or cannot take it) with the reason."""
    if command.code != 202:
        return jsonify(error=command.message, status=run.status), command.code
    # The page learns what happened over its websocket; htmx needs no content (204 swaps nothing).
    if request.is_json:
        return jsonify(id=run.id, status=run.status), 202
    if is_htmx():
        return "", 204
    return redirect(f"/runs/{run.id}", code=303)


# -- JSON API ------------------------------------------------------------------------------------

@bp.app_errorhandler(HTTPException)
def http_error(error: HTTPException):
    """Errors as JSON for scripts (JSON bodies, /api), as a short page for people."""
    if request.is_json or request.path.startswith("/api/") or not request.accept_mimetypes.accept_html:
        return jsonify(error=error.description, status=error.code), error.code
    return render_template("error.html", error=error), error.code
